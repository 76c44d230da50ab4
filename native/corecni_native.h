#ifndef CORECNI_NATIVE_H
#define CORECNI_NATIVE_H

/*
 * corecni._native: the ABI corecni/net/native_backend.py sees (mirrored in
 * corecni_native.cdef; keep the two in sync).
 *
 * Every function that takes `netns` accepts a namespace path
 * ("/run/netns/x", "/proc/<pid>/ns/net") or NULL for the calling thread's
 * namespace. Netlink sockets are opened inside the target namespace (setns on
 * the calling thread, socket(), setns back at once), so the calling thread
 * never stays in another namespace.
 *
 * Batch buffer (built by Python, all integers in host byte order):
 *
 *   batch  := u32 magic "CNB1" (0x31424e43) | u32 nops | op * nops
 *   op     := u32 len (header + attrs, multiple of 4) | u16 code | u16 flags | attr *
 *   attr   := u16 len (4 + payload, unpadded) | u16 type | payload | pad to 4
 *
 * Strings are NUL-terminated, integers u32, addresses raw (4 or 16 bytes),
 * MACs raw bytes. Codes, flags and attribute types are the CN_OP_*, CN_F_*
 * and CN_A_* values below.
 */

#include <stddef.h>

enum {
    CN_BATCH_MAGIC = 0x31424e43,
};

enum cn_op_code {
    CN_OP_ADD_VETH = 1,
    CN_OP_ADD_BRIDGE = 2,
    CN_OP_ADD_MACVLAN = 3,
    CN_OP_ADD_IPVLAN = 4,
    CN_OP_ADD_VLAN = 5,
    CN_OP_SET_LINK = 6,
    CN_OP_DEL_LINK = 7,
    CN_OP_ADD_ADDR = 8,
    CN_OP_DEL_ADDR = 9,
    CN_OP_ADD_ROUTE = 10,
    CN_OP_DEL_ROUTE = 11,
    CN_OP_ADD_NEIGH = 12,
    CN_OP_MAX = 12,
};

enum cn_op_flag {
    CN_F_MISSING_OK = 1,
    CN_F_REPLACE = 2,
    CN_F_NODAD = 4,
    CN_F_NOMASTER = 8,
    CN_F_PERMANENT = 16,
};

enum cn_attr_type {
    CN_A_NAME = 1,        /* str: the link the op is about */
    CN_A_PEER = 2,        /* str: veth peer name */
    CN_A_PEER_NETNS = 3,  /* str: path of the veth peer's namespace */
    CN_A_NETNS = 4,       /* str: namespace path to create in / move to */
    CN_A_MTU = 5,         /* u32: link MTU, or route MTU metric */
    CN_A_MAC = 6,         /* bytes */
    CN_A_PEER_MAC = 7,    /* bytes */
    CN_A_MASTER = 8,      /* str: master / lower link name */
    CN_A_MODE = 9,        /* u32: macvlan mode bits, ipvlan mode */
    CN_A_IPVLAN_FLAG = 10,/* u32 */
    CN_A_VLAN_ID = 11,    /* u32 */
    CN_A_VLAN_FILTERING = 12, /* u32 0/1 */
    CN_A_UP = 13,         /* u32 0/1 */
    CN_A_RENAME = 14,     /* str */
    CN_A_PROMISC = 15,    /* u32 0/1 */
    CN_A_HAIRPIN = 16,    /* u32 0/1 */
    CN_A_ALIAS = 17,      /* str */
    CN_A_FAMILY = 18,     /* u32 AF_INET / AF_INET6 */
    CN_A_ADDR = 19,       /* bytes: interface address, neighbour IP */
    CN_A_PREFIXLEN = 20,  /* u32: address prefix / route dst_len */
    CN_A_GATEWAY = 21,    /* bytes */
    CN_A_TABLE = 22,      /* u32 */
    CN_A_PRIORITY = 23,   /* u32 */
    CN_A_SCOPE = 24,      /* u32 */
    CN_A_ADVMSS = 25,     /* u32 */
    CN_A_SRC = 26,        /* bytes: route preferred source */
    CN_A_PROTO = 27,      /* u32 */
    CN_A_LLADDR = 28,     /* bytes */
    CN_A_DST = 29,        /* bytes: route destination */
    CN_A_IFNAME = 30,     /* str: device of an address / route / neighbour */
    CN_A_MAX = 30,
};

/* One failed request: index of the op in the batch, positive errno, and the
 * kernel's extended-ack message (or a note from the batcher), maybe empty. */
struct cn_err {
    int index;
    int err;
    char msg[160];
};

/* What a commit did, for tests and the benchmark. */
struct cn_stats {
    int phases;       /* groups of requests sent together */
    int messages;     /* netlink requests sent */
    int sendmsgs;     /* sendmsg(2) calls */
    int recvs;        /* recvmmsg(2) calls collecting ACKs */
    int resolves;     /* name -> ifindex lookups done with ioctl */
    int rolled_back;  /* links deleted again after a failure */
};

/*
 * Run the batch in `netns`. Returns the number of failed requests written to
 * errs (0: all done), sorted by index; or -errno when the batch could not be
 * run at all (bad buffer: -EINVAL, namespace cannot be entered, ...). When
 * any request failed, the links the batch created are deleted again (reverse
 * order) before returning. rcvbuf > 0 forces SO_RCVBUF (tests use a tiny one
 * to provoke ENOBUFS); 0 sizes it automatically.
 */
int cn_batch_commit(const char *netns, const unsigned char *buf, size_t len, int rcvbuf,
                    struct cn_err *errs, int errs_cap, struct cn_stats *stats);

/*
 * Dry run for unit tests: build the requests the batch would send, without a
 * socket. `names` maps link names to ifindexes ("eth0=2,br0=3"); veth/netns
 * file descriptors are encoded as 0xffffffff. On success *out (free with
 * cn_free) holds every request of every phase back to back. Returns the
 * number of errors (as cn_batch_commit) or -errno.
 */
int cn_batch_render(const unsigned char *buf, size_t len, const char *names,
                    unsigned char **out, size_t *outlen,
                    struct cn_err *errs, int errs_cap, struct cn_stats *stats);

struct cn_link {
    int index;
    char name[16];
    char kind[32];
    unsigned int mtu;
    char mac[96];            /* "aa:bb:..", "" when the link has none */
    int up;
    char master[16];         /* "" when none */
    int has_link;
    int link;                /* IFLA_LINK */
    int has_link_netnsid;
    int link_netnsid;
    int promisc;
    int hairpin;             /* -1: not a bridge port */
    int vlan_filtering;      /* -1: not a bridge */
    char alias[256];
    int has_mode;            /* macvlan, ipvlan: the kernel reported a mode */
    unsigned int mode;       /* IFLA_MACVLAN_MODE bits / IFLA_IPVLAN_MODE */
    int has_vlan_id;         /* vlan: the kernel reported an ID */
    unsigned int vlan_id;    /* IFLA_VLAN_ID */
};

struct cn_addr {
    int family;
    int index;
    char ifname[16];
    char addr[48];
    int prefixlen;
    int scope;
};

struct cn_route {
    int family;
    char dst[48];
    int dst_len;
    char gateway[48];        /* "" when none */
    int oif;                 /* 0 when none */
    char ifname[16];
    unsigned int table;
    int has_priority;
    unsigned int priority;
    int scope;
    int proto;
    int type;
    unsigned int flags;
    unsigned int mtu;        /* 0 when unset */
    unsigned int advmss;     /* 0 when unset */
    char src[48];            /* RTA_PREFSRC, "" when none */
};

struct cn_neigh {
    int family;
    int index;
    char ifname[16];
    char dst[48];
    char lladdr[96];         /* "" when none */
    int state;
    unsigned int flags;
};

/* Dumps: return the count (>= 0) with *out an array to free with cn_free,
 * or -errno. A family of 0 means all. cn_dump_links with a name returns that
 * link only (0 entries when it does not exist). */
int cn_dump_links(const char *netns, const char *name, struct cn_link **out);
int cn_dump_addrs(const char *netns, int family, struct cn_addr **out);
int cn_dump_routes(const char *netns, int family, struct cn_route **out);
int cn_dump_neighs(const char *netns, int family, struct cn_neigh **out);
void cn_free(void *p);

/* Parse one RTM_NEWLINK message of len bytes (as a link dump returns it) into
 * *out, as cn_dump_links would, except that master stays "" (resolving it
 * needs the namespace). For unit tests. 0, or -EINVAL when buf does not hold
 * exactly one RTM_NEWLINK message. */
int cn_parse_link(const unsigned char *buf, size_t len, struct cn_link *out);

/* open(2) `path` from inside `netns` (for /proc/sys/net); fd or -errno. */
int cn_open_in_netns(const char *netns, const char *path, int flags);

/* Enter the network namespace at path for the calling thread; 0 or -errno. */
int cn_setns_path(const char *path);
/* Version string of the native module, for `corecni doctor`. */
const char *cn_version(void);

#endif
