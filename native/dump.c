/* Read-back dumps: links, addresses, routes, neighbours, qdiscs, filters and
 * rules of one namespace. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/fib_rules.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/neighbour.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <linux/tc_act/tc_mirred.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include "corecni_native.h"
#include "cn_nl.h"

#define DUMP_BUF (64 * 1024)

void cn_free(void *p)
{
    free(p);
}

/* A growable array of fixed-size records. */
struct vec {
    void *p;
    int n, cap;
    size_t size;
};

static void *vec_add(struct vec *v)
{
    if (cn_grow(&v->p, &v->cap, v->n + 1, v->size) < 0)
        return NULL;
    void *r = (char *)v->p + (size_t)v->n++ * v->size;
    memset(r, 0, v->size);
    return r;
}

/* ifindex -> name cache for one dump, filled with SIOCGIFNAME. */
struct names {
    int sock;
    int idx[64];
    char name[64][IFNAMSIZ];
    int n;
};

static void name_of(struct names *nm, int index, char out[IFNAMSIZ])
{
    out[0] = '\0';
    if (index <= 0)
        return;
    for (int i = 0; i < nm->n; i++)
        if (nm->idx[i] == index) {
            memcpy(out, nm->name[i], IFNAMSIZ);
            return;
        }
    if (cn_ifname(nm->sock, index, out) < 0)
        return;
    if (nm->n < 64) {
        nm->idx[nm->n] = index;
        memcpy(nm->name[nm->n++], out, IFNAMSIZ);
    }
}

typedef int (*dump_cb)(const struct nlmsghdr *h, void *arg);

/* Send one request (a dump, or a plain get) and feed every answer to cb.
 * Returns 0 or -errno (the kernel's error for a get). */
static int nl_request(int sock, struct nlbuf *req, uint16_t want_type, dump_cb cb, void *arg)
{
    struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
    const struct nlmsghdr *rq = (const struct nlmsghdr *)req->p;
    int is_dump = (rq->nlmsg_flags & NLM_F_DUMP) == NLM_F_DUMP;
    uint32_t seq = rq->nlmsg_seq;
    if (sendto(sock, req->p, req->len, 0, (struct sockaddr *)&sa, sizeof sa) < 0)
        return -errno;
    unsigned char *buf = malloc(DUMP_BUF);
    if (buf == NULL)
        return -ENOMEM;
    int rc = 0, done = 0;
    while (!done) {
        struct iovec iov = {.iov_base = buf, .iov_len = DUMP_BUF};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
        ssize_t n = recvmsg(sock, &mh, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            break;
        }
        if (mh.msg_flags & MSG_TRUNC) {
            rc = -EMSGSIZE;
            break;
        }
        const struct nlmsghdr *h = (const struct nlmsghdr *)buf;
        for (size_t rem = (size_t)n; !done && cn_nlmsg_ok(h, rem); h = cn_nlmsg_next(h, &rem)) {
            if (h->nlmsg_seq == seq) {
                if (h->nlmsg_type == NLMSG_DONE) {
                    done = 1;
                } else if (h->nlmsg_type == NLMSG_ERROR) {
                    const struct nlmsgerr *e = NLMSG_DATA(h);
                    if (h->nlmsg_len >= NLMSG_HDRLEN + sizeof *e)
                        rc = e->error;
                    done = 1;
                } else if (h->nlmsg_type == want_type) {
                    if (rc == 0)
                        rc = cb(h, arg);
                    if (!is_dump)
                        done = 1;
                }
            }
        }
    }
    free(buf);
    return rc;
}

/* A hardware address attribute as "aa:bb:..", "" when absent. */
static void fmt_hw(char *out, size_t outlen, const struct nlattr *a)
{
    out[0] = '\0';
    if (a == NULL)
        return;
    const unsigned char *p = CN_NLA_DATA(a);
    int len = CN_NLA_LEN(a);
    size_t pos = 0;
    for (int i = 0; i < len && pos + 4 <= outlen; i++)
        pos += (size_t)snprintf(out + pos, outlen - pos, i ? ":%02x" : "%02x", p[i]);
}

static void fmt_ip(char *out, size_t outlen, int family, const struct nlattr *a)
{
    out[0] = '\0';
    if (a == NULL)
        return;
    int want = family == AF_INET ? 4 : 16;
    if (CN_NLA_LEN(a) != want)
        return;
    inet_ntop(family, CN_NLA_DATA(a), out, (socklen_t)outlen);
}

static uint32_t nla_u32(const struct nlattr *a)
{
    uint32_t v = 0;
    if (a && CN_NLA_LEN(a) >= 4)
        memcpy(&v, CN_NLA_DATA(a), 4);
    return v;
}

static unsigned int nla_u16(const struct nlattr *a)
{
    uint16_t v = 0;
    if (a && CN_NLA_LEN(a) >= 2)
        memcpy(&v, CN_NLA_DATA(a), 2);
    return v;
}

static int nla_u8(const struct nlattr *a)
{
    return a && CN_NLA_LEN(a) >= 1 ? *(const unsigned char *)CN_NLA_DATA(a) : 0;
}

static void nla_str(char *out, size_t outlen, const struct nlattr *a)
{
    out[0] = '\0';
    if (a == NULL)
        return;
    int len = CN_NLA_LEN(a);
    const char *s = CN_NLA_DATA(a);
    size_t n = strnlen(s, (size_t)len);
    if (n >= outlen)
        n = outlen - 1;
    memcpy(out, s, n);
    out[n] = '\0';
}

/* ---- links ------------------------------------------------------------ */

struct link_ctx {
    struct vec v;
    struct vec master;           /* parallel: master ifindex (int) per link */
};

/* What a link kind reports in its IFLA_INFO_DATA that CHECK compares: one row per
 * kind (its nested attribute, that attribute's width, and where it goes). A new kind
 * is a new row. */
enum kind_field { KF_MODE, KF_VLAN_ID, KF_TABLE };

static const struct {
    const char *kind;
    int maxtype;
    int type;
    int width;          /* 2 or 4 bytes */
    enum kind_field field;
} KIND_DATA[] = {
    {"macvlan", IFLA_MACVLAN_MAX, IFLA_MACVLAN_MODE, 4, KF_MODE},
    {"ipvlan", IFLA_IPVLAN_MAX, IFLA_IPVLAN_MODE, 2, KF_MODE},
    {"vlan", IFLA_VLAN_MAX, IFLA_VLAN_ID, 2, KF_VLAN_ID},
    {"vrf", IFLA_VRF_MAX, IFLA_VRF_TABLE, 4, KF_TABLE},
};

#define KIND_DATA_MAXTYPE 32  /* at least every maxtype of KIND_DATA */
_Static_assert(IFLA_MACVLAN_MAX <= KIND_DATA_MAXTYPE && IFLA_IPVLAN_MAX <= KIND_DATA_MAXTYPE &&
               IFLA_VLAN_MAX <= KIND_DATA_MAXTYPE && IFLA_VRF_MAX <= KIND_DATA_MAXTYPE,
               "KIND_DATA_MAXTYPE too small");

static void link_kind_data(struct cn_link *l, const struct nlattr *data)
{
    if (data == NULL)
        return;
    for (size_t k = 0; k < sizeof KIND_DATA / sizeof KIND_DATA[0]; k++) {
        if (strcmp(l->kind, KIND_DATA[k].kind) != 0)
            continue;
        struct nlattr *tb[KIND_DATA_MAXTYPE + 1];
        cn_parse_nested(tb, KIND_DATA[k].maxtype, data);
        const struct nlattr *a = tb[KIND_DATA[k].type];
        if (a == NULL)
            return;
        unsigned int value = KIND_DATA[k].width == 2 ? nla_u16(a) : nla_u32(a);
        switch (KIND_DATA[k].field) {
        case KF_MODE:
            l->has_mode = 1;
            l->mode = value;
            break;
        case KF_VLAN_ID:
            l->has_vlan_id = 1;
            l->vlan_id = value;
            break;
        case KF_TABLE:
            l->has_table = 1;
            l->table = value;
            break;
        }
        return;
    }
}

static int link_cb(const struct nlmsghdr *h, void *arg)
{
    struct link_ctx *lc = arg;
    if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct ifinfomsg)))
        return 0;
    const struct ifinfomsg *ifi = NLMSG_DATA(h);
    struct nlattr *tb[IFLA_MAX + 1];
    cn_parse_msg(tb, IFLA_MAX, h, sizeof *ifi);
    struct cn_link *l = vec_add(&lc->v);
    if (l == NULL)
        return -ENOMEM;
    int *master = vec_add(&lc->master);
    if (master == NULL)
        return -ENOMEM;
    l->index = ifi->ifi_index;
    l->up = (ifi->ifi_flags & IFF_UP) != 0;
    l->promisc = (ifi->ifi_flags & IFF_PROMISC) != 0;
    l->allmulti = (ifi->ifi_flags & IFF_ALLMULTI) != 0;
    l->hairpin = -1;
    l->vlan_filtering = -1;
    nla_str(l->name, sizeof l->name, tb[IFLA_IFNAME]);
    l->mtu = nla_u32(tb[IFLA_MTU]);
    l->txqlen = nla_u32(tb[IFLA_TXQLEN]);
    fmt_hw(l->mac, sizeof l->mac, tb[IFLA_ADDRESS]);
    *master = (int)nla_u32(tb[IFLA_MASTER]);
    if (tb[IFLA_LINK]) {
        l->has_link = 1;
        l->link = (int)nla_u32(tb[IFLA_LINK]);
    }
    if (tb[IFLA_LINK_NETNSID]) {
        l->has_link_netnsid = 1;
        l->link_netnsid = (int)nla_u32(tb[IFLA_LINK_NETNSID]);
    }
    nla_str(l->alias, sizeof l->alias, tb[IFLA_IFALIAS]);
    if (tb[IFLA_LINKINFO]) {
        struct nlattr *li[IFLA_INFO_MAX + 1];
        cn_parse_nested(li, IFLA_INFO_MAX, tb[IFLA_LINKINFO]);
        nla_str(l->kind, sizeof l->kind, li[IFLA_INFO_KIND]);
        if (strcmp(l->kind, "bridge") == 0) {
            l->vlan_filtering = 0;
            if (li[IFLA_INFO_DATA]) {
                struct nlattr *br[IFLA_BR_MAX + 1];
                cn_parse_nested(br, IFLA_BR_MAX, li[IFLA_INFO_DATA]);
                l->vlan_filtering = nla_u8(br[IFLA_BR_VLAN_FILTERING]) != 0;
            }
        }
        link_kind_data(l, li[IFLA_INFO_DATA]);
        char skind[32];
        nla_str(skind, sizeof skind, li[IFLA_INFO_SLAVE_KIND]);
        if (strcmp(skind, "bridge") == 0) {
            l->hairpin = 0;
            if (li[IFLA_INFO_SLAVE_DATA]) {
                struct nlattr *bp[IFLA_BRPORT_MAX + 1];
                cn_parse_nested(bp, IFLA_BRPORT_MAX, li[IFLA_INFO_SLAVE_DATA]);
                l->hairpin = nla_u8(bp[IFLA_BRPORT_MODE]) != 0;
            }
        }
    }
    return 0;
}

/* RTM_GETLINK on `sock`: link `name`, or every link when NULL; each answer to cb. */
static int getlink_on(int sock, const char *name, dump_cb cb, void *arg)
{
    struct nlbuf b;
    nb_init(&b);
    uint16_t flags = NLM_F_REQUEST | (name ? 0 : NLM_F_DUMP);
    size_t off = nb_msg(&b, RTM_GETLINK, flags, 1, sizeof(struct ifinfomsg));
    if (name)
        nb_put_str(&b, IFLA_IFNAME, name);
    nb_put_u32(&b, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
    nb_msg_end(&b, off);
    int rc = b.oom ? -ENOMEM : nl_request(sock, &b, RTM_NEWLINK, cb, arg);
    nb_free(&b);
    return rc;
}

int cn_dump_links(const char *netns, const char *name, struct cn_link **out)
{
    *out = NULL;
    if (name && (name[0] == '\0' || strlen(name) >= IFNAMSIZ))
        return 0;
    int sock = cn_nl_socket(netns);
    if (sock < 0)
        return sock;
    struct link_ctx lc = {.v = {.size = sizeof(struct cn_link)}, .master = {.size = sizeof(int)}};
    int rc = getlink_on(sock, name, link_cb, &lc);
    if (name && (rc == -ENODEV || rc == -ENOENT))
        rc = 0;                              /* no such link: empty answer */
    if (rc == 0) {
        struct names nm = {.sock = sock};
        struct cn_link *l = lc.v.p;
        const int *master = lc.master.p;
        for (int i = 0; i < lc.v.n; i++) {
            int m = master[i];
            if (m <= 0)
                continue;
            for (int j = 0; j < lc.v.n && !l[i].master[0]; j++)
                if (l[j].index == m)
                    memcpy(l[i].master, l[j].name, IFNAMSIZ);
            if (!l[i].master[0])
                name_of(&nm, m, l[i].master);
        }
    }
    close(sock);
    free(lc.master.p);
    if (rc < 0) {
        free(lc.v.p);
        return rc;
    }
    *out = lc.v.p;
    return lc.v.n;
}

int cn_parse_link(const unsigned char *buf, size_t len, struct cn_link *out)
{
    memset(out, 0, sizeof *out);
    if (buf == NULL || len < NLMSG_LENGTH(sizeof(struct ifinfomsg)))
        return -EINVAL;
    /* A copy: the caller's bytes need not be aligned for the header and attributes. */
    unsigned char *msg = malloc(len);
    if (msg == NULL)
        return -ENOMEM;
    memcpy(msg, buf, len);
    const struct nlmsghdr *h = (const struct nlmsghdr *)msg;
    struct link_ctx lc = {.v = {.size = sizeof(struct cn_link)}, .master = {.size = sizeof(int)}};
    int rc = -EINVAL;
    if (cn_nlmsg_ok(h, len) && h->nlmsg_len == len && h->nlmsg_type == RTM_NEWLINK)
        rc = link_cb(h, &lc);
    if (rc == 0 && lc.v.n == 1)
        memcpy(out, lc.v.p, sizeof *out);
    else if (rc == 0)
        rc = -EINVAL;
    free(msg);
    free(lc.v.p);
    free(lc.master.p);
    return rc;
}

/* ---- per-device IP settings (the devconf behind /proc/sys/net/ipv{4,6}/conf/DEV) -- */

struct conf_ctx {
    int family;     /* AF_INET or AF_INET6 */
    int *out;
    int cap;
    int n;          /* entries filled (index + 1 of the last one) */
};

/* IFLA_AF_SPEC holds one nest per family; its conf attribute (AF_INET's
 * IFLA_INET_CONF, AF_INET6's IFLA_INET6_CONF) is a flat array of 32-bit values in
 * the kernel's numbering, which starts at 1 for IPV4_DEVCONF_* (entry 0 of the
 * array is setting 1) and at 0 for DEVCONF_*. out[i] is setting i in that
 * family's own numbering (AF_INET: out[0] unused). */
static int conf_cb(const struct nlmsghdr *h, void *arg)
{
    struct conf_ctx *cc = arg;
    if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct ifinfomsg)))
        return 0;
    struct nlattr *tb[IFLA_MAX + 1];
    cn_parse_msg(tb, IFLA_MAX, h, sizeof(struct ifinfomsg));
    const struct nlattr *spec = tb[IFLA_AF_SPEC];
    if (spec == NULL)
        return 0;
    int rem = CN_NLA_LEN(spec);
    for (const struct nlattr *af = CN_NLA_DATA(spec); CN_NLA_OK(af, rem); af = CN_NLA_NEXT(af, rem)) {
        if (CN_NLA_TYPE(af) != cc->family)
            continue;
        struct nlattr *in[IFLA_INET6_MAX + 1];
        _Static_assert(IFLA_INET_MAX <= IFLA_INET6_MAX, "one table for both families");
        int is4 = cc->family == AF_INET;
        cn_parse_nested(in, is4 ? IFLA_INET_MAX : IFLA_INET6_MAX, af);
        const struct nlattr *conf = in[is4 ? IFLA_INET_CONF : IFLA_INET6_CONF];
        if (conf == NULL)
            return 0;
        int count = CN_NLA_LEN(conf) / 4, first = is4 ? 1 : 0;
        const unsigned char *p = CN_NLA_DATA(conf);
        for (int i = 0; i < count && first + i < cc->cap; i++) {
            int32_t v;
            memcpy(&v, p + 4 * i, sizeof v);
            cc->out[first + i] = v;
            cc->n = first + i + 1;
        }
        return 0;
    }
    return 0;
}

int cn_link_conf(const char *netns, const char *ifname, int family, int *out, int cap)
{
    if (ifname == NULL || ifname[0] == '\0' || strlen(ifname) >= IFNAMSIZ)
        return -ENODEV;
    if (family != AF_INET && family != AF_INET6)
        return -EAFNOSUPPORT;
    int sock = cn_nl_socket(netns);
    if (sock < 0)
        return sock;
    struct conf_ctx cc = {.family = family, .out = out, .cap = cap};
    memset(out, 0, sizeof *out * (size_t)cap);
    int rc = getlink_on(sock, ifname, conf_cb, &cc);
    close(sock);
    return rc < 0 ? rc : cc.n;
}

/* ---- addresses -------------------------------------------------------- */

struct dump_ctx {
    struct vec v;
    struct names nm;
    int family;
    int ifindex;             /* > 0: keep only records of this link */
};

/* The family header (ifaddrmsg, rtmsg, ndmsg: hdrlen bytes, the family
 * first) of a dumped message the dump keeps: long enough, IPv4 or IPv6, and
 * of the family asked for (0: both). NULL for any other. */
static const void *wanted(const struct dump_ctx *dc, const struct nlmsghdr *h, size_t hdrlen)
{
    if (h->nlmsg_len < NLMSG_LENGTH(hdrlen))
        return NULL;
    const unsigned char *family = NLMSG_DATA(h);
    /* AF_BRIDGE (FDB entries) only when asked for by name: an unspecified dump
     * of neighbours must not mix them in */
    if (*family != AF_INET && *family != AF_INET6 &&
        !(*family == AF_BRIDGE && dc->family == AF_BRIDGE))
        return NULL;
    if (dc->family && *family != dc->family)
        return NULL;
    return family;
}

static int addr_cb(const struct nlmsghdr *h, void *arg)
{
    struct dump_ctx *dc = arg;
    const struct ifaddrmsg *ifa = wanted(dc, h, sizeof *ifa);
    if (ifa == NULL || (dc->ifindex > 0 && (int)ifa->ifa_index != dc->ifindex))
        return 0;                      /* (another link: a kernel that did not filter) */
    struct nlattr *tb[IFA_MAX + 1];
    cn_parse_msg(tb, IFA_MAX, h, sizeof *ifa);
    struct cn_addr *a = vec_add(&dc->v);
    if (a == NULL)
        return -ENOMEM;
    a->family = ifa->ifa_family;
    a->index = (int)ifa->ifa_index;
    a->prefixlen = ifa->ifa_prefixlen;
    a->scope = ifa->ifa_scope;
    fmt_ip(a->addr, sizeof a->addr, a->family, tb[IFA_LOCAL] ? tb[IFA_LOCAL] : tb[IFA_ADDRESS]);
    name_of(&dc->nm, a->index, a->ifname);
    return 0;
}

static int neigh_cb(const struct nlmsghdr *h, void *arg)
{
    struct dump_ctx *dc = arg;
    const struct ndmsg *nd = wanted(dc, h, sizeof *nd);
    if (nd == NULL)
        return 0;
    struct nlattr *tb[NDA_MAX + 1];
    cn_parse_msg(tb, NDA_MAX, h, sizeof *nd);
    struct cn_neigh *n = vec_add(&dc->v);
    if (n == NULL)
        return -ENOMEM;
    n->family = nd->ndm_family;
    n->index = nd->ndm_ifindex;
    n->state = nd->ndm_state;
    n->flags = nd->ndm_flags;
    /* an FDB entry (AF_BRIDGE) names its remote endpoint in the IP family its length says */
    int dst_family = n->family != AF_BRIDGE ? n->family
                     : tb[NDA_DST] && CN_NLA_LEN(tb[NDA_DST]) == 16 ? AF_INET6 : AF_INET;
    fmt_ip(n->dst, sizeof n->dst, dst_family, tb[NDA_DST]);
    fmt_hw(n->lladdr, sizeof n->lladdr, tb[NDA_LLADDR]);
    name_of(&dc->nm, n->index, n->ifname);
    return 0;
}

static int route_cb(const struct nlmsghdr *h, void *arg)
{
    struct dump_ctx *dc = arg;
    const struct rtmsg *rt = wanted(dc, h, sizeof *rt);
    if (rt == NULL || (rt->rtm_flags & RTM_F_CLONED))
        return 0;
    struct nlattr *tb[RTA_MAX + 1];
    cn_parse_msg(tb, RTA_MAX, h, sizeof *rt);
    struct cn_route *r = vec_add(&dc->v);
    if (r == NULL)
        return -ENOMEM;
    r->family = rt->rtm_family;
    r->dst_len = rt->rtm_dst_len;
    if (tb[RTA_DST]) {
        fmt_ip(r->dst, sizeof r->dst, r->family, tb[RTA_DST]);
    } else {
        snprintf(r->dst, sizeof r->dst, "%s", r->family == AF_INET ? "0.0.0.0" : "::");
    }
    fmt_ip(r->gateway, sizeof r->gateway, r->family, tb[RTA_GATEWAY]);
    fmt_ip(r->src, sizeof r->src, r->family, tb[RTA_PREFSRC]);
    r->table = tb[RTA_TABLE] ? nla_u32(tb[RTA_TABLE]) : rt->rtm_table;
    if (tb[RTA_PRIORITY]) {
        r->has_priority = 1;
        r->priority = nla_u32(tb[RTA_PRIORITY]);
    }
    r->scope = rt->rtm_scope;
    r->proto = rt->rtm_protocol;
    r->type = rt->rtm_type;
    r->flags = rt->rtm_flags;
    if (tb[RTA_OIF]) {
        r->oif = (int)nla_u32(tb[RTA_OIF]);
        name_of(&dc->nm, r->oif, r->ifname);
    }
    if (tb[RTA_METRICS]) {
        struct nlattr *mx[RTAX_MAX + 1];
        cn_parse_nested(mx, RTAX_MAX, tb[RTA_METRICS]);
        r->mtu = nla_u32(mx[RTAX_MTU]);
        r->advmss = nla_u32(mx[RTAX_ADVMSS]);
    }
    return 0;
}

/* One dump on an open socket: the request is the family header ``hdr``
 * (hdrlen bytes: a filter the kernel may honour, such as an ifindex), each
 * reply goes through ``cb``; the records in *out, their count returned.
 * Closes the socket. */
static int dump_on(int sock, struct dump_ctx *dc, uint16_t type, uint16_t want,
                   const void *hdr, size_t hdrlen, dump_cb cb, void **out)
{
    struct nlbuf b;
    nb_init(&b);
    size_t off = nb_msg(&b, type, NLM_F_REQUEST | NLM_F_DUMP, 1, hdrlen);
    if (!b.oom)
        memcpy(nb_hdr(&b, off), hdr, hdrlen);
    nb_msg_end(&b, off);
    int rc = b.oom ? -ENOMEM : nl_request(sock, &b, want, cb, dc);
    nb_free(&b);
    close(sock);
    if (rc < 0) {
        free(dc->v.p);
        return rc;
    }
    *out = dc->v.p;
    return dc->v.n;
}

static int dump_generic(const char *netns, uint16_t type, uint16_t want, int family,
                        size_t hdrlen, size_t recsize, dump_cb cb, void **out)
{
    *out = NULL;
    int sock = cn_nl_socket(netns);
    if (sock < 0)
        return sock;
    struct dump_ctx dc = {.v = {.size = recsize}, .nm = {.sock = sock}, .family = family};
    unsigned char hdr[64] = {0};  /* the largest family header dumped here is tcmsg */
    if (hdrlen == 0 || hdrlen > sizeof hdr) {
        close(sock);
        return -EINVAL;
    }
    hdr[0] = (unsigned char)family;  /* family is the first byte of every family header */
    return dump_on(sock, &dc, type, want, hdr, hdrlen, cb, out);
}

int cn_dump_addrs(const char *netns, int family, struct cn_addr **out)
{
    return dump_generic(netns, RTM_GETADDR, RTM_NEWADDR, family, sizeof(struct ifaddrmsg),
                        sizeof(struct cn_addr), addr_cb, (void **)out);
}

/* The addresses of one link: the request carries its index and the socket asks
 * for strict checking, so the kernel (>= 4.20) dumps that link alone - the cost
 * does not grow with the links of the namespace. Older kernels ignore the index
 * and the records of other links are dropped here. */
int cn_dump_addrs_of(const char *netns, int family, const char *ifname, struct cn_addr **out)
{
    *out = NULL;
    if (ifname == NULL || ifname[0] == '\0' || strlen(ifname) >= IFNAMSIZ)
        return 0;
    int sock = cn_nl_socket(netns);
    if (sock < 0)
        return sock;
    int index = cn_ifindex(sock, ifname);
    if (index <= 0) {
        close(sock);
        return index == -ENODEV || index == 0 ? 0 : index;  /* no such link: none */
    }
    int one = 1;
    (void)setsockopt(sock, SOL_NETLINK, NETLINK_GET_STRICT_CHK, &one, sizeof one);
    struct dump_ctx dc = {.v = {.size = sizeof(struct cn_addr)}, .nm = {.sock = sock},
                          .family = family, .ifindex = index};
    struct ifaddrmsg ifa = {.ifa_family = (unsigned char)family, .ifa_index = (unsigned int)index};
    return dump_on(sock, &dc, RTM_GETADDR, RTM_NEWADDR, &ifa, sizeof ifa, addr_cb, (void **)out);
}

int cn_dump_routes(const char *netns, int family, struct cn_route **out)
{
    return dump_generic(netns, RTM_GETROUTE, RTM_NEWROUTE, family, sizeof(struct rtmsg),
                        sizeof(struct cn_route), route_cb, (void **)out);
}

int cn_dump_neighs(const char *netns, int family, struct cn_neigh **out)
{
    return dump_generic(netns, RTM_GETNEIGH, RTM_NEWNEIGH, family, sizeof(struct ndmsg),
                        sizeof(struct cn_neigh), neigh_cb, (void **)out);
}

/* ---- traffic control ---------------------------------------------------- */

static int qdisc_cb(const struct nlmsghdr *h, void *arg)
{
    struct dump_ctx *dc = arg;
    if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct tcmsg)))
        return 0;
    const struct tcmsg *tc = NLMSG_DATA(h);
    struct nlattr *tb[TCA_MAX + 1];
    cn_parse_msg(tb, TCA_MAX, h, sizeof *tc);
    struct cn_qdisc *q = vec_add(&dc->v);
    if (q == NULL)
        return -ENOMEM;
    q->index = tc->tcm_ifindex;
    q->handle = tc->tcm_handle;
    q->parent = tc->tcm_parent;
    nla_str(q->kind, sizeof q->kind, tb[TCA_KIND]);
    name_of(&dc->nm, q->index, q->ifname);
    if (strcmp(q->kind, "tbf") == 0 && tb[TCA_OPTIONS]) {
        struct nlattr *tbf[TCA_TBF_MAX + 1];
        cn_parse_nested(tbf, TCA_TBF_MAX, tb[TCA_OPTIONS]);
        const struct nlattr *parms = tbf[TCA_TBF_PARMS];
        if (parms && CN_NLA_LEN(parms) >= (int)sizeof(struct tc_tbf_qopt)) {
            struct tc_tbf_qopt qopt;
            memcpy(&qopt, CN_NLA_DATA(parms), sizeof qopt);
            q->has_tbf = 1;
            q->rate = qopt.rate.rate;
            q->buffer = qopt.buffer;
            q->limit = qopt.limit;
            if (tbf[TCA_TBF_RATE64] && CN_NLA_LEN(tbf[TCA_TBF_RATE64]) >= 8)
                memcpy(&q->rate, CN_NLA_DATA(tbf[TCA_TBF_RATE64]), 8);
        }
    }
    return 0;
}

int cn_dump_qdiscs(const char *netns, struct cn_qdisc **out)
{
    return dump_generic(netns, RTM_GETQDISC, RTM_NEWQDISC, 0, sizeof(struct tcmsg),
                        sizeof(struct cn_qdisc), qdisc_cb, (void **)out);
}

/* The ifindex of the first mirred action in an action list (TCA_*_ACT). */
static int mirred_target(const struct nlattr *acts)
{
    struct nlattr *list[TCA_ACT_MAX_PRIO + 1];
    cn_parse_nested(list, TCA_ACT_MAX_PRIO, acts);
    for (int k = 1; k <= TCA_ACT_MAX_PRIO; k++) {
        if (list[k] == NULL)
            continue;
        struct nlattr *act[TCA_ACT_MAX + 1];
        cn_parse_nested(act, TCA_ACT_MAX, list[k]);
        char kind[32];
        nla_str(kind, sizeof kind, act[TCA_ACT_KIND]);
        if (strcmp(kind, "mirred") != 0 || act[TCA_ACT_OPTIONS] == NULL)
            continue;
        struct nlattr *mo[TCA_MIRRED_MAX + 1];
        cn_parse_nested(mo, TCA_MIRRED_MAX, act[TCA_ACT_OPTIONS]);
        if (mo[TCA_MIRRED_PARMS] && CN_NLA_LEN(mo[TCA_MIRRED_PARMS]) >= (int)sizeof(struct tc_mirred)) {
            struct tc_mirred m;
            memcpy(&m, CN_NLA_DATA(mo[TCA_MIRRED_PARMS]), sizeof m);
            return (int)m.ifindex;
        }
    }
    return 0;
}

/* One filter per match: a u32 dump also lists its hash tables, which carry no
 * selector; those are skipped. */
static int filter_cb(const struct nlmsghdr *h, void *arg)
{
    struct dump_ctx *dc = arg;
    if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct tcmsg)))
        return 0;
    const struct tcmsg *tc = NLMSG_DATA(h);
    struct nlattr *tb[TCA_MAX + 1];
    cn_parse_msg(tb, TCA_MAX, h, sizeof *tc);
    char kind[32];
    nla_str(kind, sizeof kind, tb[TCA_KIND]);
    int is_u32 = strcmp(kind, "u32") == 0;
    struct nlattr *opt[TCA_U32_MAX + 1];     /* TCA_U32_MAX > TCA_MATCHALL_MAX */
    memset(opt, 0, sizeof opt);
    if (tb[TCA_OPTIONS])
        cn_parse_nested(opt, is_u32 ? TCA_U32_MAX : TCA_MATCHALL_MAX, tb[TCA_OPTIONS]);
    if (is_u32 && opt[TCA_U32_SEL] == NULL)
        return 0;
    if (tb[TCA_OPTIONS] == NULL)
        return 0;
    struct cn_filter *f = vec_add(&dc->v);
    if (f == NULL)
        return -ENOMEM;
    snprintf(f->kind, sizeof f->kind, "%s", kind);
    f->index = tc->tcm_ifindex;
    f->handle = tc->tcm_handle;
    f->parent = tc->tcm_parent;
    f->priority = TC_H_MAJ(tc->tcm_info) >> 16;
    f->protocol = ntohs((uint16_t)TC_H_MIN(tc->tcm_info));
    f->classid = nla_u32(opt[is_u32 ? TCA_U32_CLASSID : TCA_MATCHALL_CLASSID]);
    const struct nlattr *acts = opt[is_u32 ? TCA_U32_ACT : TCA_MATCHALL_ACT];
    if (acts)
        f->redirect_index = mirred_target(acts);
    name_of(&dc->nm, f->index, f->ifname);
    name_of(&dc->nm, f->redirect_index, f->redirect);
    return 0;
}

int cn_dump_filters(const char *netns, const char *ifname, unsigned int parent,
                    struct cn_filter **out)
{
    *out = NULL;
    if (ifname == NULL || ifname[0] == '\0' || strlen(ifname) >= IFNAMSIZ)
        return -ENODEV;
    int sock = cn_nl_socket(netns);
    if (sock < 0)
        return sock;
    int index = cn_ifindex(sock, ifname);
    if (index < 0) {
        close(sock);
        return index == -ENXIO ? -ENODEV : index;
    }
    struct dump_ctx dc = {.v = {.size = sizeof(struct cn_filter)}, .nm = {.sock = sock}};
    struct nlbuf b;
    nb_init(&b);
    size_t off = nb_msg(&b, RTM_GETTFILTER, NLM_F_REQUEST | NLM_F_DUMP, 1, sizeof(struct tcmsg));
    if (!b.oom) {
        struct tcmsg *tc = nb_hdr(&b, off);
        tc->tcm_ifindex = index;
        tc->tcm_parent = parent;
    }
    nb_msg_end(&b, off);
    int rc = b.oom ? -ENOMEM : nl_request(sock, &b, RTM_NEWTFILTER, filter_cb, &dc);
    nb_free(&b);
    close(sock);
    if (rc == -EINVAL || rc == -ENOENT)
        rc = 0;                              /* no such qdisc: no filters */
    if (rc < 0) {
        free(dc.v.p);
        return rc;
    }
    *out = dc.v.p;
    return dc.v.n;
}

/* ---- rules ------------------------------------------------------------- */

static int rule_cb(const struct nlmsghdr *h, void *arg)
{
    struct dump_ctx *dc = arg;
    const struct fib_rule_hdr *fr = wanted(dc, h, sizeof *fr);
    if (fr == NULL)
        return 0;
    struct nlattr *tb[FRA_MAX + 1];
    cn_parse_msg(tb, FRA_MAX, h, sizeof *fr);
    struct cn_rule *r = vec_add(&dc->v);
    if (r == NULL)
        return -ENOMEM;
    r->family = fr->family;
    r->table = tb[FRA_TABLE] ? nla_u32(tb[FRA_TABLE]) : fr->table;
    if (tb[FRA_PRIORITY]) {
        r->has_priority = 1;
        r->priority = nla_u32(tb[FRA_PRIORITY]);
    }
    r->action = fr->action;
    r->src_len = fr->src_len;
    r->dst_len = fr->dst_len;
    fmt_ip(r->src, sizeof r->src, r->family, tb[FRA_SRC]);
    fmt_ip(r->dst, sizeof r->dst, r->family, tb[FRA_DST]);
    nla_str(r->iifname, sizeof r->iifname, tb[FRA_IIFNAME]);
    nla_str(r->oifname, sizeof r->oifname, tb[FRA_OIFNAME]);
    return 0;
}

int cn_dump_rules(const char *netns, int family, struct cn_rule **out)
{
    return dump_generic(netns, RTM_GETRULE, RTM_NEWRULE, family, sizeof(struct fib_rule_hdr),
                        sizeof(struct cn_rule), rule_cb, (void **)out);
}
