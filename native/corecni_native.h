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
 * Payloads by attribute class (CN_AC_*, below): strings NUL-terminated,
 * integers u32 or u64, addresses raw (4 or 16 bytes), MACs raw bytes. Codes,
 * flags and attribute types are the CN_OP_*, CN_F_* and CN_A_* values that
 * cn_abi.def declares (the only place they are written).
 */

#include <stddef.h>

enum {
    CN_BATCH_MAGIC = 0x31424e43,
};

/* Op codes, flags and attribute types: the X-macro list in cn_abi.def. Op
 * codes and attribute types run from 1 without gaps. */
enum cn_op_code {
#define CN_OP(name, code) CN_OP_##name = code,
#include "cn_abi.def"
};

enum cn_op_flag {
#define CN_FLAG(name, bit) CN_F_##name = bit,
#include "cn_abi.def"
};

/* How an attribute's payload is checked (C) and encoded (Python). */
enum cn_attr_class {
    CN_AC_IFNAME = 1,  /* NUL-terminated interface name, < IFNAMSIZ */
    CN_AC_STR = 2,     /* NUL-terminated string, may be empty */
    CN_AC_IP = 3,      /* raw IPv4 or IPv6 address (4 or 16 bytes) */
    CN_AC_HW = 4,      /* raw hardware address, 1..32 bytes */
    CN_AC_U32 = 5,
    CN_AC_U64 = 6,
};

enum cn_attr_type {
#define CN_ATTR(name, type, cls) CN_A_##name = type,
#include "cn_abi.def"
};

enum {
    CN_OP_MAX = 0
#define CN_OP(name, code) + 1
#include "cn_abi.def"
    ,
    CN_A_MAX = 0
#define CN_ATTR(name, type, cls) + 1
#include "cn_abi.def"
};

/* The class (CN_AC_*) of attribute type t, 0 when there is no such type. */
int cn_attr_class(int t);

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
    int allmulti;            /* IFF_ALLMULTI as set by the user */
    unsigned int txqlen;     /* IFLA_TXQLEN */
    int has_table;           /* vrf: the kernel reported a table */
    unsigned int table;      /* IFLA_VRF_TABLE */
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

struct cn_qdisc {
    int index;
    char ifname[16];
    char kind[32];
    unsigned int handle;
    unsigned int parent;
    int has_tbf;             /* tbf: the parameters below are set */
    unsigned long long rate; /* bytes/s (TCA_TBF_RATE64 when larger than 32 bits) */
    unsigned int buffer;     /* psched ticks */
    unsigned int limit;      /* bytes */
};

struct cn_filter {
    int index;
    char ifname[16];
    char kind[32];           /* "u32", "matchall", ... */
    unsigned int handle;
    unsigned int parent;
    unsigned int priority;
    unsigned int protocol;   /* ethernet protocol, host order */
    unsigned int classid;    /* 0 when none */
    int redirect_index;      /* mirred egress redirect target, 0 when none */
    char redirect[16];       /* its name, "" when none or not resolvable */
};

struct cn_rule {
    int family;
    unsigned int table;
    int has_priority;
    unsigned int priority;
    int action;              /* FR_ACT_* */
    char src[48];            /* "" when none */
    int src_len;
    char dst[48];            /* "" when none */
    int dst_len;
    char iifname[16];        /* "" when none */
    char oifname[16];        /* "" when none */
};

/* Dumps: return the count (>= 0) with *out an array to free with cn_free,
 * or -errno. A family of 0 means all. cn_dump_links with a name returns that
 * link only (0 entries when it does not exist). */
int cn_dump_links(const char *netns, const char *name, struct cn_link **out);
int cn_dump_addrs(const char *netns, int family, struct cn_addr **out);
int cn_dump_addrs_of(const char *netns, int family, const char *ifname, struct cn_addr **out);
int cn_dump_routes(const char *netns, int family, struct cn_route **out);
int cn_dump_neighs(const char *netns, int family, struct cn_neigh **out);
int cn_dump_qdiscs(const char *netns, struct cn_qdisc **out);
/* The filters of link `ifname` below the qdisc `parent` (0: the root qdisc;
 * 0xfffffff1: ingress); -ENODEV when there is no such link. */
/* The per-device settings of `family` (AF_INET: IPV4_DEVCONF_* from 1; AF_INET6:
 * DEVCONF_* from 0) of link `ifname`, as netlink reports them: the number of
 * entries of `out` filled, or -errno (-ENODEV: no such link). */
int cn_link_conf(const char *netns, const char *ifname, int family, int *out, int cap);
int cn_dump_filters(const char *netns, const char *ifname, unsigned int parent,
                    struct cn_filter **out);
int cn_dump_rules(const char *netns, int family, struct cn_rule **out);
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
