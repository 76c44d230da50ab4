/*
 * The batch engine: turn a serialized batch (see corecni_native.h) into
 * rtnetlink requests, send them with as few syscalls as possible and map
 * every ACK back to the op that caused it.
 *
 * Requests are grouped into phases. A phase is sent with one sendmsg (split
 * only if it is larger than CHUNK_BYTES / the ACK budget) and its ACKs are
 * collected with recvmmsg. A new phase starts only when an op needs the
 * ifindex of a link that an unsent request of the current phase creates,
 * renames, moves or deletes ("dirty" names): the target link of link
 * requests is named with IFLA_IFNAME, so "create veth, then set it up and
 * enslave it" is still a single phase. Pre-existing names are resolved with
 * SIOCGIFINDEX on the netlink socket itself (it lives in the target netns).
 *
 * The kernel keeps processing the requests of one sendmsg after one fails,
 * so on failure every link the batch created (learnt from the ACKs) is
 * deleted again, in reverse order, and the failures are returned sorted by
 * op index; no later phase is sent.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>

#include "corecni_native.h"
#include "cn_nl.h"

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif

#define CHUNK_BYTES (96 * 1024)
#define CHUNK_MSGS_DEFAULT 64     /* fits the default 208 KiB receive buffer */
#define CHUNK_MSGS_FORCED 1024    /* with SO_RCVBUFFORCE (needs CAP_NET_ADMIN) */
#define ACK_TRUESIZE 2048         /* generous per-ACK receive-buffer cost */
#define RX_VLEN 32
#define RX_SLOT 2048
#define ACK_WAIT_MS 5000

enum role { ROLE_MAIN, ROLE_HAIRPIN, ROLE_MOVE };

struct op {
    int code;
    unsigned flags;
    uint32_t have;                           /* bit t set: attribute t present */
    const unsigned char *a[CN_A_MAX + 1];
    int alen[CN_A_MAX + 1];
};

struct msgrec {
    int op;
    int role;
    size_t off;
    int res;                                 /* errno, 0, or RES_UNSET */
    char emsg[160];
};

#define RES_UNSET (-1)

struct created {
    const char *ns;                          /* NULL: the batch namespace */
    char name[IFNAMSIZ];
    int op;
};

struct namecache {
    char name[IFNAMSIZ];
    int index;
};

struct ctx {
    int render;
    const char *names;                       /* render mode: "a=1,b=2" */
    const char *netns;
    int sock;
    int rcvbuf;                              /* forced by the caller, 0: auto */
    int rcvbuf_big;                          /* bytes set with SO_RCVBUFFORCE */
    uint32_t seq;                            /* next sequence number */

    struct op *ops;
    int nops;

    struct nlbuf pend;
    struct msgrec *msgs;
    int nmsgs, capmsgs;
    int *fds;
    int nfds, capfds;

    char (*dirty)[IFNAMSIZ];
    int ndirty, capdirty;
    struct namecache *cache;
    int ncache, capcache;

    struct created *created;
    int ncreated, capcreated;

    struct cn_err *errs;
    int nerr, caperr;
    int fatal;                               /* -errno: could not run at all */

    struct nlbuf out;                        /* render mode output */
    unsigned char *rx;
    struct cn_stats *st;
    struct cn_stats own_st;                  /* st when the caller passes none */
};

/* ---- errors --------------------------------------------------------- */

static void add_error(struct ctx *c, int index, int err, const char *msg)
{
    for (int i = 0; i < c->nerr; i++)
        if (c->errs[i].index == index)
            return;                          /* first failure of an op wins */
    if (c->nerr >= c->caperr)
        return;
    struct cn_err *e = &c->errs[c->nerr++];
    e->index = index;
    e->err = err;
    snprintf(e->msg, sizeof e->msg, "%s", msg ? msg : "");
}

static int cmp_err(const void *a, const void *b)
{
    const struct cn_err *x = a, *y = b;
    return (x->index > y->index) - (x->index < y->index);
}

/* ---- parsing the serialized batch ---------------------------------- */

static int is_str_attr(int t)
{
    return t == CN_A_NAME || t == CN_A_PEER || t == CN_A_PEER_NETNS || t == CN_A_NETNS ||
           t == CN_A_MASTER || t == CN_A_RENAME || t == CN_A_ALIAS || t == CN_A_IFNAME;
}

static int is_ifname_attr(int t)
{
    return t == CN_A_NAME || t == CN_A_PEER || t == CN_A_MASTER || t == CN_A_RENAME ||
           t == CN_A_IFNAME;
}

static int is_ip_attr(int t)
{
    return t == CN_A_ADDR || t == CN_A_GATEWAY || t == CN_A_SRC || t == CN_A_DST;
}

static int is_hw_attr(int t)
{
    return t == CN_A_MAC || t == CN_A_PEER_MAC || t == CN_A_LLADDR;
}

static int parse_batch(const unsigned char *buf, size_t len, struct op **out, int *nout)
{
    uint32_t magic, nops;
    if (buf == NULL || len < 8)
        return -EINVAL;
    memcpy(&magic, buf, 4);
    memcpy(&nops, buf + 4, 4);
    if (magic != CN_BATCH_MAGIC || nops > 100000 || nops > (len - 8) / 8)  /* an op is >= 8 bytes */
        return -EINVAL;
    struct op *ops = calloc(nops ? nops : 1, sizeof *ops);
    if (ops == NULL)
        return -ENOMEM;
    size_t pos = 8;
    for (uint32_t i = 0; i < nops; i++) {
        uint32_t oplen;
        uint16_t code, flags;
        if (len - pos < 8)
            goto bad;
        memcpy(&oplen, buf + pos, 4);
        memcpy(&code, buf + pos + 4, 2);
        memcpy(&flags, buf + pos + 6, 2);
        if (oplen < 8 || oplen % 4 || oplen > len - pos || code < 1 || code > CN_OP_MAX)
            goto bad;
        struct op *o = &ops[i];
        o->code = code;
        o->flags = flags;
        size_t apos = pos + 8, end = pos + oplen;
        while (apos < end) {
            uint16_t alen, atype;
            if (end - apos < 4)
                goto bad;
            memcpy(&alen, buf + apos, 2);
            memcpy(&atype, buf + apos + 2, 2);
            if (alen < 4 || alen > end - apos || atype < 1 || atype > CN_A_MAX)
                goto bad;
            const unsigned char *d = buf + apos + 4;
            int dlen = alen - 4;
            if (is_str_attr(atype)) {
                if (dlen < (atype == CN_A_ALIAS ? 1 : 2) || d[dlen - 1] != '\0' || memchr(d, '\0', (size_t)dlen) != d + dlen - 1)
                    goto bad;
                if (is_ifname_attr(atype) && dlen > IFNAMSIZ)
                    goto bad;
            } else if (is_ip_attr(atype)) {
                if (dlen != 4 && dlen != 16)
                    goto bad;
            } else if (is_hw_attr(atype)) {
                if (dlen < 1 || dlen > 32)
                    goto bad;
            } else if (dlen != 4) {
                goto bad;
            }
            o->a[atype] = d;
            o->alen[atype] = dlen;
            o->have |= 1u << atype;
            apos += (alen + 3u) & ~3u;
        }
        pos = end;
    }
    if (pos != len)
        goto bad;
    *out = ops;
    *nout = (int)nops;
    return 0;
bad:
    free(ops);
    return -EINVAL;
}

static int has(const struct op *o, int t)
{
    return (o->have >> t) & 1u;
}

static const char *str(const struct op *o, int t)
{
    return has(o, t) ? (const char *)o->a[t] : NULL;
}

/* A u32 attribute, dflt when the op does not carry it. */
static uint32_t u32_or(const struct op *o, int t, uint32_t dflt)
{
    uint32_t v = dflt;
    if (has(o, t))
        memcpy(&v, o->a[t], 4);
    return v;
}

static uint32_t u32(const struct op *o, int t)
{
    return u32_or(o, t, 0);
}

/* ---- names ---------------------------------------------------------- */

static int name_in(char (*set)[IFNAMSIZ], int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strncmp(set[i], name, IFNAMSIZ) == 0)
            return 1;
    return 0;
}

static void mark_dirty(struct ctx *c, const char *name)
{
    if (name == NULL || name_in(c->dirty, c->ndirty, name))
        return;
    if (cn_grow((void **)&c->dirty, &c->capdirty, c->ndirty + 1, sizeof *c->dirty) < 0) {
        c->fatal = -ENOMEM;
        return;
    }
    snprintf(c->dirty[c->ndirty++], IFNAMSIZ, "%s", name);
}

static int render_lookup(const char *names, const char *name)
{
    size_t n = strlen(name);
    const char *p = names;
    while (p && *p) {
        const char *eq = strchr(p, '=');
        if (eq == NULL)
            break;
        if ((size_t)(eq - p) == n && strncmp(p, name, n) == 0)
            return atoi(eq + 1);
        p = strchr(eq, ',');
        if (p)
            p++;
    }
    return -ENODEV;
}

static int flush(struct ctx *c);

/* ifindex of name in the batch namespace, flushing first when an unsent
 * request changes what the name refers to. > 0, -ENODEV, or 0 when a flush
 * reported errors (the op must not run). */
static int resolve(struct ctx *c, const char *name)
{
    if (name_in(c->dirty, c->ndirty, name)) {
        flush(c);
        if (c->nerr || c->fatal)
            return 0;
    }
    for (int i = 0; i < c->ncache; i++)
        if (strncmp(c->cache[i].name, name, IFNAMSIZ) == 0)
            return c->cache[i].index;
    int idx;
    if (c->render) {
        idx = render_lookup(c->names, name);
    } else {
        c->st->resolves++;
        idx = cn_ifindex(c->sock, name);
    }
    if (idx < 0)
        return idx == -ENODEV || idx == -ENXIO ? -ENODEV : idx;
    if (cn_grow((void **)&c->cache, &c->capcache, c->ncache + 1, sizeof *c->cache) == 0) {
        snprintf(c->cache[c->ncache].name, IFNAMSIZ, "%s", name);
        c->cache[c->ncache++].index = idx;
    }
    return idx;
}

/* ---- created-link bookkeeping (for rollback) ------------------------ */

static struct created *find_created(struct ctx *c, const char *ns, const char *name)
{
    for (int i = c->ncreated - 1; i >= 0; i--) {
        struct created *k = &c->created[i];
        int same_ns = (k->ns == NULL && ns == NULL) ||
                      (k->ns && ns && strcmp(k->ns, ns) == 0);
        if (same_ns && strncmp(k->name, name, IFNAMSIZ) == 0)
            return k;
    }
    return NULL;
}

static void note_created(struct ctx *c, const char *ns, const char *name, int op)
{
    if (cn_grow((void **)&c->created, &c->capcreated, c->ncreated + 1, sizeof *c->created) < 0) {
        c->fatal = -ENOMEM;
        return;
    }
    struct created *k = &c->created[c->ncreated++];
    k->ns = ns;
    snprintf(k->name, IFNAMSIZ, "%s", name);
    k->op = op;
}

/* The request that creates a link (the main one of an add_* op). */
static int creates(const struct op *o, const struct msgrec *m)
{
    return m->role == ROLE_MAIN &&
           (o->code == CN_OP_ADD_VETH || o->code == CN_OP_ADD_BRIDGE ||
            o->code == CN_OP_ADD_MACVLAN || o->code == CN_OP_ADD_IPVLAN ||
            o->code == CN_OP_ADD_VLAN);
}

/* Where the link an add_* op creates lives (NULL: the batch namespace): a
 * veth's near end and a bridge here, the others directly in CN_A_NETNS. */
static const char *created_ns(const struct op *o)
{
    return o->code == CN_OP_ADD_VETH || o->code == CN_OP_ADD_BRIDGE ? NULL : str(o, CN_A_NETNS);
}

/* A request succeeded: keep the list of links the batch created current. */
static void track_success(struct ctx *c, const struct msgrec *m)
{
    const struct op *o = &c->ops[m->op];
    const char *name = str(o, CN_A_NAME);
    if (creates(o, m)) {
        note_created(c, created_ns(o), name, m->op);
    } else if (o->code == CN_OP_SET_LINK && m->role == ROLE_MAIN && has(o, CN_A_RENAME)) {
        struct created *k = find_created(c, NULL, name);
        if (k)
            snprintf(k->name, IFNAMSIZ, "%s", str(o, CN_A_RENAME));
    } else if (o->code == CN_OP_SET_LINK && m->role == ROLE_MOVE) {
        const char *cur = has(o, CN_A_RENAME) ? str(o, CN_A_RENAME) : name;
        struct created *k = find_created(c, NULL, cur);
        if (k)
            k->ns = str(o, CN_A_NETNS);
    } else if (o->code == CN_OP_DEL_LINK) {
        struct created *k = find_created(c, NULL, name);
        if (k)
            k->name[0] = '\0';               /* gone already */
    }
}

static int ignorable(const struct op *o, int err)
{
    if (!(o->flags & CN_F_MISSING_OK))
        return 0;
    switch (o->code) {
    case CN_OP_DEL_LINK:
        return err == ENODEV;
    case CN_OP_DEL_ADDR:
        return err == EADDRNOTAVAIL || err == ENODEV || err == ESRCH;
    case CN_OP_DEL_ROUTE:
        return err == ESRCH || err == ENODEV || err == ENOENT;
    default:
        return 0;
    }
}

/* ---- building requests --------------------------------------------- */

static struct msgrec *new_msg(struct ctx *c, int op, int role, uint16_t type, uint16_t flags,
                              size_t hdrlen)
{
    if (cn_grow((void **)&c->msgs, &c->capmsgs, c->nmsgs + 1, sizeof *c->msgs) < 0) {
        c->fatal = -ENOMEM;
        return NULL;
    }
    struct msgrec *m = &c->msgs[c->nmsgs];
    size_t off = nb_msg(&c->pend, type, flags | NLM_F_REQUEST | NLM_F_ACK, 0, hdrlen);
    if (c->pend.oom) {
        c->fatal = -ENOMEM;
        return NULL;
    }
    c->nmsgs++;
    m->op = op;
    m->role = role;
    m->off = off;
    m->res = RES_UNSET;
    m->emsg[0] = '\0';
    return m;
}

static void end_msg(struct ctx *c, struct msgrec *m)
{
    nb_msg_end(&c->pend, m->off);
}

/* Open a namespace file for IFLA_NET_NS_FD; kept open until the phase is sent. */
static int ns_fd(struct ctx *c, const char *path)
{
    if (c->render)
        return -1;                           /* encoded as 0xffffffff */
    if (cn_grow((void **)&c->fds, &c->capfds, c->nfds + 1, sizeof *c->fds) < 0)
        return -ENOMEM;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    c->fds[c->nfds++] = fd;
    return fd;
}

/* The op's attribute t as netlink attribute `type`, payload as queued (raw
 * addresses; u32s, which are host-order in the batch as in netlink). */
static void put_attr(struct nlbuf *b, uint16_t type, const struct op *o, int t)
{
    nb_put(b, type, o->a[t], (size_t)o->alen[t]);
}

static void put_attr_if(struct nlbuf *b, uint16_t type, const struct op *o, int t)
{
    if (has(o, t))
        put_attr(b, type, o, t);
}

/* The MTU and MAC of a link request, when given. */
static void put_mtu_mac(struct nlbuf *b, const struct op *o)
{
    put_attr_if(b, IFLA_MTU, o, CN_A_MTU);
    put_attr_if(b, IFLA_ADDRESS, o, CN_A_MAC);
}

/* Open IFLA_LINKINFO naming the kind (kind_attr: IFLA_INFO_KIND, or
 * IFLA_INFO_SLAVE_KIND for port settings); close it with nb_nest_end. */
static size_t begin_linkinfo(struct nlbuf *b, uint16_t kind_attr, const char *kind)
{
    size_t li = nb_nest(b, IFLA_LINKINFO);
    nb_put_str(b, kind_attr, kind);
    return li;
}

/* ifi_change/ifi_flags for the op's boolean attribute t, when it has it. */
static void put_flag(struct ifinfomsg *ifi, const struct op *o, int t, unsigned flag)
{
    if (has(o, t)) {
        ifi->ifi_change |= flag;
        ifi->ifi_flags |= u32(o, t) ? flag : 0;
    }
}

/* A request could not even be built (missing link, bad namespace): send what
 * the batch queued before it, so requests still run in order, then fail it. */
static void fail_before_send(struct ctx *c, int i, int err, const char *why)
{
    flush(c);
    if (c->nerr == 0 && !c->fatal)
        add_error(c, i, err, why);
}

/* The ifindex of `name` for op i, > 0; or 0 when the op goes no further: the
 * flush resolving it needed reported errors, the link is missing and the op
 * is a delete that accepts that, or op i was failed here ("<what> <name> not
 * found"; no note when what is NULL). */
static int resolve_for(struct ctx *c, int i, const char *name, const char *what)
{
    int idx = resolve(c, name);
    if (idx >= 0)
        return idx;
    if (ignorable(&c->ops[i], -idx))
        return 0;
    char why[160] = "";
    if (what)
        snprintf(why, sizeof why, "%s %s not found", what, name);
    fail_before_send(c, i, -idx, why);
    return 0;
}

/* *fd: the namespace op i names in attribute t, for IFLA_NET_NS_FD (-1 when
 * it names none, and in render mode). Returns 0; -1 when it cannot be opened,
 * after failing op i ("<what> <path>"). */
static int ns_fd_for(struct ctx *c, int i, int t, const char *what, int *fd)
{
    const struct op *o = &c->ops[i];
    *fd = -1;
    if (!has(o, t))
        return 0;
    *fd = ns_fd(c, str(o, t));
    if (*fd < 0 && !c->render) {
        char why[160];
        snprintf(why, sizeof why, "%s %s", what, str(o, t));
        fail_before_send(c, i, -*fd, why);
        return -1;
    }
    return 0;
}

/* A link request (RTM_NEWLINK / RTM_DELLINK) of op i naming the link by
 * IFLA_IFNAME, which comes first. */
static struct msgrec *link_msg(struct ctx *c, int i, int role, uint16_t type, uint16_t flags,
                               const char *name)
{
    struct msgrec *m = new_msg(c, i, role, type, flags, sizeof(struct ifinfomsg));
    if (m)
        nb_put_str(&c->pend, IFLA_IFNAME, name);
    return m;
}

/* The request creating op i's link, with its MTU and MAC. */
static struct msgrec *new_link_msg(struct ctx *c, int i)
{
    const struct op *o = &c->ops[i];
    struct msgrec *m = link_msg(c, i, ROLE_MAIN, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL,
                                str(o, CN_A_NAME));
    if (m)
        put_mtu_mac(&c->pend, o);
    return m;
}

static void build_op(struct ctx *c, int i)
{
    const struct op *o = &c->ops[i];
    struct nlbuf *b = &c->pend;
    const char *name = str(o, CN_A_NAME);
    struct msgrec *m;

    switch (o->code) {
    case CN_OP_ADD_VETH: {
        int pfd;
        if (ns_fd_for(c, i, CN_A_PEER_NETNS, "peer namespace", &pfd) < 0)
            return;
        m = new_link_msg(c, i);
        if (m == NULL)
            return;
        size_t li = begin_linkinfo(b, IFLA_INFO_KIND, "veth");
        size_t data = nb_nest(b, IFLA_INFO_DATA);
        size_t peer = nb_nest(b, VETH_INFO_PEER);
        nb_raw(b, sizeof(struct ifinfomsg));
        nb_put_str(b, IFLA_IFNAME, str(o, CN_A_PEER));
        if (has(o, CN_A_PEER_NETNS))
            nb_put_u32(b, IFLA_NET_NS_FD, (uint32_t)pfd);
        put_attr_if(b, IFLA_MTU, o, CN_A_MTU);
        put_attr_if(b, IFLA_ADDRESS, o, CN_A_PEER_MAC);
        nb_nest_end(b, peer);
        nb_nest_end(b, data);
        nb_nest_end(b, li);
        end_msg(c, m);
        mark_dirty(c, name);
        if (!has(o, CN_A_PEER_NETNS))
            mark_dirty(c, str(o, CN_A_PEER));
        return;
    }
    case CN_OP_ADD_BRIDGE: {
        m = new_link_msg(c, i);
        if (m == NULL)
            return;
        size_t li = begin_linkinfo(b, IFLA_INFO_KIND, "bridge");
        if (has(o, CN_A_VLAN_FILTERING)) {
            size_t data = nb_nest(b, IFLA_INFO_DATA);
            nb_put_u8(b, IFLA_BR_VLAN_FILTERING, u32(o, CN_A_VLAN_FILTERING) ? 1 : 0);
            nb_nest_end(b, data);
        }
        nb_nest_end(b, li);
        end_msg(c, m);
        mark_dirty(c, name);
        return;
    }
    case CN_OP_ADD_MACVLAN:
    case CN_OP_ADD_IPVLAN:
    case CN_OP_ADD_VLAN: {
        int lower = resolve_for(c, i, str(o, CN_A_MASTER), "master link");
        if (lower == 0)
            return;
        int nfd;
        if (ns_fd_for(c, i, CN_A_NETNS, "namespace", &nfd) < 0)
            return;
        m = new_link_msg(c, i);
        if (m == NULL)
            return;
        nb_put_u32(b, IFLA_LINK, (uint32_t)lower);
        if (has(o, CN_A_NETNS))
            nb_put_u32(b, IFLA_NET_NS_FD, (uint32_t)nfd);
        const char *kind = o->code == CN_OP_ADD_MACVLAN ? "macvlan"
                           : o->code == CN_OP_ADD_IPVLAN ? "ipvlan" : "vlan";
        size_t li = begin_linkinfo(b, IFLA_INFO_KIND, kind);
        size_t data = nb_nest(b, IFLA_INFO_DATA);
        if (o->code == CN_OP_ADD_MACVLAN) {
            nb_put_u32(b, IFLA_MACVLAN_MODE, u32_or(o, CN_A_MODE, MACVLAN_MODE_BRIDGE));
        } else if (o->code == CN_OP_ADD_IPVLAN) {
            nb_put_u16(b, IFLA_IPVLAN_MODE, (uint16_t)u32(o, CN_A_MODE));
            nb_put_u16(b, IFLA_IPVLAN_FLAGS, (uint16_t)u32(o, CN_A_IPVLAN_FLAG));
        } else {
            nb_put_u16(b, IFLA_VLAN_ID, (uint16_t)u32(o, CN_A_VLAN_ID));
        }
        nb_nest_end(b, data);
        nb_nest_end(b, li);
        end_msg(c, m);
        if (!has(o, CN_A_NETNS))
            mark_dirty(c, name);
        return;
    }
    case CN_OP_SET_LINK: {
        int master = 0, index = 0;
        if (has(o, CN_A_MASTER)) {
            master = resolve_for(c, i, str(o, CN_A_MASTER), "master link");
            if (master == 0)
                return;
        }
        if (has(o, CN_A_RENAME)) {
            /* A rename needs the index: IFLA_IFNAME then carries the new name. */
            index = resolve_for(c, i, name, NULL);
            if (index == 0)
                return;
        }
        int nfd;
        if (ns_fd_for(c, i, CN_A_NETNS, "namespace", &nfd) < 0)
            return;
        const uint32_t main_attrs = (1u << CN_A_UP) | (1u << CN_A_MTU) | (1u << CN_A_MAC) |
                                    (1u << CN_A_MASTER) | (1u << CN_A_RENAME) |
                                    (1u << CN_A_PROMISC) | (1u << CN_A_ALIAS);
        int want_main = (o->have & main_attrs) || (o->flags & CN_F_NOMASTER) ||
                        !(has(o, CN_A_HAIRPIN) || has(o, CN_A_NETNS));
        const char *cur = has(o, CN_A_RENAME) ? str(o, CN_A_RENAME) : name;
        if (want_main) {
            m = link_msg(c, i, ROLE_MAIN, RTM_NEWLINK, 0, cur);
            if (m == NULL)
                return;
            struct ifinfomsg *ifi = nb_hdr(b, m->off);
            ifi->ifi_index = index;
            put_flag(ifi, o, CN_A_UP, IFF_UP);
            put_flag(ifi, o, CN_A_PROMISC, IFF_PROMISC);
            put_mtu_mac(b, o);
            if (has(o, CN_A_MASTER))
                nb_put_u32(b, IFLA_MASTER, (uint32_t)master);
            else if (o->flags & CN_F_NOMASTER)
                nb_put_u32(b, IFLA_MASTER, 0);
            if (has(o, CN_A_ALIAS)) {
                const char *al = str(o, CN_A_ALIAS);
                nb_put(b, IFLA_IFALIAS, al, strlen(al));   /* empty: remove */
            }
            end_msg(c, m);
        }
        if (has(o, CN_A_HAIRPIN)) {
            /* Bridge-port data is applied before IFLA_MASTER of the same
             * request, so hairpin is a request of its own, after the main one. */
            m = link_msg(c, i, ROLE_HAIRPIN, RTM_NEWLINK, 0, cur);
            if (m == NULL)
                return;
            size_t li = begin_linkinfo(b, IFLA_INFO_SLAVE_KIND, "bridge");
            size_t sd = nb_nest(b, IFLA_INFO_SLAVE_DATA);
            nb_put_u8(b, IFLA_BRPORT_MODE, u32(o, CN_A_HAIRPIN) ? 1 : 0);
            nb_nest_end(b, sd);
            nb_nest_end(b, li);
            end_msg(c, m);
        }
        if (has(o, CN_A_NETNS)) {
            m = link_msg(c, i, ROLE_MOVE, RTM_NEWLINK, 0, cur);
            if (m == NULL)
                return;
            nb_put_u32(b, IFLA_NET_NS_FD, (uint32_t)nfd);
            end_msg(c, m);
        }
        if (has(o, CN_A_RENAME)) {
            mark_dirty(c, name);
            mark_dirty(c, cur);
        }
        if (has(o, CN_A_NETNS))
            mark_dirty(c, cur);
        return;
    }
    case CN_OP_DEL_LINK: {
        m = link_msg(c, i, ROLE_MAIN, RTM_DELLINK, 0, name);
        if (m == NULL)
            return;
        end_msg(c, m);
        mark_dirty(c, name);
        return;
    }
    case CN_OP_ADD_ADDR:
    case CN_OP_DEL_ADDR: {
        int index = resolve_for(c, i, str(o, CN_A_IFNAME), "link");
        if (index == 0)
            return;
        int add = o->code == CN_OP_ADD_ADDR;
        m = new_msg(c, i, ROLE_MAIN, add ? RTM_NEWADDR : RTM_DELADDR,
                    add ? NLM_F_CREATE | NLM_F_EXCL : 0, sizeof(struct ifaddrmsg));
        if (m == NULL)
            return;
        struct ifaddrmsg *ifa = nb_hdr(b, m->off);
        ifa->ifa_family = (uint8_t)u32(o, CN_A_FAMILY);
        ifa->ifa_prefixlen = (uint8_t)u32(o, CN_A_PREFIXLEN);
        ifa->ifa_index = (uint32_t)index;
        int nodad = add && (o->flags & CN_F_NODAD) && ifa->ifa_family == AF_INET6;
        if (nodad)
            ifa->ifa_flags = IFA_F_NODAD;
        put_attr(b, IFA_LOCAL, o, CN_A_ADDR);
        put_attr(b, IFA_ADDRESS, o, CN_A_ADDR);
        uint32_t plen = u32(o, CN_A_PREFIXLEN);
        if (add && o->alen[CN_A_ADDR] == 4 && plen < 31) {
            /* IPv4 gets its broadcast address, as the Go plugins (and ip "brd +") do. */
            uint32_t a4, mask = plen ? htonl(~0u << (32 - plen)) : 0;
            memcpy(&a4, o->a[CN_A_ADDR], 4);
            uint32_t brd = a4 | ~mask;
            nb_put(b, IFA_BROADCAST, &brd, 4);
        }
        if (nodad)
            nb_put_u32(b, IFA_FLAGS, IFA_F_NODAD);
        end_msg(c, m);
        return;
    }
    case CN_OP_ADD_ROUTE:
    case CN_OP_DEL_ROUTE: {
        int add = o->code == CN_OP_ADD_ROUTE;
        int oif = 0;
        if (has(o, CN_A_IFNAME)) {
            oif = resolve_for(c, i, str(o, CN_A_IFNAME), "link");
            if (oif == 0)
                return;
        }
        uint16_t flags = 0;
        if (add)
            flags = NLM_F_CREATE | ((o->flags & CN_F_REPLACE) ? NLM_F_REPLACE : NLM_F_EXCL);
        m = new_msg(c, i, ROLE_MAIN, add ? RTM_NEWROUTE : RTM_DELROUTE, flags,
                    sizeof(struct rtmsg));
        if (m == NULL)
            return;
        uint32_t table = u32_or(o, CN_A_TABLE, RT_TABLE_MAIN);
        struct rtmsg *rt = nb_hdr(b, m->off);
        rt->rtm_family = (uint8_t)u32(o, CN_A_FAMILY);
        rt->rtm_dst_len = (uint8_t)u32(o, CN_A_PREFIXLEN);
        rt->rtm_table = table < 256 ? (uint8_t)table : RT_TABLE_UNSPEC;
        /* What an unset protocol and scope mean: for an add, what `ip route`
         * puts (link scope for an IPv4 route without gateway); for a delete,
         * "any". */
        uint32_t scope = !add ? RT_SCOPE_NOWHERE
                         : rt->rtm_family == AF_INET && !has(o, CN_A_GATEWAY) ? RT_SCOPE_LINK
                         : RT_SCOPE_UNIVERSE;
        rt->rtm_protocol = (uint8_t)u32_or(o, CN_A_PROTO, add ? RTPROT_BOOT : RTPROT_UNSPEC);
        rt->rtm_scope = (uint8_t)u32_or(o, CN_A_SCOPE, scope);
        rt->rtm_type = add ? RTN_UNICAST : RTN_UNSPEC;
        nb_put_u32(b, RTA_TABLE, table);
        if (has(o, CN_A_DST) && u32(o, CN_A_PREFIXLEN) > 0)
            put_attr(b, RTA_DST, o, CN_A_DST);
        put_attr_if(b, RTA_GATEWAY, o, CN_A_GATEWAY);
        if (oif)
            nb_put_u32(b, RTA_OIF, (uint32_t)oif);
        put_attr_if(b, RTA_PRIORITY, o, CN_A_PRIORITY);
        put_attr_if(b, RTA_PREFSRC, o, CN_A_SRC);
        if (add && (has(o, CN_A_MTU) || has(o, CN_A_ADVMSS))) {
            size_t mx = nb_nest(b, RTA_METRICS);
            put_attr_if(b, RTAX_MTU, o, CN_A_MTU);
            put_attr_if(b, RTAX_ADVMSS, o, CN_A_ADVMSS);
            nb_nest_end(b, mx);
        }
        end_msg(c, m);
        return;
    }
    case CN_OP_ADD_NEIGH: {
        int index = resolve_for(c, i, str(o, CN_A_IFNAME), "link");
        if (index == 0)
            return;
        uint16_t flags = NLM_F_CREATE | ((o->flags & CN_F_REPLACE) ? NLM_F_REPLACE : NLM_F_EXCL);
        m = new_msg(c, i, ROLE_MAIN, RTM_NEWNEIGH, flags, sizeof(struct ndmsg));
        if (m == NULL)
            return;
        struct ndmsg *nd = nb_hdr(b, m->off);
        nd->ndm_family = (uint8_t)u32(o, CN_A_FAMILY);
        nd->ndm_ifindex = index;
        nd->ndm_state = (o->flags & CN_F_PERMANENT) ? NUD_PERMANENT : NUD_REACHABLE;
        put_attr(b, NDA_DST, o, CN_A_ADDR);
        put_attr(b, NDA_LLADDR, o, CN_A_LLADDR);
        end_msg(c, m);
        return;
    }
    default:
        add_error(c, i, EINVAL, "unknown op");
    }
}

/* Every op must carry the attributes its requests need. */
static int validate_op(const struct op *o)
{
    uint32_t need = 0;
    switch (o->code) {
    case CN_OP_ADD_VETH:
        need = (1u << CN_A_NAME) | (1u << CN_A_PEER);
        break;
    case CN_OP_ADD_BRIDGE:
    case CN_OP_SET_LINK:
    case CN_OP_DEL_LINK:
        need = 1u << CN_A_NAME;
        break;
    case CN_OP_ADD_MACVLAN:
    case CN_OP_ADD_IPVLAN:
        need = (1u << CN_A_NAME) | (1u << CN_A_MASTER);
        break;
    case CN_OP_ADD_VLAN:
        need = (1u << CN_A_NAME) | (1u << CN_A_MASTER) | (1u << CN_A_VLAN_ID);
        break;
    case CN_OP_ADD_ADDR:
    case CN_OP_DEL_ADDR:
        need = (1u << CN_A_IFNAME) | (1u << CN_A_FAMILY) | (1u << CN_A_ADDR) |
               (1u << CN_A_PREFIXLEN);
        break;
    case CN_OP_ADD_ROUTE:
    case CN_OP_DEL_ROUTE:
        need = (1u << CN_A_FAMILY) | (1u << CN_A_PREFIXLEN);
        break;
    case CN_OP_ADD_NEIGH:
        need = (1u << CN_A_IFNAME) | (1u << CN_A_FAMILY) | (1u << CN_A_ADDR) |
               (1u << CN_A_LLADDR);
        break;
    default:
        return -EINVAL;
    }
    return (o->have & need) == need ? 0 : -EINVAL;
}

/* ---- sending and collecting ACKs ----------------------------------- */

static void close_phase_fds(struct ctx *c)
{
    for (int i = 0; i < c->nfds; i++)
        close(c->fds[i]);
    c->nfds = 0;
}

static void read_ack(struct ctx *c, const unsigned char *p, size_t n, uint32_t seq0, int s, int e,
                     int *got)
{
    const struct nlmsghdr *h = (const struct nlmsghdr *)p;
    for (size_t rem = n; cn_nlmsg_ok(h, rem); h = cn_nlmsg_next(h, &rem)) {
        if (h->nlmsg_type == NLMSG_ERROR &&
            h->nlmsg_len >= NLMSG_HDRLEN + sizeof(struct nlmsgerr)) {
            const struct nlmsgerr *err = NLMSG_DATA(h);
            uint32_t k = h->nlmsg_seq - seq0;
            if (k < (uint32_t)(e - s) && c->msgs[s + (int)k].res == RES_UNSET) {
                struct msgrec *m = &c->msgs[s + (int)k];
                m->res = err->error < 0 ? -err->error : 0;
                (*got)++;
                if (m->res && (h->nlmsg_flags & NLM_F_ACK_TLVS)) {
                    size_t off = NLMSG_HDRLEN + sizeof(struct nlmsgerr);
                    if (!(h->nlmsg_flags & NLM_F_CAPPED))
                        off += NLMSG_ALIGN(err->msg.nlmsg_len) - sizeof(struct nlmsghdr);
                    if (off < h->nlmsg_len) {
                        struct nlattr *tb[NLMSGERR_ATTR_MAX + 1];
                        cn_parse_attrs(tb, NLMSGERR_ATTR_MAX, (const char *)h + off,
                                       (int)(h->nlmsg_len - off));
                        struct nlattr *msg = tb[NLMSGERR_ATTR_MSG];
                        if (msg && CN_NLA_LEN(msg) > 0)
                            snprintf(m->emsg, sizeof m->emsg, "%.*s", CN_NLA_LEN(msg),
                                     (const char *)CN_NLA_DATA(msg));
                    }
                }
            }
        }
    }
}

/* Send msgs [s, e) with one sendmsg and collect their ACKs. Returns 0, or
 * -errno if the socket failed (then every message of the chunk is lost). */
static int send_chunk(struct ctx *c, int s, int e)
{
    size_t from = c->msgs[s].off;
    size_t to = e < c->nmsgs ? c->msgs[e].off : c->pend.len;
    uint32_t seq0 = c->seq;
    for (int k = s; k < e; k++) {
        struct nlmsghdr *h = (struct nlmsghdr *)(c->pend.p + c->msgs[k].off);
        h->nlmsg_seq = c->seq++;
    }
    c->st->messages += e - s;
    if (c->render) {
        size_t at = nb_raw(&c->out, to - from);
        if (c->out.oom) {
            c->fatal = -ENOMEM;
            return -ENOMEM;
        }
        memcpy(c->out.p + at, c->pend.p + from, to - from);
        for (int k = s; k < e; k++)
            c->msgs[k].res = 0;
        return 0;
    }

    struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
    struct iovec iov = {.iov_base = c->pend.p + from, .iov_len = to - from};
    struct msghdr mh = {.msg_name = &sa, .msg_namelen = sizeof sa, .msg_iov = &iov,
                        .msg_iovlen = 1};
    ssize_t n;
    do {
        n = sendmsg(c->sock, &mh, 0);
    } while (n < 0 && errno == EINTR);
    c->st->sendmsgs++;
    if (n < 0)
        return -errno;

    struct mmsghdr vec[RX_VLEN];
    struct iovec riov[RX_VLEN];
    int got = 0, need = e - s, overrun = 0;
    while (got < need) {
        int vlen = need - got < RX_VLEN ? need - got : RX_VLEN;
        for (int k = 0; k < vlen; k++) {
            riov[k].iov_base = c->rx + (size_t)k * RX_SLOT;
            riov[k].iov_len = RX_SLOT;
            memset(&vec[k], 0, sizeof vec[k]);
            vec[k].msg_hdr.msg_iov = &riov[k];
            vec[k].msg_hdr.msg_iovlen = 1;
        }
        int r = recvmmsg(c->sock, vec, (unsigned)vlen, MSG_DONTWAIT, NULL);
        c->st->recvs++;
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == ENOBUFS) {      /* ACKs were dropped: the queue overran */
                overrun = 1;
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (overrun)
                    break;               /* whatever is missing was dropped */
                struct pollfd pfd = {.fd = c->sock, .events = POLLIN};
                int pr = poll(&pfd, 1, ACK_WAIT_MS);
                if (pr == 0)
                    break;
                continue;
            }
            return -errno;
        }
        for (int k = 0; k < r; k++)
            read_ack(c, c->rx + (size_t)k * RX_SLOT, vec[k].msg_len, seq0, s, e, &got);
    }
    if (got < need) {
        for (int k = s; k < e; k++)
            if (c->msgs[k].res == RES_UNSET) {
                c->msgs[k].res = overrun ? ENOBUFS : ETIMEDOUT;
                snprintf(c->msgs[k].emsg, sizeof c->msgs[k].emsg, "%s",
                         overrun ? "ACK lost: netlink receive buffer overrun, outcome unknown"
                                 : "no ACK from the kernel, outcome unknown");
            }
    }
    return 0;
}

/* Send every pending request (the current phase), record results. */
static int flush(struct ctx *c)
{
    if (c->nmsgs == 0 || c->fatal)
        goto done;
    c->st->phases++;
    int chunk_max = c->rcvbuf ? 1 << 30 : CHUNK_MSGS_FORCED;
    int s = 0;
    while (s < c->nmsgs) {
        int e = s + 1;
        while (e < c->nmsgs && e - s < chunk_max && c->msgs[e].off - c->msgs[s].off < CHUNK_BYTES)
            e++;
        if (!c->render && c->rcvbuf == 0 && e - s > CHUNK_MSGS_DEFAULT) {
            /* Make room for all ACKs; without CAP_NET_ADMIN send fewer at once. */
            int sz = (e - s) * ACK_TRUESIZE;
            if (sz > c->rcvbuf_big) {
                if (setsockopt(c->sock, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof sz) == 0)
                    c->rcvbuf_big = sz;
                else
                    e = s + CHUNK_MSGS_DEFAULT;
            }
        }
        int rc = send_chunk(c, s, e);
        int failed = 0;
        for (int k = s; k < e; k++) {
            struct msgrec *m = &c->msgs[k];
            const struct op *o = &c->ops[m->op];
            if (rc < 0) {
                m->res = -rc;
                snprintf(m->emsg, sizeof m->emsg, "sendmsg failed");
            }
            if (m->res == 0) {
                track_success(c, m);
            } else if (ignorable(o, m->res)) {
                m->res = 0;
            } else {
                if ((m->res == ENOBUFS || m->res == ETIMEDOUT) && creates(o, m)) {
                    /* Unknown outcome: try to remove it in the rollback too. */
                    note_created(c, created_ns(o), str(o, CN_A_NAME), m->op);
                }
                add_error(c, m->op, m->res, m->emsg);
                failed = 1;
            }
        }
        if (failed || c->fatal)
            break;                           /* later chunks are not sent */
        s = e;
    }
done:
    close_phase_fds(c);
    nb_reset(&c->pend);
    c->nmsgs = 0;
    c->ndirty = 0;
    c->ncache = 0;
    return c->nerr ? -1 : 0;
}

/* ---- rollback -------------------------------------------------------- */

static int del_link_now(int sock, const char *name, uint32_t seq)
{
    struct nlbuf b;
    nb_init(&b);
    size_t off = nb_msg(&b, RTM_DELLINK, NLM_F_REQUEST | NLM_F_ACK, seq,
                        sizeof(struct ifinfomsg));
    nb_put_str(&b, IFLA_IFNAME, name);
    nb_msg_end(&b, off);
    if (b.oom) {
        nb_free(&b);
        return -ENOMEM;
    }
    struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
    int rc = (int)sendto(sock, b.p, b.len, 0, (struct sockaddr *)&sa, sizeof sa);
    nb_free(&b);
    if (rc < 0)
        return -errno;
    unsigned char buf[1024];
    for (;;) {
        struct pollfd pfd = {.fd = sock, .events = POLLIN};
        if (poll(&pfd, 1, ACK_WAIT_MS) <= 0)
            return -ETIMEDOUT;
        ssize_t n = recv(sock, buf, sizeof buf, MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == ENOBUFS)
                continue;
            return -errno;
        }
        const struct nlmsghdr *h = (const struct nlmsghdr *)buf;
        if ((size_t)n >= NLMSG_HDRLEN + sizeof(struct nlmsgerr) && h->nlmsg_type == NLMSG_ERROR &&
            h->nlmsg_seq == seq) {
            const struct nlmsgerr *e = NLMSG_DATA(h);
            return e->error;
        }
    }
}

static void rollback(struct ctx *c)
{
    const char *socks_ns[8];
    int socks[8], nsocks = 0;
    for (int i = c->ncreated - 1; i >= 0; i--) {
        struct created *k = &c->created[i];
        if (k->name[0] == '\0')
            continue;
        int sock = -1;
        if (k->ns == NULL) {
            sock = c->sock;
        } else {
            for (int j = 0; j < nsocks; j++)
                if (strcmp(socks_ns[j], k->ns) == 0)
                    sock = socks[j];
            if (sock < 0) {
                sock = cn_nl_socket(k->ns);
                if (sock < 0)
                    continue;
                if (nsocks < 8) {
                    socks_ns[nsocks] = k->ns;
                    socks[nsocks++] = sock;
                }
            }
        }
        if (del_link_now(sock, k->name, c->seq++) == 0)
            c->st->rolled_back++;
        if (sock != c->sock) {
            int cached = 0;
            for (int j = 0; j < nsocks; j++)
                cached |= socks[j] == sock;
            if (!cached)
                close(sock);
        }
    }
    for (int j = 0; j < nsocks; j++)
        close(socks[j]);
}

/* ---- entry points ---------------------------------------------------- */

/* Failures go to errs (room for errs_cap), counters to *stats (zeroed; NULL: none). */
static void ctx_init(struct ctx *c, struct cn_err *errs, int errs_cap, struct cn_stats *stats)
{
    memset(c, 0, sizeof *c);
    c->sock = -1;
    c->errs = errs;
    c->caperr = errs_cap;
    c->st = stats ? stats : &c->own_st;
    memset(c->st, 0, sizeof *c->st);
    nb_init(&c->pend);
    nb_init(&c->out);
}

/* Everything but the render output. */
static void ctx_free(struct ctx *c)
{
    if (c->sock >= 0)
        close(c->sock);
    close_phase_fds(c);
    nb_free(&c->pend);
    free(c->msgs);
    free(c->fds);
    free(c->dirty);
    free(c->cache);
    free(c->created);
    free(c->ops);
    free(c->rx);
}

static int run(struct ctx *c, const unsigned char *buf, size_t len)
{
    int rc = parse_batch(buf, len, &c->ops, &c->nops);
    if (rc < 0)
        return rc;
    for (int i = 0; i < c->nops; i++)
        if (validate_op(&c->ops[i]) < 0)
            return -EINVAL;
    if (c->nops > c->caperr)
        return -EINVAL;

    if (!c->render) {
        c->rx = malloc((size_t)RX_VLEN * RX_SLOT);
        if (c->rx == NULL)
            return -ENOMEM;
        c->sock = cn_nl_socket(c->netns);
        if (c->sock < 0)
            return c->sock;
        int one = 1;
        setsockopt(c->sock, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
        setsockopt(c->sock, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
        if (c->rcvbuf > 0)
            setsockopt(c->sock, SOL_SOCKET, SO_RCVBUF, &c->rcvbuf, sizeof c->rcvbuf);
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        c->seq = (uint32_t)(ts.tv_nsec ^ (ts.tv_sec << 20)) | 1u;
    } else {
        c->seq = 1;
    }

    for (int i = 0; i < c->nops && c->nerr == 0 && !c->fatal; i++)
        build_op(c, i);
    if (c->nerr == 0 && !c->fatal)
        flush(c);
    if ((c->nerr || c->fatal) && !c->render)
        rollback(c);
    if (c->fatal && c->nerr == 0)
        return c->fatal;
    qsort(c->errs, (size_t)c->nerr, sizeof *c->errs, cmp_err);
    return c->nerr;
}

int cn_batch_commit(const char *netns, const unsigned char *buf, size_t len, int rcvbuf,
                    struct cn_err *errs, int errs_cap, struct cn_stats *stats)
{
    struct ctx c;
    ctx_init(&c, errs, errs_cap, stats);
    c.netns = netns;
    c.rcvbuf = rcvbuf;
    int rc = run(&c, buf, len);
    ctx_free(&c);
    nb_free(&c.out);
    return rc;
}

int cn_batch_render(const unsigned char *buf, size_t len, const char *names,
                    unsigned char **out, size_t *outlen,
                    struct cn_err *errs, int errs_cap, struct cn_stats *stats)
{
    struct ctx c;
    ctx_init(&c, errs, errs_cap, stats);
    c.render = 1;
    c.names = names ? names : "";
    *out = NULL;
    *outlen = 0;
    int rc = run(&c, buf, len);
    ctx_free(&c);
    if (rc >= 0 && !c.out.oom) {
        *out = c.out.p;                  /* caller frees with cn_free */
        *outlen = c.out.len;
    } else {
        nb_free(&c.out);
    }
    return rc;
}
