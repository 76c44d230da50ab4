/* Netlink message buffer and small socket helpers. */
#define _GNU_SOURCE
#include <errno.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "cn_nl.h"

void nb_init(struct nlbuf *b)
{
    b->p = NULL;
    b->len = 0;
    b->cap = 0;
    b->oom = 0;
}

void nb_free(struct nlbuf *b)
{
    free(b->p);
    nb_init(b);
}

void nb_reset(struct nlbuf *b)
{
    b->len = 0;
}

/* Make room for n more bytes; returns 0 or -1 (b->oom set). */
static int nb_grow(struct nlbuf *b, size_t n)
{
    if (b->oom)
        return -1;
    if (b->len + n <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n)
        cap *= 2;
    unsigned char *p = realloc(b->p, cap);
    if (p == NULL) {
        b->oom = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

size_t nb_raw(struct nlbuf *b, size_t n)
{
    size_t aligned = NLMSG_ALIGN(n);
    if (nb_grow(b, aligned) < 0)
        return 0;
    size_t off = b->len;
    memset(b->p + off, 0, aligned);
    b->len += aligned;
    return off;
}

size_t nb_msg(struct nlbuf *b, uint16_t type, uint16_t flags, uint32_t seq, size_t hdrlen)
{
    size_t off = nb_raw(b, NLMSG_HDRLEN + NLMSG_ALIGN(hdrlen));
    if (b->oom)
        return 0;
    struct nlmsghdr *h = (struct nlmsghdr *)(b->p + off);
    h->nlmsg_len = NLMSG_HDRLEN + NLMSG_ALIGN(hdrlen);
    h->nlmsg_type = type;
    h->nlmsg_flags = flags;
    h->nlmsg_seq = seq;
    h->nlmsg_pid = 0;
    return off;
}

void *nb_hdr(struct nlbuf *b, size_t off)
{
    return b->p + off + NLMSG_HDRLEN;
}

void nb_msg_end(struct nlbuf *b, size_t off)
{
    if (b->oom)
        return;
    struct nlmsghdr *h = (struct nlmsghdr *)(b->p + off);
    h->nlmsg_len = (uint32_t)(b->len - off);
}

void nb_put(struct nlbuf *b, uint16_t type, const void *data, size_t len)
{
    size_t off = nb_raw(b, NLA_HDRLEN + len);
    if (b->oom)
        return;
    struct nlattr *a = (struct nlattr *)(b->p + off);
    a->nla_len = (uint16_t)(NLA_HDRLEN + len);
    a->nla_type = type;
    if (len)
        memcpy(b->p + off + NLA_HDRLEN, data, len);
}

void nb_put_u8(struct nlbuf *b, uint16_t type, uint8_t v)
{
    nb_put(b, type, &v, sizeof v);
}

void nb_put_u16(struct nlbuf *b, uint16_t type, uint16_t v)
{
    nb_put(b, type, &v, sizeof v);
}

void nb_put_u32(struct nlbuf *b, uint16_t type, uint32_t v)
{
    nb_put(b, type, &v, sizeof v);
}

void nb_put_str(struct nlbuf *b, uint16_t type, const char *s)
{
    nb_put(b, type, s, strlen(s) + 1);
}

size_t nb_nest(struct nlbuf *b, uint16_t type)
{
    size_t off = nb_raw(b, NLA_HDRLEN);
    if (b->oom)
        return 0;
    struct nlattr *a = (struct nlattr *)(b->p + off);
    a->nla_type = type | NLA_F_NESTED;
    a->nla_len = NLA_HDRLEN;
    return off;
}

void nb_nest_end(struct nlbuf *b, size_t off)
{
    if (b->oom)
        return;
    struct nlattr *a = (struct nlattr *)(b->p + off);
    a->nla_len = (uint16_t)(b->len - off);
}

int cn_ifindex(int sock, const char *name)
{
    struct ifreq r;
    memset(&r, 0, sizeof r);
    size_t n = strlen(name);
    if (n == 0 || n >= IFNAMSIZ)
        return -ENODEV;
    memcpy(r.ifr_name, name, n);
    if (ioctl(sock, SIOCGIFINDEX, &r) < 0)
        return -errno;
    return r.ifr_ifindex;
}

int cn_ifname(int sock, int index, char name[16])
{
    struct ifreq r;
    memset(&r, 0, sizeof r);
    r.ifr_ifindex = index;
    if (ioctl(sock, SIOCGIFNAME, &r) < 0) {
        name[0] = '\0';
        return -errno;
    }
    memcpy(name, r.ifr_name, IFNAMSIZ);
    name[IFNAMSIZ - 1] = '\0';
    return 0;
}

void cn_parse_attrs(struct nlattr **tb, int max, const void *start, int len)
{
    memset(tb, 0, sizeof(*tb) * (size_t)(max + 1));
    if (len <= 0)
        return;
    struct nlattr *a = (struct nlattr *)start;
    int rem = len;
    while (CN_NLA_OK(a, rem)) {
        int t = CN_NLA_TYPE(a);
        if (t <= max)
            tb[t] = a;
        a = CN_NLA_NEXT(a, rem);
    }
}

void cn_parse_msg(struct nlattr **tb, int max, const struct nlmsghdr *h, size_t hdrlen)
{
    cn_parse_attrs(tb, max, (const char *)NLMSG_DATA(h) + NLMSG_ALIGN(hdrlen),
                   (int)(h->nlmsg_len - NLMSG_LENGTH(NLMSG_ALIGN(hdrlen))));
}

void cn_parse_nested(struct nlattr **tb, int max, const struct nlattr *nest)
{
    cn_parse_attrs(tb, max, CN_NLA_DATA(nest), CN_NLA_LEN(nest));
}
