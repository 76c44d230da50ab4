#ifndef CORECNI_CN_NL_H
#define CORECNI_CN_NL_H

/* Internal helpers shared by the native sources (not part of the cffi ABI). */

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <linux/netlink.h>

/* A growable buffer of netlink messages. Positions are offsets, never
 * pointers, because the storage moves when it grows. */
struct nlbuf {
    unsigned char *p;
    size_t len;
    size_t cap;
    int oom;
};

void nb_init(struct nlbuf *b);
void nb_free(struct nlbuf *b);
void nb_reset(struct nlbuf *b);
/* Append a message header + zeroed family header of hdrlen bytes. Returns the
 * message's offset. */
size_t nb_msg(struct nlbuf *b, uint16_t type, uint16_t flags, uint32_t seq, size_t hdrlen);
/* Pointer to the family header of the message at off (valid until the next append). */
void *nb_hdr(struct nlbuf *b, size_t off);
void nb_msg_end(struct nlbuf *b, size_t off);
void nb_put(struct nlbuf *b, uint16_t type, const void *data, size_t len);
void nb_put_u8(struct nlbuf *b, uint16_t type, uint8_t v);
void nb_put_u16(struct nlbuf *b, uint16_t type, uint16_t v);
void nb_put_u32(struct nlbuf *b, uint16_t type, uint32_t v);
void nb_put_str(struct nlbuf *b, uint16_t type, const char *s);
size_t nb_nest(struct nlbuf *b, uint16_t type);
void nb_nest_end(struct nlbuf *b, size_t off);
/* Reserve n zeroed, aligned bytes inside the current message; returns offset. */
size_t nb_raw(struct nlbuf *b, size_t n);

/* Open a NETLINK_ROUTE socket inside netns (NULL: the calling thread's).
 * Returns the fd or -errno. */
int cn_nl_socket(const char *netns);
/* Run fn(arg) with the calling thread inside netns, then return to the
 * thread's own namespace. Returns fn's result, or -errno if entering failed. */
int cn_in_netns(const char *netns, int (*fn)(void *), void *arg);

/* ifindex <-> name through ioctl on any socket of the namespace. */
int cn_ifindex(int sock, const char *name);            /* > 0 or -errno */
int cn_ifname(int sock, int index, char name[16]);     /* 0 or -errno */

/* Attribute walking over a region. */
#define CN_NLA_OK(nla, rem) \
    ((rem) >= (int)sizeof(struct nlattr) && (nla)->nla_len >= sizeof(struct nlattr) && \
     (int)(nla)->nla_len <= (rem))
#define CN_NLA_NEXT(nla, rem) \
    ((rem) -= NLA_ALIGN((nla)->nla_len), \
     (struct nlattr *)((char *)(nla) + NLA_ALIGN((nla)->nla_len)))
#define CN_NLA_DATA(nla) ((void *)((char *)(nla) + NLA_HDRLEN))
#define CN_NLA_LEN(nla) ((int)(nla)->nla_len - NLA_HDRLEN)
#define CN_NLA_TYPE(nla) ((nla)->nla_type & NLA_TYPE_MASK)

/* Fill tb[0..max] with the attributes in [start, start+len); later duplicates win. */
void cn_parse_attrs(struct nlattr **tb, int max, const void *start, int len);
/* The same for the attributes of message h after its family header of hdrlen
 * bytes (the caller checked that h holds that header), and for those nested
 * in attribute nest. */
void cn_parse_msg(struct nlattr **tb, int max, const struct nlmsghdr *h, size_t hdrlen);
void cn_parse_nested(struct nlattr **tb, int max, const struct nlattr *nest);

/* Walking the messages of one datagram of rem bytes:
 *   for (h = buf; cn_nlmsg_ok(h, rem); h = cn_nlmsg_next(h, &rem)) ...
 * A message that claims more than is left ends the walk. */
static inline int cn_nlmsg_ok(const struct nlmsghdr *h, size_t rem)
{
    return rem >= NLMSG_HDRLEN && h->nlmsg_len >= NLMSG_HDRLEN && h->nlmsg_len <= rem;
}

static inline const struct nlmsghdr *cn_nlmsg_next(const struct nlmsghdr *h, size_t *rem)
{
    size_t adv = NLMSG_ALIGN(h->nlmsg_len);
    if (adv >= *rem) {
        *rem = 0;                            /* that was the last one */
        return h;
    }
    *rem -= adv;
    return (const struct nlmsghdr *)((const char *)h + adv);
}

/* Make room for `need` elements of `size` bytes in the array *p of *cap
 * (doubling, from 16). Returns 0, or -1 when out of memory (*p unchanged). */
static inline int cn_grow(void **p, int *cap, int need, size_t size)
{
    if (need <= *cap)
        return 0;
    int n = *cap ? *cap * 2 : 16;
    while (n < need)
        n *= 2;
    void *q = realloc(*p, (size_t)n * size);
    if (q == NULL)
        return -1;
    *p = q;
    *cap = n;
    return 0;
}

#endif
