/*
 * Internals of the replication engine, shared by volume.c (lifecycle,
 * vinodes, markers, reads), fan.c (one request to many bricks), txn.c (the
 * write transaction) and rdir.c (directory listings).  Not for users: they
 * include client/volume.h.
 *
 * Bricks are numbered 0..n-1 inside the engine (brick.1 is 0) and sets of
 * bricks are bit masks (bmask_t, bit b = brick b+1), as in the pending
 * vector of XATTROP.
 */
#ifndef RFS_CLIENT_VOLUME_INT_H
#define RFS_CLIENT_VOLUME_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "client/volume.h"
#include "common/config.h"
#include "replicafs/client.h"

typedef uint32_t bmask_t;
#define BMASK(b) ((bmask_t)1u << (b))

static inline unsigned bmask_count(bmask_t m)
{
    return (unsigned)__builtin_popcount(m);
}

/* ---- intrusive circular list ---- */

struct vlist {
    struct vlist *prev;
    struct vlist *next;
};

#define vcontainer_of(ptr, type, member)                                       \
    ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

static inline void vlist_init(struct vlist *l)
{
    l->prev = l->next = l;
}
static inline bool vlist_empty(const struct vlist *l)
{
    return l->next == l;
}
static inline void vlist_add_tail(struct vlist *head, struct vlist *n)
{
    n->prev = head->prev;
    n->next = head;
    head->prev->next = n;
    head->prev = n;
}
/* Unlink n and leave it self-linked (so vlist_empty(n) tells "not on a
 * list"). */
/* Move every node of src to the end of dst; src is left empty. */
static inline void vlist_splice(struct vlist *dst, struct vlist *src)
{
    if (src->next == src)
        return;
    src->next->prev = dst->prev;
    dst->prev->next = src->next;
    src->prev->next = dst;
    dst->prev = src->prev;
    src->next = src->prev = src;
}

static inline void vlist_del(struct vlist *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    vlist_init(n);
}

/* ---- deferred calls: how the engine keeps "callbacks always later" ---- */

struct vdefer {
    struct vdefer *next;
    void (*fn)(struct vdefer *d);
};
/* Run fn(d) from the loop soon (before it blocks again).  d must stay
 * valid until then; it is the caller's memory. */
void vol_defer(struct volume *v, struct vdefer *d, void (*fn)(struct vdefer *));

/* ---- fan: one step of requests to several bricks (fan.c) ---- */

#define FAN_SLOTS (3 * PROTO_MAX_BRICKS) /* two parents and a child */

struct fan;
/* One reply; rep is the decoded reply when status == 0 (valid during the
 * call), else NULL. */
typedef void (*fan_reply_fn)(struct fan *f, unsigned slot, int status,
                             const void *rep);
typedef void (*fan_done_fn)(struct fan *f);

struct fan_slot {
    struct fan *f;    /* borrowed: the fan this slot is in */
    unsigned brick;   /* 0-based */
    int status;       /* 0 or -errno, once answered */
    bool used;
    struct vdefer d;  /* for a call that failed before reaching the wire */
};

struct fan {
    struct volume *v;       /* borrowed */
    unsigned outstanding;   /* calls whose callback has not run */
    bool open;              /* between fan_begin() and fan_end() */
    fan_reply_fn on_reply;  /* may be NULL */
    fan_done_fn on_done;
    void *owner;            /* whatever the user wants back in on_done */
    struct vdefer d;        /* on_done of a fan that issued nothing */
    struct fan_slot slot[FAN_SLOTS];
};

/*
 * fan_begin(), fan_call() for each request, fan_end().  Every call gets
 * on_reply once (a brick that is not up answers -ENOTCONN without a call),
 * then on_done runs once, always from the loop after fan_end().
 */
void fan_begin(struct fan *f, struct volume *v, fan_reply_fn on_reply,
               fan_done_fn on_done, void *owner);
void fan_call(struct fan *f, unsigned slot, unsigned brick, uint16_t op,
              const void *req);
void fan_end(struct fan *f);
/* Bricks whose slots all answered 0 among the bricks that were called. */
bmask_t fan_ok_mask(const struct fan *f);

/* ---- the volume ---- */

struct iwin;

struct vinode {
    struct volume *v;         /* borrowed: outlives its vinodes */
    struct rfs_id id;
    struct vinode *hnext;     /* hash chain in v->vtab */
    unsigned refs;            /* freed at 0 (vinode_maybe_free) */

    /* Read policy (volume.c): bricks blamed by another brick's pending
     * counters, valid while mk_epoch == v->epoch. */
    bmask_t blamed;
    bmask_t blamed_new;       /* blamed locally since the fetch began */
    /* The brick whose attributes were handed up last (a LOOKUP's, a
     * listing's, a GETATTR's), 0-based; -1: none yet.  Every brick stamps
     * times by its own clock, so two bricks' times for one object differ:
     * attributes from one brick then another read to the kernel as a
     * change, and it drops the file's cached pages (auto_inval_data), and
     * the mount's open sees a version it did not tell the kernel
     * (fuse/ops.c invariant 5).  GETATTR and open ask this brick first
     * (vol_pick_attr_brick), so a mount tells one story per object. */
    int attr_brick;
    uint64_t mk_epoch;        /* 0: never fetched */
    struct mkfetch *mk;       /* owned: the fetch in flight, or NULL */
    struct vlist mk_waiters;  /* struct mkwait, waiting for mk */
    /* Waiting for a fetch that starts after mk: mk began before the
     * markers changed (vol_markers_forget). */
    struct vlist mk_waiters_next;
    bool mk_redo;             /* mk began before the markers changed */

    /* Read leases (txn.c, "open from a lease"): the bricks whose lease
     * on the object is intact, valid while lease_gen == v->lease_gen. */
    bmask_t lease;
    uint64_t lease_gen;
    uint32_t recalls;         /* bumped by every recall: an OPENX that
                                 saw one in flight grants nothing */
    struct proto_attr lease_attr; /* what the granting OPENX answered */
    struct vlist leased;      /* struct vfile opened from the lease */
    unsigned lease_asking;    /* OPENX with OPEN_LEASE in flight */

    /* Write transaction (txn.c). */
    unsigned writers;         /* open vfiles that may write */
    struct vlist iops;        /* struct iop queued for the eager lock */
    struct iwin *win;         /* owned: the eager lock, or NULL */
    struct vdefer kick;       /* runs the queue from the loop */
    bool kick_queued;         /* kick is deferred (holds a reference) */
};

struct volume {
    uv_loop_t *loop;                    /* borrowed */
    struct vol_config cfg;              /* copy */
    struct volume_opts opts;
    unsigned n;                         /* bricks */
    unsigned quorum;                    /* n / 2 + 1 */
    struct brick_conn *bc[PROTO_MAX_BRICKS]; /* owned; closed in close */
    bmask_t up;                         /* bricks in state UP */
    uint64_t epoch;                     /* bumped when a brick comes up */
    uint64_t lease_gen;                 /* bumped when some brick's leases
                                           may all be gone (link change,
                                           INVAL_LEASES_LOST) */
    uint64_t owner_base;                /* random; lock owners derive */
    uint64_t owner_seq;

    struct vinode **vtab;               /* owned: hash of vinodes by id */
    size_t vcap;                        /* power of two */
    size_t vcount;

    struct vdefer *dhead, **dtail;      /* deferred calls, FIFO */
    uv_idle_t didle;                    /* runs them */
    uv_timer_t post_timer;              /* delayed post-op (txn.c) */
    struct vlist post_list;             /* struct iwin by deadline */
    struct vlist windows;               /* every struct iwin alive */
    struct vlist files;                 /* open struct vfile, not released */
    struct vlist dirs;                  /* struct vdir, not closed */
    uv_timer_t wait_timer;              /* volume_wait_ready() */
    bool wait_expired;

    bool closing;
    unsigned nclosing;                  /* handles and links still closing */
    void (*done)(void *);
    void *done_arg;
};

/*
 * Read leases.  An open for reading may be answered from memory, without
 * asking any brick, when the object's lease is intact on at least
 * n - quorum + 1 up bricks (so every acknowledged change, done by a
 * quorum, went through one of them and recalled it) and, on each of those,
 * a reply has arrived to a request sent less than VOLUME_LEASE_TRUST_MS
 * ago.  That reply came after any recall the brick sent before it, and a
 * brick waits LEASE_RECALL_WAIT_MS (1 s, daemon/leases.h) for the answer
 * before it lets the change go on; so a mount frozen or cut off for longer
 * than the trust period asks the bricks again.  docs/client.md.
 */
#define VOLUME_LEASE_TRUST_MS 500u
/* A brick recalled (b, id), or refused to grant it: stop trusting every
 * brick's lease on id, turn the files opened from it into real opens on b,
 * give b's back (txn.c). */
void txn_lease_recalled(struct volume *v, unsigned b, const struct rfs_id *id);
/* The vinode is being freed: give back the leases it holds. */
void txn_lease_drop(struct vinode *vi);

/* A new unique lock owner (per volume, per lock holder). */
uint64_t vol_new_owner(struct volume *v);

/* -ENOTCONN, -ETIMEDOUT...: the brick went away rather than refused. */
bool vol_err_is_link(int status);

static inline bmask_t vol_all_bricks(const struct volume *v)
{
    return v->n >= 32 ? ~(bmask_t)0 : (BMASK(v->n) - 1);
}

/* The error to report for bricks `bad` (statuses in st[]): the first
 * brick's own refusal, else -EROFS (they were lost: no quorum). */
static inline int vol_pick_error(const struct volume *v, const int *st,
                                 bmask_t bad)
{
    for (unsigned b = 0; b < v->n; b++)
        if ((bad & BMASK(b)) && st[b] < 0 && !vol_err_is_link(st[b]))
            return st[b];
    return -EROFS;
}

/* 0, or -EROFS when this client may not change anything now. */
int vol_change_allowed(const struct volume *v);

/* ---- markers and read policy (volume.c) ---- */

struct mkwait {
    struct vlist link;      /* on vi->mk_waiters while a fetch runs */
    struct vdefer d;        /* for an answer known at once */
    int status;
    void (*fn)(struct mkwait *w, int status);
};
/*
 * Make sure vi's blame mask is current (fetched with a zero XATTROP from the
 * up bricks since the last brick came up), then call w->fn from the loop
 * with 0, or -ENOENT when no brick has the object, or -ENOTCONN when none
 * answered.
 */
void vol_markers_ensure(struct vinode *vi, struct mkwait *w);
/* This client saw brick set `missed` miss a change to vi. */
void vol_blame(struct vinode *vi, bmask_t missed);
/* A good brick for reading vi outside `tried`; -1 if none (then *why is
 * -EIO when only blamed bricks are up, else -ENOTCONN). */
int vol_pick_read_brick(struct vinode *vi, bmask_t tried, int *why);
/* As vol_pick_read_brick, but vi->attr_brick while it is a good one. */
int vol_pick_attr_brick(struct vinode *vi, bmask_t tried, int *why);
/* What is cached about vi's markers is out of date (another client changed
 * them, or the caller needs them fresh): the next vol_markers_ensure()
 * fetches them again, after any fetch already on the way. */
void vol_markers_forget(struct vinode *vi);
/*
 * Fetch vi's markers now, with `op` (OPENX) and its request `req` instead of
 * a zero XATTROP; hook sees each brick's reply (status, the openx_rep)
 * before the markers are taken from it.  Only when no fetch is on the way
 * (vi->mk == NULL); w waits as with vol_markers_ensure().  req and arg
 * must live until w->fn runs.
 */
typedef void (*vol_mk_hook)(void *arg, unsigned brick, int status,
                            const struct openx_rep *rep);
void vol_markers_fetch_openx(struct vinode *vi, struct mkwait *w,
                             const struct open_req *req, vol_mk_hook hook,
                             void *arg);
/* Does every up brick speak protocol version `ver` or later? */
bool vol_up_speak(const struct volume *v, uint32_t ver);
/* The vinode of id if one exists (no reference taken), else NULL. */
struct vinode *vol_inode_find(struct volume *v, const struct rfs_id *id);

/*
 * rcall: one read-type call on one good brick of vi, retried on the next
 * good brick when the brick fails (link lost, EIO; ENOENT too when
 * retry_enoent, for id-addressed calls).  on_reply (may be NULL) then
 * on_done(0) run together with the reply, or on_done(-errno) once, always
 * from the loop.  With pin = N (1-based) only brick N is asked.
 */
struct rcall {
    struct volume *v;
    struct vinode *vi;  /* borrowed from the op (it holds a reference) */
    uint16_t op;
    const void *req;    /* borrowed from the op */
    bool retry_enoent;
    unsigned pin;       /* 0: any good brick; N: only brick N */
    bmask_t tried;
    int last_err;
    int brick;          /* 0-based, the brick asked last */
    void (*on_reply)(struct rcall *rc, const void *rep);
    void (*on_done)(struct rcall *rc, int status);
    struct vdefer d;
};
/* on_reply, on_done and pin are set by the caller before. */
void vol_rcall_start(struct rcall *rc, struct volume *v, struct vinode *vi,
                     uint16_t op, const void *req, bool retry_enoent);

/*
 * lkq (lkq.c): LOOKUP of `name` under `parent`, answered by one brick whose
 * copy of the folder is clean, else by a quorum of good bricks of `among`
 * (0: all) that agree; -EIO when none can.  own_mark: the caller holds one
 * dirty mark on the parent itself.  done(0) with q->attr and q->brick, or
 * done(-errno), once, from the loop.  The caller owns q and keeps a
 * reference on parent until done.
 */
struct lkq {
    struct volume *v;       /* borrowed */
    struct vinode *parent;  /* borrowed */
    bmask_t among;
    bmask_t asked;
    unsigned votes;
    int brick;              /* 0-based: the brick whose answer it is */
    struct proto_attr attr; /* the answer, on done(0) */
    void (*done)(struct lkq *q, int status);
    struct lookup_req req;
    struct rcall rc;
    struct fan fan;
    int st[PROTO_MAX_BRICKS];
    struct proto_attr battr[PROTO_MAX_BRICKS];
    bool own_mark;
    bmask_t clean;          /* VOTE: bricks whose folder copy is clean */
    struct xattrop_req mreq; /* VOTE: the folder's markers, zero delta */
};
void vol_lookup_quorum(struct lkq *q, struct volume *v, struct vinode *parent,
                       const char *name, bmask_t among, bool own_mark,
                       void (*done)(struct lkq *q, int status));

/* ---- transactions (txn.c) ---- */

/* The eager lock ends soon: a brick came up (it must join the next one). */
void txn_brick_up(struct volume *v);
/* Called from the post-op timer (volume.c owns the handle). */
void txn_post_timer_cb(uv_timer_t *t);
/* Freeing check used by volume_inode_put: no txn state left. */
bool txn_inode_idle(const struct vinode *vi);
/* volume_close(): release every open file and close every listing the
 * user left (the kernel sends no RELEASE once the session is gone). */
void txn_release_all(struct volume *v);
/*
 * The write window a CREATE_LOCK file is born with (txn.c).  txn_born_new
 * allocates it and picks the lock owner to send in the CREATE (*owner),
 * so that nothing can fail once bricks hold the lock; NULL on -ENOMEM.
 * txn_born_start consumes it: `held` are the bricks that answered the
 * CREATE (each holds the lock and dirty = 1), `ok` those whose CREATE
 * counted; vi must have no window.  txn_born_free (NULL-safe) when no
 * brick holds anything.
 */
struct iwin;
struct iwin *txn_born_new(struct volume *v, uint64_t *owner);
void txn_born_start(struct iwin *w, struct vinode *vi, bmask_t held,
                    bmask_t ok, bool keep_dirty);
void txn_born_free(struct iwin *w);
void rdir_close_all(struct volume *v);
/* Open files (txn.c), also for the engine's own opens (CREATE_OPEN,
 * etxn.c): a vfile not yet open (holds a reference to vi); then either
 * vfile_opened() with the bricks that pinned it, after which it is the
 * caller's to release with volume_release(), or vfile_free() when nothing
 * holds it open. */
struct vfile *vfile_new(struct volume *v, struct vinode *vi, uint32_t flags);
void vfile_opened(struct vfile *f, bmask_t opened);
void vfile_free(struct vfile *f);

#endif
