/*
 * The request builders: one function per op code of cn_abi.def, and the
 * table (cn_ops) the engine in batch.c dispatches through. A builder turns
 * op i of the batch into netlink requests queued on c->pend (new_msg ...
 * end_msg), or fails op i; it resolves link names with resolve_for (which
 * flushes the pending phase first when an unsent request changes what a
 * name refers to) and marks names its requests change with mark_dirty.
 *
 * Links are addressed by IFLA_IFNAME where the kernel allows it, so a batch
 * that creates a link and then configures it stays one phase.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/fib_rules.h>
#include <linux/if_addr.h>
#include <linux/if_ether.h>
#include <linux/if_link.h>
#include <linux/if_tun.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <linux/tc_act/tc_mirred.h>
#include <linux/veth.h>

#include "cn_batch.h"

/* ---- helpers ---------------------------------------------------------- */

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


/* ---- links -------------------------------------------------------------- */

static void build_add_veth(struct ctx *c, int i)
{
    const struct op *o = &c->ops[i];
    struct nlbuf *b = &c->pend;
    int pfd;
    if (ns_fd_for(c, i, CN_A_PEER_NETNS, "peer namespace", &pfd) < 0)
        return;
    struct msgrec *m = new_link_msg(c, i);
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
    mark_dirty(c, str(o, CN_A_NAME));
    if (!has(o, CN_A_PEER_NETNS))
        mark_dirty(c, str(o, CN_A_PEER));
}

static void build_add_bridge(struct ctx *c, int i)
{
    const struct op *o = &c->ops[i];
    struct nlbuf *b = &c->pend;
    struct msgrec *m = new_link_msg(c, i);
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
    mark_dirty(c, str(o, CN_A_NAME));
}

/* The request creating op i's link of `kind`, in CN_A_NETNS when the op names
 * one, on the lower link CN_A_MASTER when with_lower; its IFLA_INFO_DATA is
 * left open (close it, then IFLA_LINKINFO, with end_created). Returns the
 * message, NULL when op i went no further. */
static struct msgrec *begin_created(struct ctx *c, int i, const char *kind, int with_lower,
                                    size_t *li, size_t *data)
{
    const struct op *o = &c->ops[i];
    struct nlbuf *b = &c->pend;
    int lower = 0, nfd;
    if (with_lower) {
        lower = resolve_for(c, i, str(o, CN_A_MASTER), "master link");
        if (lower == 0)
            return NULL;
    }
    if (ns_fd_for(c, i, CN_A_NETNS, "namespace", &nfd) < 0)
        return NULL;
    struct msgrec *m = new_link_msg(c, i);
    if (m == NULL)
        return NULL;
    if (with_lower)
        nb_put_u32(b, IFLA_LINK, (uint32_t)lower);
    if (has(o, CN_A_NETNS))
        nb_put_u32(b, IFLA_NET_NS_FD, (uint32_t)nfd);
    *li = begin_linkinfo(b, IFLA_INFO_KIND, kind);
    *data = nb_nest(b, IFLA_INFO_DATA);
    return m;
}

static void end_created(struct ctx *c, int i, struct msgrec *m, size_t li, size_t data)
{
    const struct op *o = &c->ops[i];
    nb_nest_end(&c->pend, data);
    nb_nest_end(&c->pend, li);
    end_msg(c, m);
    if (!has(o, CN_A_NETNS))
        mark_dirty(c, str(o, CN_A_NAME));
}

static void build_add_macvlan(struct ctx *c, int i)
{
    size_t li, data;
    struct msgrec *m = begin_created(c, i, "macvlan", 1, &li, &data);
    if (m == NULL)
        return;
    nb_put_u32(&c->pend, IFLA_MACVLAN_MODE, u32_or(&c->ops[i], CN_A_MODE, MACVLAN_MODE_BRIDGE));
    end_created(c, i, m, li, data);
}

static void build_add_ipvlan(struct ctx *c, int i)
{
    size_t li, data;
    struct msgrec *m = begin_created(c, i, "ipvlan", 1, &li, &data);
    if (m == NULL)
        return;
    nb_put_u16(&c->pend, IFLA_IPVLAN_MODE, (uint16_t)u32(&c->ops[i], CN_A_MODE));
    nb_put_u16(&c->pend, IFLA_IPVLAN_FLAGS, (uint16_t)u32(&c->ops[i], CN_A_IPVLAN_FLAG));
    end_created(c, i, m, li, data);
}

static void build_add_vlan(struct ctx *c, int i)
{
    size_t li, data;
    struct msgrec *m = begin_created(c, i, "vlan", 1, &li, &data);
    if (m == NULL)
        return;
    nb_put_u16(&c->pend, IFLA_VLAN_ID, (uint16_t)u32(&c->ops[i], CN_A_VLAN_ID));
    end_created(c, i, m, li, data);
}

/* ifb, dummy, vrf: a kind of its own, no lower link; a vrf carries its table. */
static void build_add_link(struct ctx *c, int i)
{
    const struct op *o = &c->ops[i];
    size_t li, data;
    struct msgrec *m = begin_created(c, i, str(o, CN_A_KIND), 0, &li, &data);
    if (m == NULL)
        return;
    put_attr_if(&c->pend, IFLA_VRF_TABLE, o, CN_A_TABLE);
    end_created(c, i, m, li, data);
}

/* vxlan: VNI, local tunnel IP (CN_A_SRC), UDP port, underlay link (CN_A_MASTER, as
 * IFLA_VXLAN_LINK inside the data, not IFLA_LINK), learning off with NOLEARNING. */
static void build_add_vxlan(struct ctx *c, int i)
{
    const struct op *o = &c->ops[i];
    int lower = 0;
    if (has(o, CN_A_MASTER)) {
        lower = resolve_for(c, i, str(o, CN_A_MASTER), "underlay link");
        if (lower == 0)
            return;
    }
    size_t li, data;
    struct msgrec *m = begin_created(c, i, "vxlan", 0, &li, &data);
    if (m == NULL)
        return;
    struct nlbuf *b = &c->pend;
    nb_put_u32(b, IFLA_VXLAN_ID, u32(o, CN_A_VNI));
    if (has(o, CN_A_SRC))
        put_attr(b, o->alen[CN_A_SRC] == 4 ? IFLA_VXLAN_LOCAL : IFLA_VXLAN_LOCAL6, o, CN_A_SRC);
    if (lower)
        nb_put_u32(b, IFLA_VXLAN_LINK, (uint32_t)lower);
    uint16_t port = htons((uint16_t)u32_or(o, CN_A_PORT, 4789));
    nb_put(b, IFLA_VXLAN_PORT, &port, sizeof port);
    nb_put_u8(b, IFLA_VXLAN_LEARNING, (o->flags & CN_F_NOLEARNING) ? 0 : 1);
    end_created(c, i, m, li, data);
}

struct tap_req {
    const char *name;
    unsigned flags;
    const struct op *o;
};

/* Runs inside the batch namespace: the device is created in the namespace
 * of the socket behind the /dev/net/tun file, i.e. of the thread opening it. */
static int tap_create(void *arg)
{
    const struct tap_req *r = arg;
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, IFNAMSIZ, "%s", r->name);
    ifr.ifr_flags = (short)(IFF_TAP | IFF_NO_PI |
                            ((r->flags & CN_F_MULTI_QUEUE) ? IFF_MULTI_QUEUE : 0) |
                            ((r->flags & CN_F_VNET_HDR) ? IFF_VNET_HDR : 0));
    int rc = 0;
    if (ioctl(fd, TUNSETIFF, &ifr) < 0 ||
        (has(r->o, CN_A_OWNER) && ioctl(fd, TUNSETOWNER, (unsigned long)u32(r->o, CN_A_OWNER)) < 0) ||
        (has(r->o, CN_A_GROUP) && ioctl(fd, TUNSETGROUP, (unsigned long)u32(r->o, CN_A_GROUP)) < 0) ||
        ioctl(fd, TUNSETPERSIST, 1UL) < 0)
        rc = -errno;                         /* closing the fd removes a non-persistent device */
    close(fd);
    return rc;
}

/* A persistent tap device. Netlink cannot create tun/tap devices (the kernel's
 * tun rtnl_link_ops refuse RTM_NEWLINK), so this op is an ioctl done in order:
 * the requests queued before it are sent first. TUNSETIFF would attach to an
 * existing tap of that name instead of failing, so an existing name is EEXIST.
 * MTU and MAC follow as a request of their own. */
static void build_add_tap(struct ctx *c, int i)
{
    const struct op *o = &c->ops[i];
    const char *name = str(o, CN_A_NAME);
    flush(c);
    if (c->nerr || c->fatal)
        return;
    int idx = resolve(c, name);
    if (idx > 0) {
        add_error(c, i, EEXIST, "link exists");
        return;
    }
    if (!c->render) {
        struct tap_req r = {.name = name, .flags = o->flags, .o = o};
        int rc = cn_in_netns(c->netns, tap_create, &r);
        if (rc < 0) {
            add_error(c, i, -rc, "creating the tap device (TUNSETIFF)");
            return;
        }
        note_created(c, NULL, name, i);
    }
    if (has(o, CN_A_MTU) || has(o, CN_A_MAC)) {
        struct msgrec *m = link_msg(c, i, ROLE_MAIN, RTM_NEWLINK, 0, name);
        if (m == NULL)
            return;
        put_mtu_mac(&c->pend, o);
        end_msg(c, m);
    }
}

static void build_set_link(struct ctx *c, int i)
{
    const struct op *o = &c->ops[i];
    struct nlbuf *b = &c->pend;
    const char *name = str(o, CN_A_NAME);
    struct msgrec *m;
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
    const uint64_t main_attrs = BIT(CN_A_UP) | BIT(CN_A_MTU) | BIT(CN_A_MAC) | BIT(CN_A_MASTER) |
                                BIT(CN_A_RENAME) | BIT(CN_A_PROMISC) | BIT(CN_A_ALIAS) |
                                BIT(CN_A_ALLMULTI) | BIT(CN_A_TXQLEN);
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
        put_flag(ifi, o, CN_A_ALLMULTI, IFF_ALLMULTI);
        put_mtu_mac(b, o);
        put_attr_if(b, IFLA_TXQLEN, o, CN_A_TXQLEN);
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
}

/* A created link renamed or moved away stays tracked for the rollback. */
static void done_set_link(struct ctx *c, const struct msgrec *m)
{
    const struct op *o = &c->ops[m->op];
    const char *name = str(o, CN_A_NAME);
    if (m->role == ROLE_MAIN && has(o, CN_A_RENAME)) {
        struct created *k = find_created(c, NULL, name);
        if (k)
            snprintf(k->name, IFNAMSIZ, "%s", str(o, CN_A_RENAME));
    } else if (m->role == ROLE_MOVE) {
        const char *cur = has(o, CN_A_RENAME) ? str(o, CN_A_RENAME) : name;
        struct created *k = find_created(c, NULL, cur);
        if (k)
            k->ns = str(o, CN_A_NETNS);
    }
}

static void build_del_link(struct ctx *c, int i)
{
    const char *name = str(&c->ops[i], CN_A_NAME);
    struct msgrec *m = link_msg(c, i, ROLE_MAIN, RTM_DELLINK, 0, name);
    if (m == NULL)
        return;
    end_msg(c, m);
    mark_dirty(c, name);
}

static void done_del_link(struct ctx *c, const struct msgrec *m)
{
    struct created *k = find_created(c, NULL, str(&c->ops[m->op], CN_A_NAME));
    if (k)
        k->name[0] = '\0';                   /* gone already */
}

/* ---- addresses, routes, neighbours --------------------------------------- */

static void build_address(struct ctx *c, int i)
{
    const struct op *o = &c->ops[i];
    struct nlbuf *b = &c->pend;
    int index = resolve_for(c, i, str(o, CN_A_IFNAME), "link");
    if (index == 0)
        return;
    int add = o->code == CN_OP_ADD_ADDR;
    struct msgrec *m = new_msg(c, i, ROLE_MAIN, add ? RTM_NEWADDR : RTM_DELADDR,
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
}

static void build_route(struct ctx *c, int i)
{
    const struct op *o = &c->ops[i];
    struct nlbuf *b = &c->pend;
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
    struct msgrec *m = new_msg(c, i, ROLE_MAIN, add ? RTM_NEWROUTE : RTM_DELROUTE, flags,
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
    if (o->flags & CN_F_ONLINK)
        rt->rtm_flags |= RTNH_F_ONLINK;
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
}

static void build_add_neigh(struct ctx *c, int i)
{
    const struct op *o = &c->ops[i];
    struct nlbuf *b = &c->pend;
    int index = resolve_for(c, i, str(o, CN_A_IFNAME), "link");
    if (index == 0)
        return;
    uint16_t flags = NLM_F_CREATE | ((o->flags & CN_F_REPLACE) ? NLM_F_REPLACE : NLM_F_EXCL);
    struct msgrec *m = new_msg(c, i, ROLE_MAIN, RTM_NEWNEIGH, flags, sizeof(struct ndmsg));
    if (m == NULL)
        return;
    struct ndmsg *nd = nb_hdr(b, m->off);
    nd->ndm_family = (uint8_t)u32(o, CN_A_FAMILY);
    nd->ndm_ifindex = index;
    nd->ndm_state = (o->flags & CN_F_PERMANENT) ? NUD_PERMANENT : NUD_REACHABLE;
    put_attr(b, NDA_DST, o, CN_A_ADDR);
    put_attr(b, NDA_LLADDR, o, CN_A_LLADDR);
    end_msg(c, m);
}

/* An FDB entry of a VXLAN port (bridge fdb ... self dst IP): AF_BRIDGE, NTF_SELF,
 * permanent; CN_A_LLADDR is the MAC, CN_A_DST the remote tunnel endpoint. */
static void build_fdb(struct ctx *c, int i)
{
    const struct op *o = &c->ops[i];
    struct nlbuf *b = &c->pend;
    int index = resolve_for(c, i, str(o, CN_A_IFNAME), "link");
    if (index == 0)
        return;
    int add = o->code == CN_OP_ADD_FDB;
    uint16_t flags = add ? NLM_F_CREATE | ((o->flags & CN_F_REPLACE) ? NLM_F_REPLACE
                                                                      : NLM_F_EXCL) : 0;
    struct msgrec *m = new_msg(c, i, ROLE_MAIN, add ? RTM_NEWNEIGH : RTM_DELNEIGH, flags,
                               sizeof(struct ndmsg));
    if (m == NULL)
        return;
    struct ndmsg *nd = nb_hdr(b, m->off);
    nd->ndm_family = AF_BRIDGE;
    nd->ndm_ifindex = index;
    nd->ndm_state = NUD_PERMANENT;
    nd->ndm_flags = NTF_SELF;
    put_attr(b, NDA_LLADDR, o, CN_A_LLADDR);
    put_attr_if(b, NDA_DST, o, CN_A_DST);
    end_msg(c, m);
}

static void build_del_neigh(struct ctx *c, int i)
{
    const struct op *o = &c->ops[i];
    struct nlbuf *b = &c->pend;
    int index = resolve_for(c, i, str(o, CN_A_IFNAME), "link");
    if (index == 0)
        return;
    struct msgrec *m = new_msg(c, i, ROLE_MAIN, RTM_DELNEIGH, 0, sizeof(struct ndmsg));
    if (m == NULL)
        return;
    struct ndmsg *nd = nb_hdr(b, m->off);
    nd->ndm_family = (uint8_t)u32(o, CN_A_FAMILY);
    nd->ndm_ifindex = index;
    put_attr(b, NDA_DST, o, CN_A_ADDR);
    end_msg(c, m);
}

/* ---- traffic control --------------------------------------------------- */

/* A tc request (qdisc or filter) on link CN_A_IFNAME; NULL when op i went
 * no further. tcm_parent is CN_A_PARENT (default: root), tcm_handle
 * CN_A_HANDLE, TCA_KIND CN_A_KIND when given. */
static struct msgrec *tc_msg(struct ctx *c, int i, uint16_t type, uint16_t flags)
{
    const struct op *o = &c->ops[i];
    int index = resolve_for(c, i, str(o, CN_A_IFNAME), "link");
    if (index == 0)
        return NULL;
    struct msgrec *m = new_msg(c, i, ROLE_MAIN, type, flags, sizeof(struct tcmsg));
    if (m == NULL)
        return NULL;
    struct tcmsg *tc = nb_hdr(&c->pend, m->off);
    tc->tcm_family = AF_UNSPEC;
    tc->tcm_ifindex = index;
    tc->tcm_handle = u32(o, CN_A_HANDLE);
    tc->tcm_parent = u32_or(o, CN_A_PARENT, TC_H_ROOT);
    if (has(o, CN_A_KIND))
        nb_put_str(&c->pend, TCA_KIND, str(o, CN_A_KIND));
    return m;
}

static uint16_t add_flags(const struct op *o)
{
    return NLM_F_CREATE | ((o->flags & CN_F_REPLACE) ? NLM_F_REPLACE : NLM_F_EXCL);
}

/* tbf takes rate, buffer and limit as Go's netlink library sends them: no
 * rate table (the kernel computes one), TCA_TBF_RATE64 when the rate needs
 * more than 32 bits. Other kinds (ingress, clsact, ...) carry no options. */
static void build_add_qdisc(struct ctx *c, int i)
{
    const struct op *o = &c->ops[i];
    struct nlbuf *b = &c->pend;
    struct msgrec *m = tc_msg(c, i, RTM_NEWQDISC, add_flags(o));
    if (m == NULL)
        return;
    if (strcmp(str(o, CN_A_KIND), "tbf") == 0) {
        uint64_t rate = u64(o, CN_A_RATE);
        struct tc_tbf_qopt q;
        memset(&q, 0, sizeof q);
        q.rate.rate = rate >= (1ULL << 32) ? ~0u : (uint32_t)rate;
        q.limit = u32(o, CN_A_LIMIT);
        q.buffer = u32(o, CN_A_BUFFER);
        size_t opts = nb_nest(b, TCA_OPTIONS);
        nb_put(b, TCA_TBF_PARMS, &q, sizeof q);
        if (rate >= (1ULL << 32))
            nb_put(b, TCA_TBF_RATE64, &rate, sizeof rate);
        nb_nest_end(b, opts);
    }
    end_msg(c, m);
}

static void build_del_qdisc(struct ctx *c, int i)
{
    struct msgrec *m = tc_msg(c, i, RTM_DELQDISC, 0);
    if (m)
        end_msg(c, m);
}

/* tcm_info of a filter: preference in the upper 16 bits, protocol (network
 * order) in the lower. */
static void filter_info(struct ctx *c, const struct msgrec *m)
{
    const struct op *o = &c->ops[m->op];
    struct tcmsg *tc = nb_hdr(&c->pend, m->off);
    tc->tcm_info = TC_H_MAKE(u32(o, CN_A_PRIORITY) << 16,
                             htons((uint16_t)u32_or(o, CN_A_ETH_PROTO, ETH_P_ALL)));
}

/* A filter that matches every packet (u32 with one empty key, terminal; or
 * matchall), with an optional class id and an optional mirred action that
 * redirects the packet to the egress of CN_A_TARGET (Go's bandwidth plugin
 * builds exactly this to steer a veth's ingress into an ifb device). */
static void build_add_filter(struct ctx *c, int i)
{
    const struct op *o = &c->ops[i];
    struct nlbuf *b = &c->pend;
    int target = 0;
    if (has(o, CN_A_TARGET)) {
        target = resolve_for(c, i, str(o, CN_A_TARGET), "redirect target");
        if (target == 0)
            return;
    }
    const char *kind = str(o, CN_A_KIND);
    int is_u32 = strcmp(kind, "u32") == 0;
    if (!is_u32 && strcmp(kind, "matchall") != 0) {
        fail_before_send(c, i, EOPNOTSUPP, "filter kind must be u32 or matchall");
        return;
    }
    struct msgrec *m = tc_msg(c, i, RTM_NEWTFILTER, add_flags(o));
    if (m == NULL)
        return;
    filter_info(c, m);
    size_t opts = nb_nest(b, TCA_OPTIONS);
    if (is_u32) {
        struct {
            struct tc_u32_sel sel;
            struct tc_u32_key key;
        } sel;
        memset(&sel, 0, sizeof sel);
        sel.sel.flags = TC_U32_TERMINAL;
        sel.sel.nkeys = 1;
        nb_put(b, TCA_U32_SEL, &sel, sizeof sel);
    }
    put_attr_if(b, is_u32 ? TCA_U32_CLASSID : TCA_MATCHALL_CLASSID, o, CN_A_CLASSID);
    if (target) {
        size_t acts = nb_nest(b, is_u32 ? TCA_U32_ACT : TCA_MATCHALL_ACT);
        size_t act = nb_nest(b, 1);          /* the first action of the list */
        nb_put_str(b, TCA_ACT_KIND, "mirred");
        size_t aopts = nb_nest(b, TCA_ACT_OPTIONS);
        struct tc_mirred mir;
        memset(&mir, 0, sizeof mir);
        mir.action = TC_ACT_STOLEN;
        mir.eaction = TCA_EGRESS_REDIR;
        mir.ifindex = (uint32_t)target;
        nb_put(b, TCA_MIRRED_PARMS, &mir, sizeof mir);
        nb_nest_end(b, aopts);
        nb_nest_end(b, act);
        nb_nest_end(b, acts);
    }
    nb_nest_end(b, opts);
    end_msg(c, m);
}

static void build_del_filter(struct ctx *c, int i)
{
    struct msgrec *m = tc_msg(c, i, RTM_DELTFILTER, 0);
    if (m == NULL)
        return;
    filter_info(c, m);
    end_msg(c, m);
}

/* ---- policy routing rules ------------------------------------------------- */

/* Interfaces are named (FRA_IIFNAME / FRA_OIFNAME): a rule may name a link that
 * does not exist yet, so nothing is resolved. */
static void build_rule(struct ctx *c, int i)
{
    const struct op *o = &c->ops[i];
    struct nlbuf *b = &c->pend;
    int add = o->code == CN_OP_ADD_RULE;
    struct msgrec *m = new_msg(c, i, ROLE_MAIN, add ? RTM_NEWRULE : RTM_DELRULE,
                               add ? NLM_F_CREATE | NLM_F_EXCL : 0, sizeof(struct fib_rule_hdr));
    if (m == NULL)
        return;
    uint32_t table = u32(o, CN_A_TABLE);
    struct fib_rule_hdr *fr = nb_hdr(b, m->off);
    fr->family = (uint8_t)u32(o, CN_A_FAMILY);
    fr->dst_len = (uint8_t)u32(o, CN_A_PREFIXLEN);
    fr->src_len = (uint8_t)u32(o, CN_A_SRC_LEN);
    fr->table = table < 256 ? (uint8_t)table : RT_TABLE_UNSPEC;
    fr->action = add || has(o, CN_A_TABLE) ? FR_ACT_TO_TBL : FR_ACT_UNSPEC;
    if (has(o, CN_A_TABLE))
        nb_put_u32(b, FRA_TABLE, table);
    put_attr_if(b, FRA_PRIORITY, o, CN_A_PRIORITY);
    if (u32(o, CN_A_SRC_LEN))
        put_attr_if(b, FRA_SRC, o, CN_A_SRC);
    if (u32(o, CN_A_PREFIXLEN))
        put_attr_if(b, FRA_DST, o, CN_A_DST);
    put_attr_if(b, FRA_IIFNAME, o, CN_A_IIFNAME);
    put_attr_if(b, FRA_OIFNAME, o, CN_A_OIFNAME);
    end_msg(c, m);
}

/* ---- the table ------------------------------------------------------------ */

#define NEED1(a) BIT(CN_A_##a)
#define NEED2(a, b) (NEED1(a) | NEED1(b))
#define NEED3(a, b, c) (NEED2(a, b) | NEED1(c))
#define NEED4(a, b, c, d) (NEED2(a, b) | NEED2(c, d))

const struct op_kind cn_ops[CN_OP_MAX + 1] = {
    [CN_OP_ADD_VETH] = {build_add_veth, NEED2(NAME, PEER), CREATES_HERE, {0}, NULL},
    [CN_OP_ADD_BRIDGE] = {build_add_bridge, NEED1(NAME), CREATES_HERE, {0}, NULL},
    [CN_OP_ADD_MACVLAN] = {build_add_macvlan, NEED2(NAME, MASTER), CREATES_IN_NETNS, {0}, NULL},
    [CN_OP_ADD_IPVLAN] = {build_add_ipvlan, NEED2(NAME, MASTER), CREATES_IN_NETNS, {0}, NULL},
    [CN_OP_ADD_VLAN] = {build_add_vlan, NEED3(NAME, MASTER, VLAN_ID), CREATES_IN_NETNS, {0},
                        NULL},
    [CN_OP_ADD_LINK] = {build_add_link, NEED2(NAME, KIND), CREATES_IN_NETNS, {0}, NULL},
    [CN_OP_ADD_TAP] = {build_add_tap, NEED1(NAME), CREATES_NOTHING, {0}, NULL},
    [CN_OP_SET_LINK] = {build_set_link, NEED1(NAME), CREATES_NOTHING, {0}, done_set_link},
    [CN_OP_DEL_LINK] = {build_del_link, NEED1(NAME), CREATES_NOTHING, {ENODEV}, done_del_link},
    [CN_OP_ADD_ADDR] = {build_address, NEED4(IFNAME, FAMILY, ADDR, PREFIXLEN), CREATES_NOTHING,
                        {0}, NULL},
    [CN_OP_DEL_ADDR] = {build_address, NEED4(IFNAME, FAMILY, ADDR, PREFIXLEN), CREATES_NOTHING,
                        {EADDRNOTAVAIL, ENODEV, ESRCH}, NULL},
    [CN_OP_ADD_ROUTE] = {build_route, NEED2(FAMILY, PREFIXLEN), CREATES_NOTHING, {0}, NULL},
    [CN_OP_DEL_ROUTE] = {build_route, NEED2(FAMILY, PREFIXLEN), CREATES_NOTHING,
                         {ESRCH, ENODEV, ENOENT}, NULL},
    [CN_OP_ADD_NEIGH] = {build_add_neigh, NEED4(IFNAME, FAMILY, ADDR, LLADDR), CREATES_NOTHING,
                         {0}, NULL},
    [CN_OP_ADD_QDISC] = {build_add_qdisc, NEED2(IFNAME, KIND), CREATES_NOTHING, {0}, NULL},
    [CN_OP_DEL_QDISC] = {build_del_qdisc, NEED1(IFNAME), CREATES_NOTHING,
                         {ENOENT, EINVAL, ENODEV}, NULL},
    [CN_OP_ADD_FILTER] = {build_add_filter, NEED3(IFNAME, KIND, PARENT), CREATES_NOTHING, {0},
                          NULL},
    [CN_OP_DEL_FILTER] = {build_del_filter, NEED2(IFNAME, PARENT), CREATES_NOTHING,
                          {ENOENT, EINVAL, ENODEV}, NULL},
    [CN_OP_ADD_VXLAN] = {build_add_vxlan, NEED2(NAME, VNI), CREATES_IN_NETNS, {0}, NULL},
    [CN_OP_ADD_FDB] = {build_fdb, NEED2(IFNAME, LLADDR), CREATES_NOTHING, {0}, NULL},
    [CN_OP_DEL_FDB] = {build_fdb, NEED2(IFNAME, LLADDR), CREATES_NOTHING, {ENOENT, ENODEV},
                       NULL},
    [CN_OP_DEL_NEIGH] = {build_del_neigh, NEED3(IFNAME, FAMILY, ADDR), CREATES_NOTHING,
                         {ENOENT, ENODEV}, NULL},
    [CN_OP_ADD_RULE] = {build_rule, NEED2(FAMILY, TABLE), CREATES_NOTHING, {0}, NULL},
    [CN_OP_DEL_RULE] = {build_rule, NEED1(FAMILY), CREATES_NOTHING, {ENOENT}, NULL},
};
