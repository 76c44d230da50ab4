#ifndef CORECNI_CN_BATCH_H
#define CORECNI_CN_BATCH_H

/*
 * Internal to the batch engine (batch.c) and the request builders (ops.c);
 * not part of the cffi ABI. batch.c parses the serialized batch, groups the
 * requests into phases, sends them and maps the ACKs back; ops.c holds one
 * builder per op code and the table (cn_ops) that says, per op, what it
 * needs, whether it creates a link and which errnos a missing_ok delete
 * ignores. A new request is one line in cn_abi.def, one builder and one row
 * of cn_ops.
 */

#include <net/if.h>
#include <stdint.h>
#include <string.h>

#include "corecni_native.h"
#include "cn_nl.h"

#pragma GCC visibility push(hidden)

enum role { ROLE_MAIN, ROLE_HAIRPIN, ROLE_MOVE };

struct op {
    int code;
    unsigned flags;
    uint64_t have;                           /* bit t set: attribute t present */
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

/* ---- the op table (ops.c) --------------------------------------------- */

#define BIT(t) ((uint64_t)1 << (t))

enum { CREATES_NOTHING, CREATES_HERE, CREATES_IN_NETNS };

struct op_kind {
    /* Queue op i's requests (new_msg ... end_msg), or fail it (add_error,
     * fail_before_send); may flush the pending phase first. */
    void (*build)(struct ctx *c, int i);
    uint64_t need;        /* BIT(CN_A_*) of the attributes the op must carry */
    int creates;          /* its main request creates link CN_A_NAME: here, or in CN_A_NETNS */
    int gone[3];          /* with CN_F_MISSING_OK, these errnos mean "gone already" */
    /* After a request of the op succeeded: bookkeeping beyond `creates`
     * (renames, moves, deletes of links the batch created). NULL: none. */
    void (*done)(struct ctx *c, const struct msgrec *m);
};

extern const struct op_kind cn_ops[CN_OP_MAX + 1];

/* ---- engine services the builders use (batch.c) ----------------------- */

void add_error(struct ctx *c, int index, int err, const char *msg);
void mark_dirty(struct ctx *c, const char *name);
int resolve(struct ctx *c, const char *name);
int flush(struct ctx *c);
struct created *find_created(struct ctx *c, const char *ns, const char *name);
void note_created(struct ctx *c, const char *ns, const char *name, int op);
int creates(const struct op *o, const struct msgrec *m);
int ignorable(const struct op *o, int err);
struct msgrec *new_msg(struct ctx *c, int op, int role, uint16_t type, uint16_t flags,
                       size_t hdrlen);
void end_msg(struct ctx *c, struct msgrec *m);
int ns_fd(struct ctx *c, const char *path);

/* ---- reading an op's attributes ---------------------------------------- */

static inline int has(const struct op *o, int t)
{
    return (int)((o->have >> t) & 1u);
}

static inline const char *str(const struct op *o, int t)
{
    return has(o, t) ? (const char *)o->a[t] : NULL;
}

/* A u32 attribute, dflt when the op does not carry it. */
static inline uint32_t u32_or(const struct op *o, int t, uint32_t dflt)
{
    uint32_t v = dflt;
    if (has(o, t))
        memcpy(&v, o->a[t], 4);
    return v;
}

static inline uint32_t u32(const struct op *o, int t)
{
    return u32_or(o, t, 0);
}

static inline uint64_t u64(const struct op *o, int t)
{
    uint64_t v = 0;
    if (has(o, t))
        memcpy(&v, o->a[t], 8);
    return v;
}

#pragma GCC visibility pop

#endif
