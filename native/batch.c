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
#include "cn_batch.h"

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

/* ---- errors --------------------------------------------------------- */

void add_error(struct ctx *c, int index, int err, const char *msg)
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

_Static_assert(CN_A_MAX < 64, "struct op keeps the attribute set in 64 bits");

/* The class of every attribute type (cn_abi.def): how its payload is checked. */
static const unsigned char ATTR_CLASS[CN_A_MAX + 1] = {
#define CN_ATTR(name, type, cls) [type] = CN_AC_##cls,
#include "cn_abi.def"
};

int cn_attr_class(int t)
{
    return t >= 1 && t <= CN_A_MAX ? ATTR_CLASS[t] : 0;
}

/* Whether a payload of dlen bytes at d is valid for attribute class cls. */
static int payload_ok(int cls, const unsigned char *d, int dlen)
{
    switch (cls) {
    case CN_AC_IFNAME:
    case CN_AC_STR:
        /* exactly one NUL, at the end; an interface name is not empty */
        if (dlen < (cls == CN_AC_IFNAME ? 2 : 1) || d[dlen - 1] != '\0' ||
            memchr(d, '\0', (size_t)dlen) != d + dlen - 1)
            return 0;
        return cls != CN_AC_IFNAME || dlen <= IFNAMSIZ;
    case CN_AC_IP:
        return dlen == 4 || dlen == 16;
    case CN_AC_HW:
        return dlen >= 1 && dlen <= 32;
    case CN_AC_U32:
        return dlen == 4;
    case CN_AC_U64:
        return dlen == 8;
    default:
        return 0;
    }
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
            if (!payload_ok(ATTR_CLASS[atype], d, dlen))
                goto bad;
            o->a[atype] = d;
            o->alen[atype] = dlen;
            o->have |= BIT(atype);
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

/* ---- names ---------------------------------------------------------- */

static int name_in(char (*set)[IFNAMSIZ], int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strncmp(set[i], name, IFNAMSIZ) == 0)
            return 1;
    return 0;
}

void mark_dirty(struct ctx *c, const char *name)
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


/* ifindex of name in the batch namespace, flushing first when an unsent
 * request changes what the name refers to. > 0, -ENODEV, or 0 when a flush
 * reported errors (the op must not run). */
int resolve(struct ctx *c, const char *name)
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

struct created *find_created(struct ctx *c, const char *ns, const char *name)
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

void note_created(struct ctx *c, const char *ns, const char *name, int op)
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

/* The request that creates a link: the main request of an op whose table
 * row says it creates one. */
int creates(const struct op *o, const struct msgrec *m)
{
    return m->role == ROLE_MAIN && cn_ops[o->code].creates != CREATES_NOTHING;
}

/* Where the link an op creates lives (NULL: the batch namespace). */
static const char *created_ns(const struct op *o)
{
    return cn_ops[o->code].creates == CREATES_IN_NETNS ? str(o, CN_A_NETNS) : NULL;
}

/* A request succeeded: keep the list of links the batch created current. */
static void track_success(struct ctx *c, const struct msgrec *m)
{
    const struct op *o = &c->ops[m->op];
    if (creates(o, m))
        note_created(c, created_ns(o), str(o, CN_A_NAME), m->op);
    if (cn_ops[o->code].done)
        cn_ops[o->code].done(c, m);
}

/* With CN_F_MISSING_OK, the errnos of the op's row mean "gone already". */
int ignorable(const struct op *o, int err)
{
    if (!(o->flags & CN_F_MISSING_OK) || err == 0)
        return 0;
    const int *gone = cn_ops[o->code].gone;
    for (size_t k = 0; k < sizeof cn_ops[0].gone / sizeof *gone; k++)
        if (gone[k] == err)
            return 1;
    return 0;
}

/* ---- building requests --------------------------------------------- */

struct msgrec *new_msg(struct ctx *c, int op, int role, uint16_t type, uint16_t flags,
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

void end_msg(struct ctx *c, struct msgrec *m)
{
    nb_msg_end(&c->pend, m->off);
}

/* Open a namespace file for IFLA_NET_NS_FD; kept open until the phase is sent. */
int ns_fd(struct ctx *c, const char *path)
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
int flush(struct ctx *c)
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
    for (int i = 0; i < c->nops; i++) {
        uint64_t need = cn_ops[c->ops[i].code].need;
        if (cn_ops[c->ops[i].code].build == NULL || (c->ops[i].have & need) != need)
            return -EINVAL;                  /* an op without what its requests need */
    }
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
        cn_ops[c->ops[i].code].build(c, i);
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
