/*
 * etxn: namespace changes as one-shot write transactions on parent entries
 * (mkdir, mknod, symlink, create, link, unlink, rmdir, rename).
 *
 * Design
 * ======
 *   LOCK_TRY --some entry busy--> LOCK_UNDO --> LOCK_SEQ --+
 *      |                                                   v
 *      +---------------------------------------> [PRE] -> MARK -> OP
 *                                                                  |
 *             freed <-- UNLOCK <-- POST <--------------------------+
 *
 *   et_lock_try()   ENTRYLK (parent, name) non-blocking on every up brick,
 *                   every entry, all at once: one round trip when free.
 *   et_lock_undo()  one was busy: release what was granted, then
 *   et_lock_seq()   take them blocking one at a time, brick 1, 2, 3, and on
 *                   each brick the entries in (parent id, name) order.  A
 *                   single total order over (brick, entry) for every
 *                   client: no deadlock.
 *   ops->precheck   (create without O_EXCL) LOOKUP under the lock: an
 *                   existing file is opened, not made again with a new id.
 *   et_mark()       XATTROP dirty+1 on the parent(s).
 *   et_op()         the change on every locked brick at once.
 *   et_op_done()    judges it (quorum), blames the bricks that missed it
 *                   (vol_blame) and answers at once when none did;
 *   et_post()       dirty-1, and pending[X]+1 for each brick X that missed
 *                   it on the parent(s) and on the object; answers now if
 *                   some brick missed it and every brick that did it has
 *                   the blame on disk (invariant 7), else fails it;
 *   et_unlock()     releases every entry lock taken; then ops->destroy.
 *
 *   create for writing sends CREATE_LOCK: the bricks that make the file
 *   also lock and mark it for its first write window (owner from
 *   txn_born_new, sent as lk_owner).  create_finish hands what the bricks
 *   hold (m->held: every brick that answered the CREATE 0) to that window
 *   (txn_born_start) before the caller can write, also after a failure
 *   (it then only unlocks).  A create whose PRE finds the file sends no
 *   CREATE and holds no birth lock.
 *
 *   One entry under one parent (all but rename across names) takes the
 *   compound path: LOCK_TRY/LOCK_SEQ send XATTROP(dirty+1, XO_LOCK|
 *   XO_ENTRY), which locks and marks in one request (et_cstart, et_cseq_step),
 *   so MARK has nothing left to send (et_mark -> et_mark_eval); POST's
 *   dirty-1 carries XO_UNLOCK, and et_unlock only unlocks the bricks POST
 *   did not reach (t->released).  Two round trips fewer per change.
 *
 * Invariants:
 *  1. ops->finish runs exactly once (et_answer guards it), before the
 *     transaction is freed.
 *  2. Every lock granted (locked[e]) is released in et_unlock, on every
 *     path; bricks that are down dropped theirs with the link.
 *  3. Only bricks in `part` (locked and marked) are sent the change.
 *  4. A change done by fewer than quorum bricks is reported as failed and
 *     left dirty (no POST): heal decides, nobody is blamed.  A refusal is
 *     answered only when a quorum of unblamed bricks gave it (et_refusal),
 *     else -EIO.
 *  5. The transaction holds references on its parents and on its child.
 *  6. A brick that answered a CREATE_LOCK 0 holds the file's lock; the
 *     answer to the caller (create_finish) gives it to a window, whatever
 *     the outcome, so it is released as every window's lock is.
 *  7. A change some brick missed is reported done only once every brick
 *     that did it blames the one that missed it (POST answered 0 by each):
 *     then no copy without the change can pass for a source beside one
 *     with it, and heal may prefer a clean source to a dirty one (heal.c,
 *     sources_agree).  Else it is reported failed (-EIO).
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
#define SLOT(set, b) ((set) * MAXB + (b))

enum et_state {
    ET_LOCK_TRY,
    ET_LOCK_UNDO,
    ET_LOCK_SEQ,
    ET_PRE,
    ET_MARK,
    ET_OP,
    ET_POST,
    ET_UNLOCK,
};

struct etxn;

struct etxn_ops {
    uint16_t opcode;
    const void *(*req)(struct etxn *t);
    /* Check one brick's successful reply: 0, or -EIO when it disagrees. */
    int (*reply)(struct etxn *t, unsigned b, const void *rep);
    /* Optional; ends with et_pre_done(). */
    void (*precheck)(struct etxn *t);
    /* Answer the caller (invariant 1). */
    void (*finish)(struct etxn *t, int status);
    /* Free the operation (after finish and unlock). */
    void (*destroy)(struct etxn *t);
};

struct etxn {
    const struct etxn_ops *ops;
    struct volume *v;           /* borrowed */
    enum et_state state;
    unsigned nent;              /* entries locked: 1 or 2 */
    struct entrylk_req lk[2];   /* in lock order */
    struct entrylk_req unlk[2];
    unsigned npar;              /* distinct parents: 1 or 2 */
    struct vinode *par[2];      /* references (invariant 5) */
    struct vinode *child;       /* a reference, or NULL */
    bmask_t want;               /* up at the start; shrinks on failures */
    bmask_t locked[2];          /* per entry (invariant 2) */
    bmask_t part;               /* locked on all entries, then marked */
    bmask_t marked;
    bmask_t stale;              /* MARK: blamed for a parent by a brick */
    bmask_t mark_enoent;        /* MARK: the parent is not there (yet) */
    unsigned retries;           /* restarts after mark_enoent (ET_RETRIES) */
    bool retry;                 /* unlocking to start over */
    struct vdefer d;            /* the restart */
    bmask_t ok;                 /* did the change */
    bmask_t missed;
    unsigned seq_b, seq_e;      /* LOCK_SEQ cursor */
    int lock_fail;              /* why a brick could not be locked */
    int st[MAXB];               /* each brick's answer to the change */
    bool answered;
    bool answer_after_post;
    bool compound;              /* one entry, one parent: lock+mark in one */
    bool busy;                  /* compound LOCK_TRY: some brick was held */
    bmask_t released;           /* compound POST released these locks */
    int status;
    struct fan fan;
    struct xattrop_req pxr[2];
    struct xattrop_req cxr;
};

#define ET_RETRIES 5 /* restarts when a parent is not everywhere yet */

static void et_lock_seq(struct etxn *t);
static void et_start(struct etxn *t);
static void et_mark(struct etxn *t);
static void et_post(struct etxn *t, bmask_t clear, bmask_t blame_on);
static void et_unlock(struct etxn *t);

static void et_answer(struct etxn *t, int status)
{
    if (t->answered)
        return;
    t->answered = true;
    t->status = status;
    t->ops->finish(t, status);
}

static int entry_cmp(const struct entrylk_req *a, const struct entrylk_req *b)
{
    if (a->parent.hi != b->parent.hi)
        return a->parent.hi < b->parent.hi ? -1 : 1;
    if (a->parent.lo != b->parent.lo)
        return a->parent.lo < b->parent.lo ? -1 : 1;
    return strcmp(a->name, b->name);
}

/*
 * Fill t for entries (p0, n0) and, for rename, (p1, n1).  Takes references
 * on the parents.  Names were checked by the caller.
 */
static void et_init(struct etxn *t, const struct etxn_ops *ops,
                    struct volume *v, struct vinode *p0, const char *n0,
                    struct vinode *p1, const char *n1)
{
    t->ops = ops;
    t->v = v;
    t->nent = 1;
    t->lk[0].parent = p0->id;
    snprintf(t->lk[0].name, sizeof(t->lk[0].name), "%s", n0);
    t->par[0] = p0;
    t->npar = 1;
    volume_inode_ref(p0);
    if (p1) {
        t->lk[1].parent = p1->id;
        snprintf(t->lk[1].name, sizeof(t->lk[1].name), "%s", n1);
        int c = entry_cmp(&t->lk[0], &t->lk[1]);

        if (c > 0) {
            struct entrylk_req tmp = t->lk[0];

            t->lk[0] = t->lk[1];
            t->lk[1] = tmp;
        }
        if (c != 0)
            t->nent = 2;
        if (p1 != p0) {
            t->par[1] = p1;
            t->npar = 2;
            volume_inode_ref(p1);
        }
    }
    for (unsigned e = 0; e < t->nent; e++) {
        t->lk[e].owner = 0; /* set in et_start */
        t->lk[e].type = LK_WR;
    }
}

static void et_free(struct etxn *t)
{
    for (unsigned p = 0; p < t->npar; p++)
        volume_inode_put(t->par[p]);
    volume_inode_put(t->child);
    t->ops->destroy(t);
}

/* ---- locking ---- */

static void et_locked(struct etxn *t)
{
    struct volume *v = t->v;

    t->part = t->want & t->locked[0];
    if (t->nent == 2)
        t->part &= t->locked[1];
    if (t->compound) /* locked and marked, or found no parent (et_creply) */
        t->part = t->want & (t->locked[0] | t->mark_enoent);
    if (bmask_count(t->part) < v->quorum) {
        log_warn("%s: only %u of %u bricks locked, need %u",
                 proto_op_name(t->ops->opcode), bmask_count(t->part), v->n,
                 v->quorum);
        et_answer(t, t->lock_fail == -ENOENT ? -ENOENT : -EROFS);
        if (t->compound)
            et_post(t, t->marked, 0); /* clears, then unlocks */
        else
            et_unlock(t);
        return;
    }
    if (t->ops->precheck) {
        t->state = ET_PRE;
        t->ops->precheck(t);
        return;
    }
    et_mark(t);
}

static void note_lock_failure(struct etxn *t, unsigned b, int status)
{
    log_debug("%s: lock on brick %u: %s", proto_op_name(t->ops->opcode),
              b + 1, strerror(-status));
    /* ENOENT everywhere: the parent directory is gone. */
    if (status == -ENOENT || status == -ESTALE) {
        if (!t->lock_fail)
            t->lock_fail = -ENOENT;
    } else {
        t->lock_fail = -EROFS;
    }
}

static void et_lock_seq_done(struct fan *f)
{
    struct etxn *t = f->owner;
    unsigned b = t->seq_b, e = t->seq_e;
    int status = f->slot[SLOT(e, b)].status;

    if (status == 0) {
        t->locked[e] |= BMASK(b);
        if (++t->seq_e < t->nent) {
            et_lock_seq(t);
            return;
        }
    } else {
        note_lock_failure(t, b, status);
        t->want &= ~BMASK(b);
    }
    t->seq_e = 0;
    t->seq_b = b + 1;
    et_lock_seq(t);
}

static void et_cseq_step(struct etxn *t);

static void et_lock_seq(struct etxn *t)
{
    struct volume *v = t->v;

    while (t->seq_b < v->n && !(t->want & BMASK(t->seq_b)))
        t->seq_b++;
    if (t->seq_b >= v->n) {
        et_locked(t);
        return;
    }
    if (t->compound) {
        et_cseq_step(t);
        return;
    }
    t->lk[t->seq_e].flags = 0; /* blocking: our turn in the order */
    fan_begin(&t->fan, v, NULL, et_lock_seq_done, t);
    fan_call(&t->fan, SLOT(t->seq_e, t->seq_b), t->seq_b, OP_ENTRYLK,
             &t->lk[t->seq_e]);
    fan_end(&t->fan);
}

static void et_lock_undo_done(struct fan *f)
{
    struct etxn *t = f->owner;

    t->locked[0] = t->locked[1] = 0;
    t->lock_fail = 0;
    t->state = ET_LOCK_SEQ;
    t->seq_b = t->seq_e = 0;
    et_lock_seq(t);
}

static void et_lock_try_done(struct fan *f)
{
    struct etxn *t = f->owner;
    struct volume *v = t->v;
    bool busy = false;

    for (unsigned e = 0; e < t->nent; e++) {
        for (unsigned b = 0; b < v->n; b++) {
            const struct fan_slot *s = &f->slot[SLOT(e, b)];

            if (!s->used)
                continue;
            if (s->status == 0)
                t->locked[e] |= BMASK(b);
            else if (s->status == -EAGAIN)
                busy = true;
            else {
                note_lock_failure(t, b, s->status);
                t->want &= ~BMASK(b);
            }
        }
    }
    if (!busy) {
        et_locked(t);
        return;
    }
    /* Holding some while waiting for others could deadlock against a
     * client that goes in the order: give them back, go in the order. */
    t->state = ET_LOCK_UNDO;
    fan_begin(&t->fan, v, NULL, et_lock_undo_done, t);
    for (unsigned e = 0; e < t->nent; e++) {
        t->unlk[e] = t->lk[e];
        t->unlk[e].type = LK_UN;
        t->unlk[e].flags = 0;
        for (unsigned b = 0; b < v->n; b++)
            if (t->locked[e] & BMASK(b))
                fan_call(&t->fan, SLOT(e, b), b, OP_ENTRYLK, &t->unlk[e]);
    }
    fan_end(&t->fan);
}

/* ---- compound locking: one entry, one parent ----
 *
 * The entry lock (parent, name) and the parent's dirty+1 go in one XATTROP
 * per brick (XO_LOCK|XO_ENTRY, proto.h: both or neither), and POST's
 * dirty-1 releases the lock with it (XO_UNLOCK).  Same order, same
 * fallbacks as the plain path: all at once non-blocking; if some brick is
 * held, give back (dirty-1 + unlock) and go brick by brick, blocking.  A
 * brick without the parent answers ENOENT and holds nothing: it counts in
 * `part` as the plain path's "locked, but the mark found no parent", so
 * the retry rule of et_mark_eval is the same. */

static void et_mark_reply(struct fan *f, unsigned slot, int status,
                          const void *rep);

static void et_creply(struct fan *f, unsigned slot, int status,
                      const void *rep)
{
    struct etxn *t = f->owner;
    unsigned b = f->slot[slot].brick;

    et_mark_reply(f, slot, status, rep); /* stale, mark_enoent */
    if (status == 0) {
        t->locked[0] |= BMASK(b);
        t->marked |= BMASK(b);
    } else if (status == -EAGAIN) {
        t->busy = true;
    } else if (status != -ENOENT && status != -ESTALE) {
        note_lock_failure(t, b, status);
        t->want &= ~BMASK(b);
    }
}

static void et_cseq_done(struct fan *f)
{
    struct etxn *t = f->owner;

    t->seq_b++;
    et_lock_seq(t);
}

/* The entry lock of a compound transaction on xr, with step lk. */
static void et_xr_lock(const struct etxn *t, struct xattrop_req *xr,
                       uint32_t lk)
{
    xr->lk = lk | XO_ENTRY;
    xr->lk_owner = t->lk[0].owner;
    memcpy(xr->lk_name, t->lk[0].name, sizeof(t->lk[0].name));
}

static void et_cxr(struct etxn *t, int64_t dirty, uint32_t lk)
{
    memset(&t->pxr[0], 0, sizeof(t->pxr[0]));
    t->pxr[0].id = t->par[0]->id;
    t->pxr[0].dirty = dirty;
    t->pxr[0].npending = t->v->n;
    et_xr_lock(t, &t->pxr[0], lk);
}

/* et_lock_seq's step on the compound path: brick seq_b, blocking. */
static void et_cseq_step(struct etxn *t)
{
    struct volume *v = t->v;

    et_cxr(t, 1, XO_LOCK); /* blocking: our turn in the order */
    fan_begin(&t->fan, v, et_creply, et_cseq_done, t);
    fan_call(&t->fan, SLOT(0, t->seq_b), t->seq_b, OP_XATTROP, &t->pxr[0]);
    fan_end(&t->fan);
}

static void et_cundo_done(struct fan *f)
{
    struct etxn *t = f->owner;

    t->locked[0] = t->marked = t->stale = t->mark_enoent = 0;
    t->lock_fail = 0;
    t->state = ET_LOCK_SEQ;
    t->seq_b = 0;
    et_lock_seq(t);
}

static void et_ctry_done(struct fan *f)
{
    struct etxn *t = f->owner;
    struct volume *v = t->v;

    if (!t->busy) {
        et_locked(t);
        return;
    }
    t->state = ET_LOCK_UNDO;
    et_cxr(t, -1, XO_UNLOCK);
    fan_begin(&t->fan, v, NULL, et_cundo_done, t);
    for (unsigned b = 0; b < v->n; b++)
        if (t->locked[0] & BMASK(b))
            fan_call(&t->fan, SLOT(0, b), b, OP_XATTROP, &t->pxr[0]);
    fan_end(&t->fan);
}

static void et_cstart(struct etxn *t)
{
    struct volume *v = t->v;

    t->busy = false;
    t->stale = t->mark_enoent = t->marked = t->released = 0;
    et_cxr(t, 1, XO_LOCK | XO_NONBLOCK);
    fan_begin(&t->fan, v, et_creply, et_ctry_done, t);
    for (unsigned b = 0; b < v->n; b++)
        if (t->want & BMASK(b))
            fan_call(&t->fan, SLOT(0, b), b, OP_XATTROP, &t->pxr[0]);
    fan_end(&t->fan);
}

static void et_start(struct etxn *t)
{
    struct volume *v = t->v;
    uint64_t owner = vol_new_owner(v);

    t->state = ET_LOCK_TRY;
    t->want = v->up;
    t->compound = t->nent == 1 && t->npar == 1;
    if (t->compound) {
        t->lk[0].owner = owner;
        et_cstart(t);
        return;
    }
    fan_begin(&t->fan, v, NULL, et_lock_try_done, t);
    for (unsigned e = 0; e < t->nent; e++) {
        t->lk[e].owner = owner;
        t->lk[e].flags = LK_NONBLOCK;
        for (unsigned b = 0; b < v->n; b++)
            if (t->want & BMASK(b))
                fan_call(&t->fan, SLOT(e, b), b, OP_ENTRYLK, &t->lk[e]);
    }
    fan_end(&t->fan);
}

static void et_restart_cb(struct vdefer *d)
{
    struct etxn *t = vcontainer_of(d, struct etxn, d);

    t->retry = false;
    t->locked[0] = t->locked[1] = 0;
    t->lock_fail = 0;
    t->part = t->marked = t->stale = t->mark_enoent = t->released = 0;
    if (vol_change_allowed(t->v) < 0) {
        et_answer(t, -EROFS);
        et_free(t);
        return;
    }
    et_start(t);
}

static void et_unlock_done(struct fan *f)
{
    struct etxn *t = f->owner;

    if (t->retry) {
        vol_defer(t->v, &t->d, et_restart_cb);
        return;
    }
    et_free(t);
}

static void et_unlock(struct etxn *t)
{
    struct volume *v = t->v;

    assert(t->answered || t->retry);
    t->state = ET_UNLOCK;
    fan_begin(&t->fan, v, NULL, et_unlock_done, t);
    for (unsigned e = 0; e < t->nent; e++) {
        t->unlk[e] = t->lk[e];
        t->unlk[e].type = LK_UN;
        t->unlk[e].flags = 0;
        for (unsigned b = 0; b < v->n; b++)
            if ((t->locked[e] & ~t->released & BMASK(b)) &&
                (v->up & BMASK(b)))
                fan_call(&t->fan, SLOT(e, b), b, OP_ENTRYLK, &t->unlk[e]);
    }
    fan_end(&t->fan);
}

/* ---- mark, change, post-op ---- */

/* Precheck result: proceed, or answer status and unlock. */
static void et_pre_done(struct etxn *t, bool proceed, int status)
{
    if (!proceed) {
        et_answer(t, status);
        if (t->compound)
            et_post(t, t->marked, 0); /* marked with the lock: clear */
        else
            et_unlock(t);
        return;
    }
    et_mark(t);
}

static void et_op(struct etxn *t);

/* The parents are marked on t->marked (of t->part): go on, retry or fail. */
static void et_mark_eval(struct etxn *t)
{
    bmask_t unmarked = t->part & ~t->marked;

    if (bmask_count(t->marked) < t->v->quorum && unmarked &&
        (unmarked & ~t->mark_enoent) == 0 && t->retries < ET_RETRIES) {
        /* The parent is missing on some bricks: most likely another
         * client's mkdir of it is still under way there (this one found
         * it on a brick that was done).  Give everything back and start
         * over, rather than fail a change a moment too early. */
        t->retries++;
        log_debug("%s: parent not on brick(s) %#x yet; retry %u",
                  proto_op_name(t->ops->opcode), (unsigned)unmarked,
                  t->retries);
        t->retry = true;
        et_post(t, t->marked, 0); /* clear, then unlock, then restart */
        return;
    }
    t->part = t->marked;
    if (bmask_count(t->part) < t->v->quorum) {
        log_warn("%s: only %u bricks marked, need %u",
                 proto_op_name(t->ops->opcode), bmask_count(t->part),
                 t->v->quorum);
        et_answer(t, -EROFS);
        et_post(t, t->marked, 0); /* nothing was changed: just clear */
        return;
    }
    et_op(t);
}

static void et_mark_done(struct fan *f)
{
    struct etxn *t = f->owner;

    t->marked = fan_ok_mask(f) & t->part;
    et_mark_eval(t);
}

/* The parents' markers, read under the entry locks: which bricks are
 * stale for them (their refusals say nothing about the name). */
static void et_mark_reply(struct fan *f, unsigned slot, int status,
                          const void *rep)
{
    struct etxn *t = f->owner;
    unsigned b = f->slot[slot].brick;
    const struct xattrop_rep *xr = rep;

    if (status == -ENOENT || status == -ESTALE)
        t->mark_enoent |= BMASK(b);
    if (status < 0)
        return;
    for (unsigned i = 0; i < xr->npending && i < t->v->n; i++)
        if (i != b && xr->pending[i] != 0)
            t->stale |= BMASK(i);
}

static void et_mark(struct etxn *t)
{
    struct volume *v = t->v;

    if (t->compound) { /* marked with the locks already */
        t->state = ET_MARK;
        et_mark_eval(t);
        return;
    }
    t->state = ET_MARK;
    t->stale = 0;
    fan_begin(&t->fan, v, et_mark_reply, et_mark_done, t);
    for (unsigned p = 0; p < t->npar; p++) {
        memset(&t->pxr[p], 0, sizeof(t->pxr[p]));
        t->pxr[p].id = t->par[p]->id;
        t->pxr[p].dirty = 1;
        t->pxr[p].npending = v->n;
        for (unsigned b = 0; b < v->n; b++)
            if (t->part & BMASK(b))
                fan_call(&t->fan, SLOT(p, b), b, OP_XATTROP, &t->pxr[p]);
    }
    fan_end(&t->fan);
}

static void et_op_reply(struct fan *f, unsigned slot, int status,
                        const void *rep)
{
    struct etxn *t = f->owner;
    unsigned b = f->slot[slot].brick;

    if (status == 0)
        status = t->ops->reply(t, b, rep);
    t->st[b] = status;
    if (status == 0)
        t->ok |= BMASK(b);
}

/*
 * The refusal bricks `from` stand behind: an errno (ENOENT, EEXIST,
 * ENOTEMPTY...) given by a quorum of bricks no brick blames for a parent.
 * A refusal is a read of the folder: a stale brick's (ENOENT for a name it
 * never got) or a minority's says nothing, and answering it would tell the
 * application something heal undoes (an unlink "done" that heal brings
 * back: bug 20).  -EIO when good bricks refused but too few agree,
 * -EROFS when none did (they were lost, or only stale ones refused: the
 * change just cannot be made durable now).
 */
static int et_refusal(const struct etxn *t, bmask_t from)
{
    const struct volume *v = t->v;
    bmask_t bad = t->stale;
    bool refused = false;

    for (unsigned p = 0; p < t->npar; p++)
        bad |= t->par[p]->blamed;
    for (unsigned b = 0; b < v->n; b++) {
        unsigned n = 0;

        if (!(from & BMASK(b)) || (bad & BMASK(b)) || t->st[b] >= 0 ||
            vol_err_is_link(t->st[b]))
            continue;
        refused = true;
        for (unsigned k = 0; k < v->n; k++)
            n += (from & ~bad & BMASK(k)) && t->st[k] == t->st[b];
        if (n >= v->quorum)
            return t->st[b];
    }
    return refused ? -EIO : -EROFS;
}

static void et_op_done(struct fan *f)
{
    struct etxn *t = f->owner;
    struct volume *v = t->v;

    if (t->ok == 0) {
        /* Refused everywhere (EEXIST, ENOTEMPTY...): nothing diverged. */
        et_answer(t, et_refusal(t, t->part));
        et_post(t, t->marked, 0);
        return;
    }
    if (bmask_count(t->ok) < v->quorum) {
        /* Invariant 4: the change cannot be made durable now. */
        log_warn("%s: done by only %u bricks; left for heal",
                 proto_op_name(t->ops->opcode), bmask_count(t->ok));
        et_answer(t, et_refusal(t, t->part & ~t->ok));
        et_unlock(t);
        return;
    }
    t->missed = vol_all_bricks(v) & ~t->ok;
    for (unsigned p = 0; p < t->npar; p++)
        vol_blame(t->par[p], t->missed);
    if (t->child)
        vol_blame(t->child, t->missed);
    if (!t->missed)
        et_answer(t, 0);
    else
        t->answer_after_post = true;
    et_post(t, t->marked & t->ok, t->missed ? t->ok : 0);
}

static void et_op(struct etxn *t)
{
    struct volume *v = t->v;
    const void *req = t->ops->req(t);

    t->state = ET_OP;
    t->ok = 0;
    for (unsigned b = 0; b < MAXB; b++)
        t->st[b] = -ENOTCONN;
    fan_begin(&t->fan, v, et_op_reply, et_op_done, t);
    for (unsigned b = 0; b < v->n; b++)
        if (t->part & BMASK(b))
            fan_call(&t->fan, SLOT(0, b), b, t->ops->opcode, req);
    fan_end(&t->fan);
}

static void et_post_done(struct fan *f)
{
    struct etxn *t = f->owner;

    if (t->answer_after_post) {
        /* Invariant 7: the blame, on each parent, on every doer. */
        bmask_t blamed = t->ok;

        for (unsigned p = 0; p < t->npar; p++)
            for (unsigned b = 0; b < t->v->n; b++)
                if (!f->slot[SLOT(p, b)].used ||
                    f->slot[SLOT(p, b)].status != 0)
                    blamed &= ~BMASK(b);
        if (blamed != t->ok)
            log_warn("%s: done, but brick(s) %#x did not record who missed "
                     "it: reported failed",
                     proto_op_name(t->ops->opcode),
                     (unsigned)(t->ok & ~blamed));
        et_answer(t, blamed == t->ok ? 0 : -EIO);
    }
    et_unlock(t);
}

/*
 * POST: dirty-1 on `clear`; on `blame_on` also pending[X]+1 for each X in
 * t->missed, on the parents and on the child.
 */
static void et_post(struct etxn *t, bmask_t clear, bmask_t blame_on)
{
    struct volume *v = t->v;

    t->state = ET_POST;
    fan_begin(&t->fan, v, NULL, et_post_done, t);
    for (unsigned p = 0; p < t->npar; p++) {
        memset(&t->pxr[p], 0, sizeof(t->pxr[p]));
        t->pxr[p].id = t->par[p]->id;
        t->pxr[p].dirty = -1;
        t->pxr[p].npending = v->n;
        for (unsigned b = 0; b < v->n; b++)
            if (t->missed & BMASK(b))
                t->pxr[p].pending[b] = 1;
        if (t->compound) {
            /* The entry lock goes with the clear (XO_UNLOCK), on the
             * bricks that get it; et_unlock does the others. */
            et_xr_lock(t, &t->pxr[p], XO_UNLOCK);
            t->released |= clear & t->locked[0];
        }
        for (unsigned b = 0; b < v->n; b++)
            if (clear & BMASK(b))
                fan_call(&t->fan, SLOT(p, b), b, OP_XATTROP, &t->pxr[p]);
    }
    if (t->child && blame_on) {
        memset(&t->cxr, 0, sizeof(t->cxr));
        t->cxr.id = t->child->id;
        t->cxr.npending = v->n;
        for (unsigned b = 0; b < v->n; b++)
            if (t->missed & BMASK(b))
                t->cxr.pending[b] = 1;
        for (unsigned b = 0; b < v->n; b++)
            if (blame_on & BMASK(b))
                fan_call(&t->fan, SLOT(2, b), b, OP_XATTROP, &t->cxr);
    }
    fan_end(&t->fan);
}

/* ==================================================================== */
/* the operations                                                       */
/* ==================================================================== */

static int check_name(const char *name)
{
    size_t len = strlen(name);

    if (len > PROTO_NAME_MAX)
        return -ENAMETOOLONG;
    return proto_name_check(name, len) < 0 ? -EINVAL : 0;
}

/* ---- make: mkdir, mknod, symlink, create ---- */

struct et_make {
    struct etxn t;
    uint16_t op;
    /* One request of this family; op says which member is used. */
    union {
        struct mkdir_req mkdir;
        struct mknod_req mknod;
        struct symlink_req symlink;
        struct create_req create;
    } req;
    bool excl;
    struct rfs_id id;        /* chosen for the new object */
    vol_entry_cb cb;
    void *arg;
    struct proto_attr attr;
    int attr_brick;
    bool existed;            /* PRE found the name (create) */
    struct vfile *f;         /* create: opened with it (CREATE_OPEN) */
    struct iwin *born;       /* create with CREATE_LOCK: its first window */
    bmask_t held;            /* CREATE answered 0: lock + mark + pin held */
    vol_create_cb ccb;       /* create's callback (cb is NULL) */
    struct mkwait w;
    struct lkq q;            /* create's PRE */
};

static const void *make_req(struct etxn *t)
{
    return &vcontainer_of(t, struct et_make, t)->req;
}

static int make_reply(struct etxn *t, unsigned b, const void *rep)
{
    struct et_make *m = vcontainer_of(t, struct et_make, t);
    const struct proto_attr *a;

    if (m->op == OP_CREATE) {
        /* Whatever make_reply thinks of the answer, this brick holds what
         * CREATE took for us (pin, birth lock): create_finish gives it
         * back. */
        m->held |= BMASK(b);
        a = &((const struct create_rep *)rep)->attr;
    } else {
        a = &((const struct attr_rep *)rep)->attr;
    }
    if (!rfs_id_eq(&a->id, &m->id)) {
        /* CREATE without EXCL found another file there: this brick holds
         * a different object under the name. */
        log_warn("%s: brick %u answered another id", proto_op_name(m->op),
                 b + 1);
        return -EIO;
    }
    /* The parent's read brick's, which a LOOKUP of the name asks too
     * (bricks' times differ: volume_int.h, attr_brick); else the lowest. */
    int why, pref = vol_pick_read_brick(t->par[0], 0, &why);

    if (m->attr_brick < 0 || (int)b == pref ||
        (m->attr_brick != pref && (int)b < m->attr_brick)) {
        m->attr = *a;
        m->attr_brick = (int)b;
    }
    return 0;
}

/*
 * With CREATE_LOCK the bricks that answered the CREATE (m->held) hold the
 * file's write lock and dirty mark: hand them to the file's first window
 * (txn_born_start), HELD from the start, which ends like any window (post-op
 * delay, flush, release) and so unlocks on every path.  After a failure
 * it only unlocks, leaving the marks of a minority's file for heal.
 */
static void create_born(struct et_make *m, int status)
{
    struct iwin *w = m->born;

    m->born = NULL;
    if (!w)
        return;
    if (!m->held || m->existed) { /* no brick holds anything */
        txn_born_free(w);
        return;
    }
    txn_born_start(w, m->t.child, m->held, m->t.ok, status < 0);
}

/* create: the file is open on the bricks that made it (CREATE_OPEN). */
static void create_finish(struct et_make *m, int status)
{
    struct etxn *t = &m->t;
    struct vfile *f = m->f;

    m->f = NULL;
    if (status < 0 || m->existed) {
        if (t->ok && !m->existed) {
            /* A minority made it, and holds it open: give that back,
             * behind the window's unlock (the release waits for it). */
            vfile_opened(f, t->ok);
            create_born(m, status);
            volume_release(t->v, f, NULL, NULL);
        } else {
            create_born(m, status);
            vfile_free(f);
        }
        m->ccb(status, status < 0 ? NULL : t->child,
               status < 0 ? NULL : &m->attr, false, NULL, m->arg);
        return;
    }
    /* No fresh markers as volume_open fetches: this transaction just wrote
     * them (make_finish), and nobody could know the id before.  The window
     * is there before the caller can write (f counts as a writer first, so
     * that the idle window waits for the post-op delay). */
    vfile_opened(f, t->ok);
    create_born(m, 0);
    m->ccb(0, t->child, &m->attr, true, f, m->arg);
}

static void make_finish(struct etxn *t, int status)
{
    struct et_make *m = vcontainer_of(t, struct et_make, t);
    struct vinode *vi = t->child;

    if (status == 0 && !m->existed && vi->mk_epoch == 0 && !vi->mk) {
        /* A new object: its markers are what this transaction wrote. */
        vi->mk_epoch = t->v->epoch;
    }
    if (status == 0 && m->attr_brick >= 0)
        vi->attr_brick = m->attr_brick; /* the times the caller is given */
    if (m->ccb) {
        create_finish(m, status);
        return;
    }
    if (status < 0) {
        m->cb(status, NULL, NULL, false, m->arg);
        return;
    }
    m->cb(0, vi, &m->attr, !m->existed, m->arg);
}

static void make_destroy(struct etxn *t)
{
    struct et_make *m = vcontainer_of(t, struct et_make, t);

    txn_born_free(m->born); /* never started: nothing was sent */
    free(m);
}

static void create_pre_done(struct lkq *q, int status)
{
    struct et_make *m = vcontainer_of(q, struct et_make, q);
    struct vinode *vi;
    int r;

    if (status == -ENOENT) {
        et_pre_done(&m->t, true, 0); /* free: make it */
        return;
    }
    if (status < 0) {
        et_pre_done(&m->t, false, status);
        return;
    }
    m->attr = q->attr;
    m->attr_brick = q->brick;
    if (S_ISDIR(m->attr.mode)) {
        et_pre_done(&m->t, false, -EISDIR);
        return;
    }
    r = volume_inode_get(m->t.v, &m->attr.id, &vi);
    if (r < 0) {
        et_pre_done(&m->t, false, r);
        return;
    }
    volume_inode_put(m->t.child);
    m->t.child = vi;
    m->existed = true;
    et_pre_done(&m->t, false, 0);
}

static void create_pre_markers_cb(struct mkwait *w, int status)
{
    struct et_make *m = vcontainer_of(w, struct et_make, w);

    if (status < 0) {
        et_pre_done(&m->t, false, status == -ENOENT ? -ENOENT : status);
        return;
    }
    /* Under our entry lock, and marked (compound), on t->part: a second
     * mark on a brick's folder is a change left there undecided. */
    vol_lookup_quorum(&m->q, m->t.v, m->t.par[0], m->req.create.name,
                      m->t.part, m->t.compound, create_pre_done);
}

static void create_precheck(struct etxn *t)
{
    struct et_make *m = vcontainer_of(t, struct et_make, t);

    m->w.fn = create_pre_markers_cb;
    vol_markers_ensure(t->par[0], &m->w);
}

static const struct etxn_ops mkdir_ops = {
    .opcode = OP_MKDIR, .req = make_req, .reply = make_reply,
    .finish = make_finish, .destroy = make_destroy,
};
static const struct etxn_ops mknod_ops = {
    .opcode = OP_MKNOD, .req = make_req, .reply = make_reply,
    .finish = make_finish, .destroy = make_destroy,
};
static const struct etxn_ops symlink_ops = {
    .opcode = OP_SYMLINK, .req = make_req, .reply = make_reply,
    .finish = make_finish, .destroy = make_destroy,
};
static const struct etxn_ops create_ops = {
    .opcode = OP_CREATE, .req = make_req, .reply = make_reply,
    .finish = make_finish, .destroy = make_destroy,
};
static const struct etxn_ops create_pre_ops = {
    .opcode = OP_CREATE, .req = make_req, .reply = make_reply,
    .precheck = create_precheck,
    .finish = make_finish, .destroy = make_destroy,
};

/* Common start of the make family: checks, id, child vinode, locks. */
static int make_new(struct volume *v, struct vinode *parent, const char *name,
                    const struct etxn_ops *ops, vol_entry_cb cb, void *arg,
                    struct et_make **out)
{
    struct et_make *m;
    int rc = vol_change_allowed(v);

    if (rc < 0)
        return rc;
    rc = check_name(name);
    if (rc < 0)
        return rc;
    if (rfs_id_is_root(&parent->id) && strcmp(name, ".replicafs") == 0)
        return -EPERM;
    m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    rfs_id_random(&m->id);
    rc = volume_inode_get(v, &m->id, &m->t.child);
    if (rc < 0) {
        free(m);
        return rc;
    }
    et_init(&m->t, ops, v, parent, name, NULL, NULL);
    m->op = ops->opcode;
    m->cb = cb;
    m->arg = arg;
    m->attr_brick = -1;
    *out = m;
    return 0;
}

int volume_mkdir(struct volume *v, struct vinode *parent, const char *name,
                 uint32_t mode, uint32_t uid, uint32_t gid, vol_entry_cb cb,
                 void *arg)
{
    struct et_make *m;
    int rc = make_new(v, parent, name, &mkdir_ops, cb, arg, &m);

    if (rc < 0)
        return rc;
    m->req.mkdir.parent = parent->id;
    snprintf(m->req.mkdir.name, sizeof(m->req.mkdir.name), "%s", name);
    m->req.mkdir.id = m->id;
    m->req.mkdir.mode = mode;
    m->req.mkdir.uid = uid;
    m->req.mkdir.gid = gid;
    et_start(&m->t);
    return 0;
}

int volume_mknod(struct volume *v, struct vinode *parent, const char *name,
                 uint32_t mode, uint32_t rdev, uint32_t uid, uint32_t gid,
                 vol_entry_cb cb, void *arg)
{
    struct et_make *m;
    int rc;

    if (!S_ISREG(mode) && !S_ISFIFO(mode))
        return -EPERM;
    rc = make_new(v, parent, name, &mknod_ops, cb, arg, &m);
    if (rc < 0)
        return rc;
    m->req.mknod.parent = parent->id;
    snprintf(m->req.mknod.name, sizeof(m->req.mknod.name), "%s", name);
    m->req.mknod.id = m->id;
    m->req.mknod.mode = mode;
    m->req.mknod.rdev = rdev;
    m->req.mknod.uid = uid;
    m->req.mknod.gid = gid;
    et_start(&m->t);
    return 0;
}

int volume_symlink(struct volume *v, struct vinode *parent, const char *name,
                   const char *target, uint32_t uid, uint32_t gid,
                   vol_entry_cb cb, void *arg)
{
    struct et_make *m;
    size_t tlen = strlen(target);
    int rc;

    if (tlen == 0)
        return -ENOENT;
    if (tlen >= PROTO_PATH_MAX)
        return -ENAMETOOLONG;
    rc = make_new(v, parent, name, &symlink_ops, cb, arg, &m);
    if (rc < 0)
        return rc;
    m->req.symlink.parent = parent->id;
    snprintf(m->req.symlink.name, sizeof(m->req.symlink.name), "%s", name);
    m->req.symlink.id = m->id;
    memcpy(m->req.symlink.target, target, tlen + 1);
    m->req.symlink.uid = uid;
    m->req.symlink.gid = gid;
    et_start(&m->t);
    return 0;
}

int volume_create(struct volume *v, struct vinode *parent, const char *name,
                  uint32_t mode, uint32_t uid, uint32_t gid, bool excl,
                  uint32_t oflags, vol_create_cb cb, void *arg)
{
    struct et_make *m;
    int rc = make_new(v, parent, name, excl ? &create_ops : &create_pre_ops,
                      NULL, arg, &m);

    if (rc < 0)
        return rc;
    /* Made now, so that nothing can fail once the bricks hold it open. */
    m->f = vfile_new(v, m->t.child, oflags);
    if (!m->f) {
        et_free(&m->t);
        return -ENOMEM;
    }
    m->ccb = cb;
    m->excl = excl;
    m->req.create.parent = parent->id;
    snprintf(m->req.create.name, sizeof(m->req.create.name), "%s", name);
    m->req.create.id = m->id;
    m->req.create.mode = mode;
    m->req.create.uid = uid;
    m->req.create.gid = gid;
    /* Always EXCL on the wire: after PRE found nothing under the lock, a
     * brick that has the name is a stale one, and must not hand back an
     * object with another id. */
    m->req.create.flags = CREATE_EXCL | CREATE_OPEN;
    if ((oflags & O_ACCMODE) != O_RDONLY) {
        /* Writes will follow: the file is born locked and marked, and
         * its first window needs no lock request (CREATE_LOCK). */
        m->born = txn_born_new(v, &m->req.create.lk_owner);
        if (!m->born) {
            vfile_free(m->f);
            et_free(&m->t);
            return -ENOMEM;
        }
        m->req.create.flags |= CREATE_LOCK;
    }
    et_start(&m->t);
    return 0;
}

/* ---- link ---- */

struct et_link {
    struct etxn t;
    struct link_req req;
    vol_entry_cb cb;
    void *arg;
    struct proto_attr attr;
    int attr_brick;
};

static const void *link_req(struct etxn *t)
{
    return &vcontainer_of(t, struct et_link, t)->req;
}

static int link_reply(struct etxn *t, unsigned b, const void *rep)
{
    struct et_link *l = vcontainer_of(t, struct et_link, t);
    const struct proto_attr *a = &((const struct attr_rep *)rep)->attr;

    if (!rfs_id_eq(&a->id, &l->req.id))
        return -EIO;
    if (l->attr_brick < 0 || (int)b < l->attr_brick) {
        l->attr = *a;
        l->attr_brick = (int)b;
    }
    return 0;
}

static void link_finish(struct etxn *t, int status)
{
    struct et_link *l = vcontainer_of(t, struct et_link, t);

    if (status < 0)
        l->cb(status, NULL, NULL, false, l->arg);
    else
        l->cb(0, t->child, &l->attr, false, l->arg);
}

static void link_destroy(struct etxn *t)
{
    free(vcontainer_of(t, struct et_link, t));
}

static const struct etxn_ops link_ops = {
    .opcode = OP_LINK, .req = link_req, .reply = link_reply,
    .finish = link_finish, .destroy = link_destroy,
};

int volume_link(struct volume *v, struct vinode *vi, struct vinode *newparent,
                const char *newname, vol_entry_cb cb, void *arg)
{
    struct et_link *l;
    int rc = vol_change_allowed(v);

    if (rc < 0)
        return rc;
    rc = check_name(newname);
    if (rc < 0)
        return rc;
    if (rfs_id_is_root(&newparent->id) && strcmp(newname, ".replicafs") == 0)
        return -EPERM;
    l = calloc(1, sizeof(*l));
    if (!l)
        return -ENOMEM;
    et_init(&l->t, &link_ops, v, newparent, newname, NULL, NULL);
    l->t.child = vi;
    volume_inode_ref(vi);
    l->req.id = vi->id;
    l->req.newparent = newparent->id;
    snprintf(l->req.newname, sizeof(l->req.newname), "%s", newname);
    l->cb = cb;
    l->arg = arg;
    l->attr_brick = -1;
    et_start(&l->t);
    return 0;
}

/* ---- unlink, rmdir, rename: answers without a body ---- */

struct et_plain {
    struct etxn t;
    union {
        struct unlink_req unlink; /* also RMDIR */
        struct rename_req rename;
    } req;
    vol_status_cb cb;
    void *arg;
};

static const void *plain_req(struct etxn *t)
{
    return &vcontainer_of(t, struct et_plain, t)->req;
}

static int plain_reply(struct etxn *t, unsigned b, const void *rep)
{
    (void)t;
    (void)b;
    (void)rep;
    return 0;
}

static void plain_finish(struct etxn *t, int status)
{
    struct et_plain *p = vcontainer_of(t, struct et_plain, t);

    p->cb(status, p->arg);
}

static void plain_destroy(struct etxn *t)
{
    free(vcontainer_of(t, struct et_plain, t));
}

static const struct etxn_ops unlink_ops = {
    .opcode = OP_UNLINK, .req = plain_req, .reply = plain_reply,
    .finish = plain_finish, .destroy = plain_destroy,
};
static const struct etxn_ops rmdir_ops = {
    .opcode = OP_RMDIR, .req = plain_req, .reply = plain_reply,
    .finish = plain_finish, .destroy = plain_destroy,
};
static const struct etxn_ops rename_ops = {
    .opcode = OP_RENAME, .req = plain_req, .reply = plain_reply,
    .finish = plain_finish, .destroy = plain_destroy,
};

static int remove_start(struct volume *v, const struct etxn_ops *ops,
                        struct vinode *parent, const char *name,
                        vol_status_cb cb, void *arg)
{
    struct et_plain *p;
    int rc = vol_change_allowed(v);

    if (rc < 0)
        return rc;
    rc = check_name(name);
    if (rc < 0)
        return rc;
    if (rfs_id_is_root(&parent->id) && strcmp(name, ".replicafs") == 0)
        return -ENOENT;
    p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    et_init(&p->t, ops, v, parent, name, NULL, NULL);
    p->req.unlink.parent = parent->id;
    snprintf(p->req.unlink.name, sizeof(p->req.unlink.name), "%s", name);
    p->cb = cb;
    p->arg = arg;
    et_start(&p->t);
    return 0;
}

int volume_unlink(struct volume *v, struct vinode *parent, const char *name,
                  vol_status_cb cb, void *arg)
{
    return remove_start(v, &unlink_ops, parent, name, cb, arg);
}

int volume_rmdir(struct volume *v, struct vinode *parent, const char *name,
                 vol_status_cb cb, void *arg)
{
    return remove_start(v, &rmdir_ops, parent, name, cb, arg);
}

int volume_rename(struct volume *v, struct vinode *parent, const char *name,
                  struct vinode *newparent, const char *newname,
                  uint32_t flags, vol_status_cb cb, void *arg)
{
    struct et_plain *p;
    int rc = vol_change_allowed(v);

    if (rc < 0)
        return rc;
    if (flags & ~(uint32_t)RENAME_FLAG_NOREPLACE)
        return -EINVAL;
    rc = check_name(name);
    if (rc == 0)
        rc = check_name(newname);
    if (rc < 0)
        return rc;
    if ((rfs_id_is_root(&parent->id) && strcmp(name, ".replicafs") == 0) ||
        (rfs_id_is_root(&newparent->id) && strcmp(newname, ".replicafs") == 0))
        return -EPERM;
    p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    et_init(&p->t, &rename_ops, v, parent, name, newparent, newname);
    p->req.rename.parent = parent->id;
    snprintf(p->req.rename.name, sizeof(p->req.rename.name), "%s", name);
    p->req.rename.newparent = newparent->id;
    snprintf(p->req.rename.newname, sizeof(p->req.rename.newname), "%s",
             newname);
    p->req.rename.flags = flags;
    p->cb = cb;
    p->arg = arg;
    et_start(&p->t);
    return 0;
}
