/*
 * txn: the write transaction (docs/architecture.md, docs/client.md).
 *
 * Design
 * ======
 * Two kinds of transactions change a volume.
 *
 * A. Inode changes (write, setattr) go through the object's eager lock, a
 *    "window" (struct iwin) that is kept across changes so that a stream of
 *    writes to an open file costs one round trip per write:
 *
 *     (no window) --iwin_begin--> LOCKING --iwin_lock_done--> HELD <-+
 *      |   ^                                                   | ^  |
 *      |   |                                           iwin_end  |  iop_done
 *      |   |                                                   v +--iop_start
 *      |   +--iwin_unmark_done: window freed; ------------- UNMARKING
 *      |      the queue starts a new one
 *      +--txn_born_start (a create's CREATE_LOCK, etxn.c): straight to HELD
 *
 *    LOCKING  lock and dirty+1 in one XATTROP (XO_LOCK: the brick grants
 *             the inode lock, then marks; both or neither) on every up
 *             brick: first all at once, non-blocking; if any is busy, take
 *             back what was granted (dirty-1 + XO_UNLOCK) and lock one by
 *             one in brick order, blocking (no deadlock: every client goes
 *             1, 2, 3).  Each grant returns the markers read under it.
 *    (born)   a file made by create for writing is born locked and marked
 *             on the bricks that made it (CREATE_LOCK, w->owner sent as
 *             its lk_owner): txn_born_start makes the window HELD at once,
 *             locked = marked = the bricks that answered the CREATE, mask
 *             = those whose CREATE counted (invariant 2: a brick that
 *             failed or missed it never joins; etxn blamed it).  Only a
 *             minority made it: keep_dirty, the window just unlocks.
 *    HELD     queued changes run one at a time (so overlapping writes are
 *             applied in the same order on every brick) on the bricks of
 *             the window.  When a change misses a brick X (down, or failed)
 *             the bricks that did it get pending[X]+1 before the caller is
 *             answered, once per window and brick (iop_done); if one of
 *             them cannot take it, the change is answered failed.
 *    UNMARKING XATTROP dirty-1 + XO_UNLOCK on the bricks that did every
 *             change, a plain INODELK unlock on the other locked ones;
 *             then queued flushes are answered.
 *
 *    The window ends (iwin_end) when a flush/release reaches the queue's
 *    head; when the queue is empty and no open file can write (at once) or
 *    after post_op_delay_ms idle (post_timer); after max_hold_ms, so that a
 *    client waiting for the lock on a brick waits at most that long (we do
 *    not learn of contention: the bounded delay stands in for it); when a
 *    brick comes up (it must join the next window); or when fewer than a
 *    quorum of the window's bricks are left.
 *
 * B. Namespace changes (mkdir, mknod, symlink, create, link, unlink, rmdir,
 *    rename) are one-shot transactions (struct etxn) on the parent entry:
 *
 *     LOCK_TRY --busy--> LOCK_UNDO --> LOCK_SEQ --+
 *        |                                        v
 *        +--------------------------------> (PRE) --> MARK --> OP --> POST
 *                                                                      |
 *                                            freed <-- UNLOCK <--------+
 *
 *    ENTRYLK (parent, name) on every up brick (rename: both entries, in
 *    (parent id, name) order, per brick in brick order), so O_CREAT|O_EXCL,
 *    mkdir and rename are atomic across clients; PRE (create without
 *    O_EXCL) looks the name up under the lock; MARK dirty+1 on the
 *    parent(s); OP on all locked bricks at once; POST dirty-1, plus
 *    pending[X]+1 for every brick X that missed it, on the parent(s) and on
 *    the new object.  The caller is answered right after OP when every
 *    brick did it, else after POST (the blame must be on disk first, on
 *    every brick that did it, else the change is answered failed).
 *
 * The new object's id is chosen here (rfs_id_random) so that every brick
 * stamps the same one.
 *
 * Quorum: a change needs quorum = n/2+1 bricks up to start and that many
 * succeeding; else it fails with -EROFS, or with the bricks' own error when
 * they refused it (EEXIST...).  A change that a minority did is left dirty
 * (no post-op) for heal to look at, and blames nobody.
 *
 * Invariants:
 *  1. At most one window per vinode (vi->win), and at most one change of it
 *     on the wire (w->running or w->recording).
 *  2. A brick leaves w->mask when it misses a change and never rejoins the
 *     window; every brick outside w->mask that is not in w->recorded has
 *     missed no change answered as a success... (iop_done records it).
 *  3. Locks are released on every brick in w->locked / t->locked[], even on
 *     failure paths (bricks that are down dropped them with the link).
 *     A birth lock is one too: every CREATE_LOCK that a brick answered 0
 *     ends in a window (txn_born_start), and every window ends
 *     (iwin_end); the lock owner is w->owner in both requests.
 *  4. Every queued iop is answered exactly once: by its finish (change),
 *     after UNMARKING or with no window (flush), or failed with the window's
 *     lock failure.
 *  5. A window and an etxn hold references on the vinodes they name.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "client/volume_int.h"
#include "common/id.h"
#include "common/log.h"

#define MAXB PROTO_MAX_BRICKS

#define all_bricks vol_all_bricks
#define pick_error vol_pick_error

/* ==================================================================== */
/* A. inode changes through the eager lock                              */
/* ==================================================================== */

enum iwin_state {
    IW_LOCKING,   /* lock + dirty+1 (one XATTROP per brick) */
    IW_HELD,
    IW_UNMARKING, /* dirty-1 + unlock (one XATTROP per brick) */
};

struct iop;

struct iop_ops {
    /* Check one brick's reply (0, or -EIO when it does not fit). */
    int (*reply)(struct iop *op, unsigned b, const void *rep);
    /* Answer the caller with status, drop references, free op. */
    void (*finish)(struct iop *op, int status);
    uint16_t opcode;
    const void *(*req)(struct iop *op);
    /* May be NULL.  Called when the change reaches the head of the window:
     * returns false to go on at once, or true when it has started work of
     * its own and will call iop_send() (or finish the op) later. */
    bool (*prepare)(struct iop *op);
};

struct iop {
    struct vlist link;          /* in vi->iops */
    const struct iop_ops *ops;  /* NULL: a flush */
    struct vinode *vi;          /* a reference */
    bmask_t ok;                 /* bricks that did it */
    int st[MAXB];               /* each brick's status */
    int status;                 /* the answer, once known */
    struct fan fan;
    /* flush only */
    vol_status_cb flush_cb;
    void *arg;
    void (*embedded)(struct iop *op, int status); /* not heap: see release */
};

struct iwin {
    struct vinode *vi;          /* a reference (invariant 5) */
    enum iwin_state st;
    uint64_t owner;
    bmask_t want;               /* up when the window began */
    bmask_t locked;             /* INODELK granted (invariant 3) */
    bmask_t marked;             /* dirty+1 done */
    bmask_t mask;               /* bricks of the window (invariant 2) */
    bmask_t recorded;           /* pending[X]+1 done this window */
    bmask_t accused;            /* LOCKING: blamed by a locked brick */
    unsigned lock_next;         /* LOCKING one by one: next brick */
    bool lock_seq;              /* LOCKING one by one (after a busy one) */
    bool lock_undo;             /* releasing the non-blocking grants */
    bool end_req;               /* end before the next change */
    bool keep_dirty;            /* a minority did a change: no post-op */
    int fail;                   /* queued changes fail with this */
    uint64_t held_since;        /* loop ms */
    struct vlist link;          /* in v->windows */
    struct vlist post_link;     /* in v->post_list while the timer runs */
    uint64_t post_deadline;
    struct iop *running;        /* the change on the wire (invariant 1) */
    struct iop *recording;      /* the change whose blame is being written */
    bmask_t recording_set;
    struct fan fan;             /* the window's own steps */
    struct inodelk_req lk;
    struct inodelk_req unlk;
    struct xattrop_req xr;
};

static void iwin_run(struct vinode *vi);
static void iwin_end(struct iwin *w);

static void kick_cb(struct vdefer *d)
{
    struct vinode *vi = vcontainer_of(d, struct vinode, kick);

    vi->kick_queued = false;
    iwin_run(vi);
    volume_inode_put(vi);
}

/* Run vi's queue from the loop (never inside a volume_*() call). */
static void iwin_kick(struct vinode *vi)
{
    if (vi->kick_queued)
        return;
    vi->kick_queued = true;
    volume_inode_ref(vi);
    vol_defer(vi->v, &vi->kick, kick_cb);
}

bool txn_inode_idle(const struct vinode *vi)
{
    return !vi->win && vlist_empty(&vi->iops) && !vi->kick_queued;
}

static void iop_enqueue(struct iop *op)
{
    vlist_add_tail(&op->vi->iops, &op->link);
    iwin_kick(op->vi);
}

static struct iop *iop_head(struct vinode *vi)
{
    return vlist_empty(&vi->iops) ? NULL
                                  : vcontainer_of(vi->iops.next, struct iop,
                                                  link);
}

static void flush_finish(struct iop *op, int status)
{
    vol_status_cb cb = op->flush_cb;
    void *arg = op->arg;
    struct vinode *vi = op->vi;

    if (op->embedded) {
        op->embedded(op, status);
        return;
    }
    free(op);
    if (cb)
        cb(status, arg);
    volume_inode_put(vi);
}

/* Answer and remove every queued flush at the head of the queue. */
static void flushes_answer(struct vinode *vi)
{
    struct iop *op;

    while ((op = iop_head(vi)) && !op->ops) {
        vlist_del(&op->link);
        flush_finish(op, 0);
    }
}

/* Fail every queued change (not flushes: there is nothing to flush). */
static void queue_fail(struct vinode *vi, int status)
{
    struct vlist q;

    vlist_init(&q);
    while (!vlist_empty(&vi->iops)) {
        struct vlist *n = vi->iops.next;

        vlist_del(n);
        vlist_add_tail(&q, n);
    }
    while (!vlist_empty(&q)) {
        struct iop *op = vcontainer_of(q.next, struct iop, link);

        vlist_del(&op->link);
        if (op->ops)
            op->ops->finish(op, status);
        else
            flush_finish(op, 0);
    }
}

/* ---- the post-op timer ---- */

static void post_disarm(struct iwin *w)
{
    if (!vlist_empty(&w->post_link))
        vlist_del(&w->post_link);
}

static void post_timer_rearm(struct volume *v)
{
    struct iwin *w;
    uint64_t now = uv_now(v->loop);

    if (vlist_empty(&v->post_list)) {
        uv_timer_stop(&v->post_timer);
        return;
    }
    w = vcontainer_of(v->post_list.next, struct iwin, post_link);
    uv_timer_start(&v->post_timer, txn_post_timer_cb,
                   w->post_deadline > now ? w->post_deadline - now : 0, 0);
}

static void post_arm(struct iwin *w)
{
    struct volume *v = w->vi->v;
    bool first = vlist_empty(&v->post_list);

    post_disarm(w);
    /* Every deadline is now + the same delay: appending keeps the list
     * sorted. */
    w->post_deadline = uv_now(v->loop) + v->opts.post_op_delay_ms;
    vlist_add_tail(&v->post_list, &w->post_link);
    if (first)
        post_timer_rearm(v);
}

void txn_post_timer_cb(uv_timer_t *t)
{
    struct volume *v = t->data;
    uint64_t now = uv_now(v->loop);

    while (!vlist_empty(&v->post_list)) {
        struct iwin *w = vcontainer_of(v->post_list.next, struct iwin,
                                       post_link);

        if (w->post_deadline > now)
            break;
        post_disarm(w);
        if (w->st == IW_HELD && !w->running && !w->recording &&
            vlist_empty(&w->vi->iops))
            iwin_end(w);
    }
    post_timer_rearm(v);
}

void txn_brick_up(struct volume *v)
{
    struct vlist *n, *next;

    /* iwin_end may free nothing here (it only starts the post-op), but
     * take next first all the same. */
    for (n = v->windows.next; n != &v->windows; n = next) {
        struct iwin *w = vcontainer_of(n, struct iwin, link);

        next = n->next;
        if (w->st != IW_HELD)
            continue;
        w->end_req = true;
        if (!w->running && !w->recording && vlist_empty(&w->vi->iops)) {
            post_disarm(w);
            iwin_end(w);
        }
    }
}

/* ---- window steps ---- */

static void iwin_free(struct iwin *w)
{
    struct vinode *vi = w->vi;

    post_disarm(w);
    vlist_del(&w->link);
    vi->win = NULL;
    free(w);
    iwin_run(vi); /* queued changes start the next window */
    volume_inode_put(vi);
}

/* Fill w->xr: dirty += d on the window's object, with lock step lk. */
static void iwin_xr(struct iwin *w, int64_t d, uint32_t lk)
{
    memset(&w->xr, 0, sizeof(w->xr));
    w->xr.id = w->vi->id;
    w->xr.dirty = d;
    w->xr.npending = w->vi->v->n;
    w->xr.lk = lk;
    w->xr.lk_owner = w->owner;
}

static void iwin_unmark_done(struct fan *f)
{
    struct iwin *w = f->owner;

    flushes_answer(w->vi);
    iwin_free(w);
}

/*
 * HELD (or a failed LOCKING) -> UNMARKING: dirty-1 and unlock in one
 * XATTROP where every change succeeded; a plain unlock on the other
 * locked bricks (a minority did a change: keep_dirty, or a brick left the
 * window).  Bricks that are down dropped their locks with the link.
 */
static void iwin_end(struct iwin *w)
{
    struct volume *v = w->vi->v;
    bmask_t clear = w->keep_dirty ? 0 : (w->marked & w->mask);

    assert(!w->running && !w->recording);
    post_disarm(w);
    w->st = IW_UNMARKING;
    iwin_xr(w, -1, XO_UNLOCK);
    w->unlk = w->lk;
    w->unlk.type = LK_UN;
    w->unlk.flags = 0;
    fan_begin(&w->fan, v, NULL, iwin_unmark_done, w);
    for (unsigned b = 0; b < v->n; b++) {
        if (clear & BMASK(b))
            fan_call(&w->fan, b, b, OP_XATTROP, &w->xr);
        else if ((w->locked & BMASK(b)) && (v->up & BMASK(b)))
            fan_call(&w->fan, b, b, OP_INODELK, &w->unlk);
    }
    fan_end(&w->fan);
}

/* The error that ends a failed locking: the object is gone everywhere, or
 * there were not enough bricks. */
static int lock_fail_status(const struct fan *f)
{
    bool any = false, all_enoent = true;

    for (unsigned i = 0; i < FAN_SLOTS; i++) {
        if (!f->slot[i].used || f->slot[i].status == 0)
            continue;
        any = true;
        if (f->slot[i].status != -ENOENT && f->slot[i].status != -ESTALE)
            all_enoent = false;
    }
    return any && all_enoent ? -ENOENT : -EROFS;
}

/* The markers every brick returns as it grants the lock are the truth
 * about who blames whom for this object: keep them (read policy, and the
 * size an append starts from). */
static void iwin_mark_reply_cb(struct fan *f, unsigned slot, int status,
                               const void *rep)
{
    struct iwin *w = f->owner;
    unsigned b = f->slot[slot].brick;
    const struct xattrop_rep *xr = rep;

    if (status == -ENOENT || status == -ESTALE)
        w->accused |= BMASK(b); /* up, but without the object */
    if (status < 0)
        return;
    for (unsigned i = 0; i < xr->npending && i < f->v->n; i++)
        if (i != b && xr->pending[i] != 0)
            w->accused |= BMASK(i);
}

/* LOCKING done: every brick in w->locked is locked and marked dirty (one
 * XATTROP did both, or neither). */
static void iwin_lock_done(struct iwin *w, int fail)
{
    struct vinode *vi = w->vi;
    struct volume *v = vi->v;

    w->marked = w->locked;
    w->mask = w->marked;
    if (bmask_count(w->marked) < v->quorum) {
        /* The object gone everywhere (unlinked by another client since
         * this one looked it up) is ENOENT, which the mount answers ESTALE
         * so that the kernel looks the name up again; only missing bricks
         * make it EROFS. */
        if (fail == -EROFS)
            log_warn("write lock: only %u of %u bricks locked, need %u",
                     bmask_count(w->marked), v->n, v->quorum);
        queue_fail(vi, fail);
        iwin_end(w);
        return;
    }
    if (!vi->mk) {
        vi->blamed = w->accused | vi->blamed_new;
        vi->mk_epoch = v->epoch;
    }
    w->st = IW_HELD;
    w->held_since = uv_now(v->loop);
    iwin_run(vi);
}

static void iwin_lock_seq(struct iwin *w);

static void iwin_lock_seq_done(struct fan *f)
{
    struct iwin *w = f->owner;
    unsigned b = w->lock_next;

    if (f->slot[b].status == 0)
        w->locked |= BMASK(b);
    else {
        log_debug("write lock: brick %u: %s", b + 1,
                  strerror(-f->slot[b].status));
        if (f->slot[b].status != -ENOENT && f->slot[b].status != -ESTALE)
            w->fail = -EROFS;
    }
    w->lock_next = b + 1;
    iwin_lock_seq(w);
}

/* One brick at a time, in brick order, blocking. */
static void iwin_lock_seq(struct iwin *w)
{
    struct volume *v = w->vi->v;

    while (w->lock_next < v->n && !(w->want & BMASK(w->lock_next)))
        w->lock_next++;
    if (w->lock_next >= v->n) {
        iwin_lock_done(w, w->fail ? w->fail : -ENOENT);
        return;
    }
    iwin_xr(w, 1, XO_LOCK);
    fan_begin(&w->fan, v, iwin_mark_reply_cb, iwin_lock_seq_done, w);
    fan_call(&w->fan, w->lock_next, w->lock_next, OP_XATTROP, &w->xr);
    fan_end(&w->fan);
}

static void iwin_lock_try_done(struct fan *f)
{
    struct iwin *w = f->owner;
    struct volume *v = w->vi->v;
    bool busy = false;

    if (w->lock_undo) {
        /* The grants are released: take the locks one by one. */
        w->lock_undo = false;
        w->locked = 0;
        w->accused = 0;
        w->lock_seq = true;
        w->lock_next = 0;
        w->fail = 0;
        iwin_lock_seq(w);
        return;
    }
    w->locked = fan_ok_mask(f);
    for (unsigned b = 0; b < v->n; b++)
        if (f->slot[b].used && f->slot[b].status == -EAGAIN)
            busy = true;
    if (!busy) {
        iwin_lock_done(w, lock_fail_status(f));
        return;
    }
    /* Someone holds it on some brick: holding the others while waiting
     * could deadlock with a client going in brick order.  Take back the
     * marks made with the grants, and the grants. */
    w->lock_undo = true;
    iwin_xr(w, -1, XO_UNLOCK);
    fan_begin(&w->fan, v, NULL, iwin_lock_try_done, w);
    for (unsigned b = 0; b < v->n; b++)
        if (w->locked & BMASK(b))
            fan_call(&w->fan, b, b, OP_XATTROP, &w->xr);
    fan_end(&w->fan);
}

/* (no window) -> LOCKING: lock and dirty+1 on every up brick in one
 * non-blocking XATTROP each (XO_LOCK, proto.h). */
static int iwin_begin(struct vinode *vi)
{
    struct volume *v = vi->v;
    struct iwin *w = calloc(1, sizeof(*w));

    if (!w)
        return -ENOMEM;
    volume_inode_ref(vi);
    w->vi = vi;
    w->st = IW_LOCKING;
    w->owner = vol_new_owner(v);
    w->want = v->up;
    vlist_init(&w->post_link);
    vlist_add_tail(&v->windows, &w->link);
    vi->win = w;
    w->lk.id = vi->id;
    w->lk.owner = w->owner;
    w->lk.type = LK_WR;
    w->accused = 0;
    iwin_xr(w, 1, XO_LOCK | XO_NONBLOCK);
    fan_begin(&w->fan, v, iwin_mark_reply_cb, iwin_lock_try_done, w);
    for (unsigned b = 0; b < v->n; b++)
        if (w->want & BMASK(b))
            fan_call(&w->fan, b, b, OP_XATTROP, &w->xr);
    fan_end(&w->fan);
    return 0;
}

/* ---- a window born with its file (CREATE_LOCK) ---- */

struct iwin *txn_born_new(struct volume *v, uint64_t *owner)
{
    struct iwin *w = calloc(1, sizeof(*w));

    if (!w)
        return NULL;
    w->owner = vol_new_owner(v);
    *owner = w->owner;
    return w;
}

void txn_born_free(struct iwin *w)
{
    free(w);
}

/*
 * (no window) -> HELD without LOCKING: each brick in `held` answered the
 * CREATE_LOCK, so it holds w->owner's inode lock and dirty = 1 on the new
 * file, exactly what iwin_begin's XATTROP would have left.  The window's
 * bricks (invariant 2) are those in `ok` too: a brick that failed or missed
 * the CREATE never joins it, and the creating transaction has blamed it
 * (vol_blame, and pending on disk before any caller heard of the file).
 * With keep_dirty (only a minority made the file: it stays for heal) the
 * window just unlocks and ends.  Every way out of HELD passes iwin_end, so
 * the locks are released on every path (invariant 3).
 */
void txn_born_start(struct iwin *w, struct vinode *vi, bmask_t held,
                    bmask_t ok, bool keep_dirty)
{
    struct volume *v = vi->v;

    assert(!vi->win && held);
    volume_inode_ref(vi);
    w->vi = vi;
    w->st = IW_HELD;
    w->want = held;
    w->locked = held;
    w->marked = held;
    w->mask = held & ok;
    w->keep_dirty = keep_dirty;
    w->end_req = keep_dirty;
    w->held_since = uv_now(v->loop);
    w->lk.id = vi->id;
    w->lk.owner = w->owner;
    w->lk.type = LK_WR;
    vlist_init(&w->post_link);
    vlist_add_tail(&v->windows, &w->link);
    vi->win = w;
    /* From the loop: the post-op (or the end) as for any idle window. */
    iwin_kick(vi);
}

/* ---- one change inside the window ---- */

static void iop_record_done(struct fan *f)
{
    struct iwin *w = f->owner;
    struct iop *op = w->recording;

    bmask_t took = fan_ok_mask(f) & w->recording_set;

    /* A brick that cannot take the blame has not got the change either,
     * as far as anyone can prove: it leaves the window.  And the change
     * is reported failed: a copy without it must never look as good as
     * one with it, which only every doer's blame ensures (etxn.c
     * invariant 7). */
    w->mask &= took | ~w->recording_set;
    w->recording = NULL;
    op->ops->finish(op, took == w->recording_set ? op->status : -EIO);
    iwin_run(w->vi);
}

static void iop_reply_cb(struct fan *f, unsigned slot, int status,
                         const void *rep)
{
    struct iop *op = f->owner;
    unsigned b = f->slot[slot].brick;

    if (status == 0)
        status = op->ops->reply(op, b, rep);
    op->st[b] = status;
    if (status == 0)
        op->ok |= BMASK(b);
}

static void iop_done(struct fan *f)
{
    struct iop *op = f->owner;
    struct vinode *vi = op->vi;
    struct iwin *w = vi->win;
    struct volume *v = vi->v;
    bmask_t part = w->mask, missed, newly, lost = 0;

    w->running = NULL;
    for (unsigned b = 0; b < v->n; b++)
        if ((part & BMASK(b)) && vol_err_is_link(op->st[b]))
            lost |= BMASK(b);
    if (op->ok == 0) {
        /* Nobody did it: the same refusal everywhere (EFBIG...), or the
         * links were lost.  Nothing diverged. */
        w->mask &= ~lost;
        op->ops->finish(op, pick_error(v, op->st, part));
        iwin_run(vi);
        return;
    }
    if (bmask_count(op->ok) < v->quorum) {
        /* A minority did it: fail it and leave the dirty marks for heal;
         * nobody is blamed on a minority's word. */
        w->keep_dirty = true;
        w->end_req = true;
        w->mask &= op->ok;
        op->ops->finish(op, pick_error(v, op->st, part & ~op->ok));
        iwin_run(vi);
        return;
    }
    missed = all_bricks(v) & ~op->ok;
    w->mask &= op->ok;
    vol_blame(vi, missed);
    newly = missed & ~w->recorded;
    if (!newly) {
        op->ops->finish(op, 0);
        iwin_run(vi);
        return;
    }
    /* The blame goes on disk before the caller hears "done": a client that
     * looks at the markers later must not read the stale brick. */
    log_debug("write: brick(s) %#x missed a change; recording pending",
              (unsigned)newly);
    w->recorded |= newly;
    w->recording = op;
    w->recording_set = op->ok;
    op->status = 0;
    memset(&w->xr, 0, sizeof(w->xr));
    w->xr.id = vi->id;
    w->xr.npending = v->n;
    for (unsigned b = 0; b < v->n; b++)
        if (newly & BMASK(b))
            w->xr.pending[b] = 1;
    fan_begin(&w->fan, v, NULL, iop_record_done, w);
    for (unsigned b = 0; b < v->n; b++)
        if (op->ok & BMASK(b))
            fan_call(&w->fan, b, b, OP_XATTROP, &w->xr);
    fan_end(&w->fan);
}

static void iop_send(struct iwin *w, struct iop *op);

static void iop_start(struct iwin *w, struct iop *op)
{
    post_disarm(w);
    w->running = op;
    if (op->ops->prepare && op->ops->prepare(op))
        return;
    iop_send(w, op);
}

/* A prepare step failed: the change fails, the window goes on. */
static void iop_abort(struct iop *op, int status)
{
    struct vinode *vi = op->vi;

    vi->win->running = NULL;
    op->ops->finish(op, status);
    iwin_run(vi);
}

static void iop_send(struct iwin *w, struct iop *op)
{
    struct volume *v = w->vi->v;
    const void *req = op->ops->req(op);

    op->ok = 0;
    for (unsigned b = 0; b < MAXB; b++)
        op->st[b] = -ENOTCONN;
    fan_begin(&op->fan, v, iop_reply_cb, iop_done, op);
    for (unsigned b = 0; b < v->n; b++)
        if (w->mask & BMASK(b))
            fan_call(&op->fan, b, b, op->ops->opcode, req);
    fan_end(&op->fan);
}

/* The queue's engine: start, continue or end the window (loop only). */
static void iwin_run(struct vinode *vi)
{
    struct volume *v = vi->v;
    struct iwin *w;
    struct iop *op;

    for (;;) {
        w = vi->win;
        op = iop_head(vi);
        if (!w) {
            int rc;

            if (!op)
                return;
            if (!op->ops) { /* nothing to flush */
                vlist_del(&op->link);
                flush_finish(op, 0);
                continue;
            }
            if (v->closing || bmask_count(v->up) < v->quorum) {
                vlist_del(&op->link);
                op->ops->finish(op, -EROFS);
                continue;
            }
            rc = iwin_begin(vi);
            if (rc < 0) {
                vlist_del(&op->link);
                op->ops->finish(op, rc);
                continue;
            }
            return;
        }
        if (w->st != IW_HELD || w->running || w->recording)
            return;
        if (!op) {
            if (vi->writers > 0 && !w->end_req && !v->closing)
                post_arm(w); /* delayed post-op: more writes may come */
            else
                iwin_end(w);
            return;
        }
        if (!op->ops || w->end_req || v->closing ||
            uv_now(v->loop) - w->held_since >= v->opts.max_hold_ms ||
            bmask_count(w->mask & v->up) < v->quorum) {
            iwin_end(w); /* op waits for the next window */
            return;
        }
        vlist_del(&op->link);
        iop_start(w, op);
        return;
    }
}

/* ---- write ---- */

struct iop_write {
    struct iop base;
    struct write_req req;
    vol_write_cb cb;
    void *arg;
    struct proto_attr attr;
    int attr_brick;
    bool append;               /* req.offset: the size, read under the lock */
    struct rcall rc;
    struct getattr_req greq;
};

/* Whose attributes answer a change: a good brick's (a blamed one's size
 * may be another), then the lowest-numbered. */
static bool attr_brick_better(const struct vinode *vi, int cur, unsigned b)
{
    bool good_b = !(vi->blamed & BMASK(b));

    if (cur < 0)
        return true;
    if (good_b != !(vi->blamed & BMASK((unsigned)cur)))
        return good_b;
    return (int)b < cur;
}

static int write_reply(struct iop *op, unsigned b, const void *rep)
{
    struct iop_write *wr = vcontainer_of(op, struct iop_write, base);
    const struct write_rep *r = rep;

    if (r->count != wr->req.data.len)
        return -EIO; /* a short write on one replica diverges */
    if (attr_brick_better(op->vi, wr->attr_brick, b)) {
        wr->attr = r->attr;
        wr->attr_brick = (int)b;
    }
    return 0;
}

static void write_finish(struct iop *op, int status)
{
    struct iop_write *wr = vcontainer_of(op, struct iop_write, base);
    struct vinode *vi = op->vi;

    if (status == 0)
        wr->cb(0, wr->req.data.len, &wr->attr, wr->arg);
    else
        wr->cb(status, 0, NULL, wr->arg);
    free(wr);
    volume_inode_put(vi);
}

static const void *write_req(struct iop *op)
{
    return &vcontainer_of(op, struct iop_write, base)->req;
}

static void append_size_reply(struct rcall *rc, const void *rep)
{
    struct iop_write *wr = vcontainer_of(rc, struct iop_write, rc);

    wr->req.offset = ((const struct attr_rep *)rep)->attr.size;
}

static void append_size_done(struct rcall *rc, int status)
{
    struct iop_write *wr = vcontainer_of(rc, struct iop_write, rc);
    struct iop *op = &wr->base;

    if (status < 0) {
        iop_abort(op, status);
        return;
    }
    if (wr->req.offset > (uint64_t)INT64_MAX - wr->req.data.len) {
        iop_abort(op, -EFBIG);
        return;
    }
    iop_send(op->vi->win, op);
}

/*
 * O_APPEND: the kernel's offset is its cached size, which another node's
 * append may have outdated; only the bricks know the end, and under the
 * window's lock it cannot move.  So the size is read from a good brick
 * (blame as the lock's markers showed it) just before the write.
 */
static bool write_prepare(struct iop *op)
{
    struct iop_write *wr = vcontainer_of(op, struct iop_write, base);

    if (!wr->append)
        return false;
    wr->greq.id = op->vi->id;
    wr->rc.pin = 0;
    wr->rc.on_reply = append_size_reply;
    wr->rc.on_done = append_size_done;
    vol_rcall_start(&wr->rc, op->vi->v, op->vi, OP_GETATTR, &wr->greq, false);
    return true;
}

static const struct iop_ops write_ops = {
    .reply = write_reply,
    .finish = write_finish,
    .opcode = OP_WRITE,
    .req = write_req,
    .prepare = write_prepare,
};

/* ---- setattr ---- */

struct iop_setattr {
    struct iop base;
    struct setattr_req req;
    vol_attr_cb cb;
    void *arg;
    struct proto_attr attr;
    int attr_brick;
};

static int setattr_reply(struct iop *op, unsigned b, const void *rep)
{
    struct iop_setattr *sa = vcontainer_of(op, struct iop_setattr, base);

    if (attr_brick_better(op->vi, sa->attr_brick, b)) {
        sa->attr = ((const struct attr_rep *)rep)->attr;
        sa->attr_brick = (int)b;
    }
    return 0;
}

static void setattr_finish(struct iop *op, int status)
{
    struct iop_setattr *sa = vcontainer_of(op, struct iop_setattr, base);
    struct vinode *vi = op->vi;

    sa->cb(status, status == 0 ? &sa->attr : NULL, sa->arg);
    free(sa);
    volume_inode_put(vi);
}

static const void *setattr_req(struct iop *op)
{
    return &vcontainer_of(op, struct iop_setattr, base)->req;
}

static const struct iop_ops setattr_ops = {
    .reply = setattr_reply,
    .finish = setattr_finish,
    .opcode = OP_SETATTR,
    .req = setattr_req,
};

int vol_change_allowed(const struct volume *v)
{
    if (v->opts.read_only || v->closing)
        return -EROFS;
    if (bmask_count(v->up) < v->quorum)
        return -EROFS;
    return 0;
}

int volume_setattr(struct volume *v, struct vinode *vi,
                   const struct setattr_req *req, vol_attr_cb cb, void *arg)
{
    struct iop_setattr *sa;
    int rc = vol_change_allowed(v);

    if (rc < 0)
        return rc;
    if (req->valid & ~(uint32_t)SETATTR__ALL)
        return -EINVAL;
    sa = calloc(1, sizeof(*sa));
    if (!sa)
        return -ENOMEM;
    sa->base.ops = &setattr_ops;
    sa->base.vi = vi;
    volume_inode_ref(vi);
    sa->req = *req;
    sa->req.id = vi->id;
    sa->cb = cb;
    sa->arg = arg;
    sa->attr_brick = -1;
    iop_enqueue(&sa->base);
    return 0;
}

/* ==================================================================== */
/* open files                                                           */
/* ==================================================================== */

struct vfile {
    struct vlist link;       /* in v->files until volume_release() */
    struct vinode *vi;       /* a reference */
    uint32_t flags;
    bool writer;             /* counted in vi->writers */
    bmask_t opened;          /* bricks that answered OPEN (or were sent
                                one when a lease it was opened from was
                                recalled) */
    struct vlist llink;      /* in vi->leased: opened from the lease */
    /* release, embedded so that volume_release() cannot fail */
    struct volume *v;
    struct iop flush;
    vol_status_cb release_cb;
    void *release_arg;
    struct release_req rel;
    struct fan fan;
};

struct vfile *vfile_new(struct volume *v, struct vinode *vi, uint32_t flags)
{
    struct vfile *f = calloc(1, sizeof(*f));

    if (!f)
        return NULL;
    f->v = v;
    vlist_init(&f->link);
    vlist_init(&f->llink);
    f->vi = vi;
    volume_inode_ref(vi);
    f->flags = flags;
    return f;
}

void vfile_opened(struct vfile *f, bmask_t opened)
{
    f->opened = opened;
    if ((f->flags & O_ACCMODE) != O_RDONLY) {
        f->writer = true;
        f->vi->writers++;
    }
    vlist_add_tail(&f->v->files, &f->link);
}

struct vinode *volume_file_inode(const struct vfile *f)
{
    return f->vi;
}

bool volume_file_writes(const struct vfile *f)
{
    return (f->flags & O_ACCMODE) != O_RDONLY;
}

bool volume_inode_quiet(const struct vinode *vi)
{
    return vi->writers == 0 && !vi->win && vlist_empty(&vi->iops);
}

int volume_write(struct volume *v, struct vfile *f, uint64_t off,
                 const void *data, size_t len, vol_write_cb cb, void *arg)
{
    struct iop_write *wr;
    int rc = vol_change_allowed(v);

    if (rc < 0)
        return rc;
    if (len > PROTO_MAX_IO)
        return -EINVAL;
    if (off != VOLUME_APPEND && (off > INT64_MAX || len > INT64_MAX - off))
        return -EFBIG;
    wr = calloc(1, sizeof(*wr));
    if (!wr)
        return -ENOMEM;
    wr->base.ops = &write_ops;
    wr->base.vi = f->vi;
    volume_inode_ref(f->vi);
    wr->req.id = f->vi->id;
    wr->append = off == VOLUME_APPEND;
    wr->req.offset = wr->append ? 0 : off;
    wr->req.data.data = data;
    wr->req.data.len = (uint32_t)len;
    wr->cb = cb;
    wr->arg = arg;
    wr->attr_brick = -1;
    iop_enqueue(&wr->base);
    return 0;
}

static int flush_enqueue(struct vinode *vi, vol_status_cb cb, void *arg)
{
    struct iop *op = calloc(1, sizeof(*op));

    if (!op)
        return -ENOMEM;
    op->vi = vi;
    volume_inode_ref(vi);
    op->flush_cb = cb;
    op->arg = arg;
    iop_enqueue(op);
    return 0;
}

int volume_flush(struct volume *v, struct vfile *f, vol_status_cb cb,
                 void *arg)
{
    (void)v;
    return flush_enqueue(f->vi, cb, arg);
}

/* ---- open ---- */

struct op_open {
    struct volume *v;
    struct vfile *f;         /* owned until handed to the caller */
    vol_open_cb cb;
    void *arg;
    struct mkwait w;
    struct open_req req;
    unsigned steps;          /* of the two (markers, OPEN) still running */
    int mk_status;           /* the markers' outcome */
    bool lease;              /* OPENX asked for read leases */
    bmask_t asked;           /* bricks sent an OPENX with OPEN_LEASE */
    bmask_t granted;         /* those whose OPENX succeeded */
    uint32_t recalls;        /* vi->recalls when it was sent */
    uint64_t lease_gen;      /* v->lease_gen when it was sent */
    struct vdefer d;         /* an open from the lease answers later */
    struct proto_attr attrs[MAXB]; /* each brick's answer */
    int st[MAXB];
    struct fan fan;
};

void vfile_free(struct vfile *f)
{
    if (!vlist_empty(&f->link))
        vlist_del(&f->link);
    if (!vlist_empty(&f->llink))
        vlist_del(&f->llink);
    if (f->writer)
        f->vi->writers--;
    volume_inode_put(f->vi);
    free(f);
}

static void release_flushed_cb(int status, void *arg);

/* One brick's answer to OPEN or OPENX: attr is its attributes. */
static void open_took(struct op_open *op, unsigned b, int status,
                      const struct proto_attr *attr)
{
    op->st[b] = status;
    if (status < 0)
        return;
    op->f->opened |= BMASK(b);
    op->attrs[b] = *attr;
}

static void open_reply_cb(struct fan *fan, unsigned slot, int status,
                          const void *rep)
{
    open_took(fan->owner, fan->slot[slot].brick, status,
              status < 0 ? NULL : &((const struct attr_rep *)rep)->attr);
}

static void openx_hook(void *arg, unsigned b, int status,
                       const struct openx_rep *rep)
{
    struct op_open *op = arg;

    /* A lease on a file without a name there protects nothing: the
     * brick recalls leases when the last name goes, and that is past.
     * It is only open because some open file pins it, and when that is
     * closed it goes, with no recall (bug 28). */
    if (status == 0 && rep->attr.nlink > 0)
        op->granted |= BMASK(b);
    open_took(op, b, status, status < 0 ? NULL : &rep->attr);
}

static void ignore_reply_cb(int status, const void *rep, void *arg)
{
    (void)status;
    (void)rep;
    (void)arg;
}

/* Give vi's leases on the bricks of mask back (LEASE_ACK), and stop
 * trusting them: a brick forgets a lease it is given back. */
static void lease_give_back(struct vinode *vi, bmask_t mask)
{
    struct volume *v = vi->v;
    struct lease_ack_req ack = {.id = vi->id};

    for (unsigned b = 0; b < v->n; b++)
        if (mask & v->up & BMASK(b))
            (void)brick_call(v->bc[b], OP_LEASE_ACK, &ack, ignore_reply_cb,
                             NULL);
    vi->lease &= ~mask;
}

/*
 * The OPENX asked for leases: keep what the bricks granted (a: the
 * attributes it answers with, NULL when the open failed), unless a recall
 * of this object (or a loss of every lease of a brick) came in while it
 * ran, since the brick may have sent it after granting.  Recalls always
 * come before the reply they concern (leases.c), so one seen later clears
 * its own brick's bit.  What is not kept is given back: a brick would
 * otherwise hold it until the next change of the file.
 */
static void lease_take(struct op_open *op, const struct proto_attr *a)
{
    struct vinode *vi = op->f->vi;
    struct volume *v = op->v;

    /* Another OPENX asking for leases is on its way: a LEASE_ACK now
     * could reach a brick after that one's grant and undo it. */
    bool alone = --vi->lease_asking == 0;

    if (!a || vi->recalls != op->recalls || v->lease_gen != op->lease_gen) {
        if (alone && v->lease_gen == op->lease_gen)
            lease_give_back(vi, op->asked);
        return;
    }
    if (vi->lease_gen != v->lease_gen)
        vi->lease = 0;
    vi->lease |= op->granted;
    vi->lease_gen = v->lease_gen;
    vi->lease_attr = *a;
    if (alone && (op->asked & ~op->granted))
        lease_give_back(vi, op->asked & ~op->granted);
}

/* The lease rule of volume_int.h: may this open be answered from memory? */
static bool lease_usable(struct volume *v, struct vinode *vi)
{
    uint64_t now = uv_hrtime() / 1000;
    unsigned fresh = 0;

    if (v->opts.no_leases || vi->lease_gen != v->lease_gen || !vi->lease ||
        vi->mk_epoch != v->epoch || vi->mk)
        return false;
    for (unsigned b = 0; b < v->n; b++) {
        uint64_t t;

        if (!(vi->lease & v->up & BMASK(b)))
            continue;
        t = brick_conn_fresh_us(v->bc[b]);
        if (t && now - t < VOLUME_LEASE_TRUST_MS * 1000ull)
            fresh++;
    }
    return fresh + v->quorum >= v->n + 1;
}

static void open_leased_cb(struct vdefer *d)
{
    struct op_open *op = vcontainer_of(d, struct op_open, d);
    struct vfile *f = op->f;

    vfile_opened(f, 0);
    op->cb(0, f, &f->vi->lease_attr, op->arg);
    free(op);
}

void txn_lease_recalled(struct volume *v, unsigned b, const struct rfs_id *id)
{
    struct vinode *vi = vol_inode_find(v, id);
    struct lease_ack_req ack = {.id = *id};

    if (vi) {
        struct open_req oreq = {.id = *id, .flags = O_RDONLY};

        /* A change is under way: brick b may already have dropped the
         * object (a rename over it), and reads may go to b, so no open
         * is served from the other bricks' leases either.  They recall
         * theirs when the change reaches them. */
        vi->lease = 0;
        vi->recalls++;
        /* Each file opened from the lease becomes a real open (a pin) on
         * b before the ack, on the same link: if the object lost its last
         * name, the lease's own pin keeps it until then. */
        for (struct vlist *n = vi->leased.next; n != &vi->leased;
             n = n->next) {
            struct vfile *f = vcontainer_of(n, struct vfile, llink);

            if (f->opened & BMASK(b))
                continue;
            if (brick_call(v->bc[b], OP_OPEN, &oreq, ignore_reply_cb,
                           NULL) == 0)
                f->opened |= BMASK(b);
        }
    }
    /* Lost with the link otherwise, and the brick forgets it then too. */
    (void)brick_call(v->bc[b], OP_LEASE_ACK, &ack, ignore_reply_cb, NULL);
}

/* The vinode goes: give its leases back, so bricks need not recall them. */
void txn_lease_drop(struct vinode *vi)
{
    if (vi->lease_gen == vi->v->lease_gen)
        lease_give_back(vi, vi->lease);
}

/*
 * Is the object deleted, though some bricks still have it?  Every
 * acknowledged deletion (unlink, rename over) was done by a quorum, which
 * lack the object for good (ids are never reused), and every acknowledged
 * creation by a quorum, which meets any quorum.  So when a quorum says it
 * has no such object, the bricks that do missed its end, and an open
 * there would read a file that was replaced or removed (bug 26).  It is
 * answered ENOENT, which the mount turns into ESTALE, so the kernel looks
 * the name up again in the parent, whose markers point at a good brick.
 * Only opens: a file already open is pinned where it was opened, and
 * reading it there is what POSIX asks for.
 */
static bool open_gone(const struct op_open *op)
{
    unsigned lack = 0;

    for (unsigned b = 0; b < op->v->n; b++)
        if (op->st[b] == -ENOENT || op->st[b] == -ESTALE)
            lack++;
    return lack >= op->v->quorum;
}

/*
 * Both steps are done: answer with a good brick's attributes.  The
 * attribute brick's first (vinode.attr_brick): times are each brick's own,
 * and the mount compares these with what it told the kernel.
 */
static void open_finish(struct op_open *op)
{
    struct vinode *vi = op->f->vi;
    bmask_t good = op->f->opened & ~vi->blamed;
    int why, rb = vol_pick_attr_brick(vi, 0, &why), pick = -1;
    int status = op->mk_status;

    if (status == 0 && open_gone(op)) {
        log_debug("open: a quorum lacks the object: deleted");
        status = -ENOENT;
    }
    if (status == 0) {
        if (rb >= 0 && (good & BMASK(rb)))
            pick = rb;
        for (unsigned b = 0; pick < 0 && b < op->v->n; b++)
            if (good & BMASK(b))
                pick = (int)b;
    }
    if (status == 0 && pick < 0) {
        status = -EIO;
        for (unsigned b = 0; b < op->v->n; b++)
            if (op->st[b] < 0 && !vol_err_is_link(op->st[b])) {
                status = op->st[b];
                break;
            }
        if (status == -EIO && !(op->v->up & ~vi->blamed))
            status = op->v->up ? -EIO : -ENOTCONN;
    }
    if (status < 0) {
        if (op->lease)
            lease_take(op, NULL);
        op->cb(status, NULL, NULL, op->arg);
        if (op->f->opened) /* the bricks that opened it hold it pinned */
            release_flushed_cb(0, op->f);
        else
            vfile_free(op->f);
    } else {
        if (op->lease)
            lease_take(op, &op->attrs[pick]);
        vfile_opened(op->f, op->f->opened);
        op->cb(0, op->f, &op->attrs[pick], op->arg);
    }
    free(op);
}

static void open_done_cb(struct fan *fan)
{
    struct op_open *op = fan->owner;

    if (--op->steps == 0)
        open_finish(op);
}

static void open_markers_cb(struct mkwait *w, int status)
{
    struct op_open *op = vcontainer_of(w, struct op_open, w);

    op->mk_status = status;
    if (--op->steps == 0)
        open_finish(op);
}

/*
 * Open: OPEN on every up brick and, at the same time, the object's markers
 * afresh (one round trip for both).  Fresh because another client may have
 * blamed a brick a moment ago, and its invalidation may still be on the
 * way: what open() returns, and the reads after it, must come from a good
 * copy (docs/reliability.md, rule 3).  When every up brick speaks protocol
 * 2, one OPENX per brick does both (half the messages); the fetch it
 * carries is the vinode's markers fetch, which others may wait on too.
 */
int volume_open(struct volume *v, struct vinode *vi, uint32_t flags,
                vol_open_cb cb, void *arg)
{
    struct op_open *op;
    uint32_t acc = flags & O_ACCMODE;

    if (acc != O_RDONLY && (v->opts.read_only))
        return -EROFS;
    op = calloc(1, sizeof(*op));
    if (!op)
        return -ENOMEM;
    op->f = vfile_new(v, vi, flags);
    if (!op->f) {
        free(op);
        return -ENOMEM;
    }
    op->v = v;
    op->cb = cb;
    op->arg = arg;
    op->req.id = vi->id;
    op->req.flags = acc;
    for (unsigned b = 0; b < MAXB; b++)
        op->st[b] = -ENOTCONN;
    op->steps = 2;
    op->w.fn = open_markers_cb;
    if (acc == O_RDONLY && lease_usable(v, vi)) {
        /* On the list at once: a recall that comes before the answer
         * must turn it into a real open too. */
        vlist_add_tail(&vi->leased, &op->f->llink);
        vol_defer(v, &op->d, open_leased_cb);
        return 0;
    }
    /* Without a quorum nobody can change the markers, and what was
     * learnt while there was one is worth more than a lone brick's word
     * (volume.c invariant 5). */
    if (bmask_count(v->up) >= v->quorum) {
        vol_markers_forget(vi);
        if (!vi->mk && vol_up_speak(v, 2)) {
            op->steps = 1;
            if (acc == O_RDONLY && !v->opts.no_leases &&
                vol_up_speak(v, 3)) {
                op->lease = true;
                op->req.flags |= OPEN_LEASE;
                op->asked = v->up;
                vi->lease_asking++;
                op->recalls = vi->recalls;
                op->lease_gen = v->lease_gen;
            }
            vol_markers_fetch_openx(vi, &op->w, &op->req, openx_hook, op);
            return 0;
        }
    }
    vol_markers_ensure(vi, &op->w);
    fan_begin(&op->fan, v, open_reply_cb, open_done_cb, op);
    for (unsigned b = 0; b < v->n; b++)
        if (v->up & BMASK(b))
            fan_call(&op->fan, b, b, OP_OPEN, &op->req);
    fan_end(&op->fan);
    return 0;
}

/* ---- fsync ---- */

struct op_fsync {
    struct volume *v;
    struct vinode *vi;       /* a reference */
    vol_status_cb cb;
    void *arg;
    struct fsync_req req;
    int st[MAXB];
    struct fan fan;
};

static void fsync_reply_cb(struct fan *f, unsigned slot, int status,
                           const void *rep)
{
    struct op_fsync *op = f->owner;

    (void)rep;
    op->st[f->slot[slot].brick] = status;
}

static void fsync_done_cb(struct fan *f)
{
    struct op_fsync *op = f->owner;
    bmask_t ok = fan_ok_mask(f);
    int status = 0;

    /* Durable on a quorum of good copies is what a change promises. */
    if (bmask_count(ok & ~op->vi->blamed) < op->v->quorum)
        status = pick_error(op->v, op->st, all_bricks(op->v) & ~ok);
    if (status == -EROFS)
        status = -EIO;
    op->cb(status, op->arg);
    volume_inode_put(op->vi);
    free(op);
}

int volume_fsync(struct volume *v, struct vfile *f, bool datasync,
                 vol_status_cb cb, void *arg)
{
    struct op_fsync *op = calloc(1, sizeof(*op));

    if (!op)
        return -ENOMEM;
    op->v = v;
    op->vi = f->vi;
    volume_inode_ref(f->vi);
    op->cb = cb;
    op->arg = arg;
    op->req.id = f->vi->id;
    op->req.datasync = datasync;
    for (unsigned b = 0; b < MAXB; b++)
        op->st[b] = -ENOTCONN;
    fan_begin(&op->fan, v, fsync_reply_cb, fsync_done_cb, op);
    for (unsigned b = 0; b < v->n; b++)
        if (v->up & BMASK(b))
            fan_call(&op->fan, b, b, OP_FSYNC, &op->req);
    fan_end(&op->fan);
    return 0;
}

/* ---- release ---- */

static void release_done_cb(struct fan *fan)
{
    vfile_free(fan->owner);
}

static void release_flushed_cb(int status, void *arg)
{
    struct vfile *f = arg;
    struct volume *v = f->v;

    if (f->release_cb)
        f->release_cb(status, f->release_arg);
    f->rel.id = f->vi->id;
    fan_begin(&f->fan, v, NULL, release_done_cb, f);
    for (unsigned b = 0; b < v->n; b++)
        if ((f->opened & BMASK(b)) && (v->up & BMASK(b)))
            fan_call(&f->fan, b, b, OP_RELEASE, &f->rel);
    fan_end(&f->fan);
}

/* The embedded flush: like flush_finish without freeing. */
static void release_flush_finish(struct iop *op, int status)
{
    struct vfile *f = vcontainer_of(op, struct vfile, flush);

    release_flushed_cb(status, f);
}

void volume_release(struct volume *v, struct vfile *f, vol_status_cb cb,
                    void *arg)
{
    (void)v;
    if (!vlist_empty(&f->link))
        vlist_del(&f->link); /* released: volume_close leaves it alone */
    if (f->writer) {
        /* No more writes from this file: the window may end at once. */
        f->writer = false;
        f->vi->writers--;
    }
    f->release_cb = cb;
    f->release_arg = arg;
    f->flush.vi = f->vi; /* f holds the reference */
    f->flush.flush_cb = NULL;
    f->flush.embedded = release_flush_finish;
    iop_enqueue(&f->flush);
}

void txn_release_all(struct volume *v)
{
    while (!vlist_empty(&v->files)) {
        struct vfile *f = vcontainer_of(v->files.next, struct vfile, link);

        volume_release(v, f, NULL, NULL); /* takes f off the list */
    }
}
