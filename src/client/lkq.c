/*
 * lkq: a LOOKUP whose answer a quorum stands behind.
 *
 * Why.  A change of a folder done by fewer than quorum bricks is reported
 * failed and left dirty for heal (etxn.c invariant 4); heal later takes the
 * majority's names.  Until then, the bricks that did it answer LOOKUP with
 * a state that was never committed: a name they removed looks gone, a name
 * they made looks taken.  An application told "gone" or "EEXIST" by such a
 * brick was told something heal then undoes (docs/reliability.md, bug 17).
 * Only a brick whose copy of the folder is clean answers alone.
 *
 * Design
 * ======
 *   ONE: LOOKUP(LOOKUP_CLEAN) on one good brick (rcall, fails over;
 *        with `among`, pinned to one brick of it)
 *     |-- answered (0, ENOENT, other) -----------------------> done
 *     '-- EAGAIN: that brick's folder is dirty (or the pinned brick's
 *         link failed)
 *           v
 *   VOTE: LOOKUP(flags 0) on every good brick of `among` at once, and
 *         the folder's markers there (which copies are clean)
 *     |-- quorum of them agree (one id, or ENOENT) ---------> done
 *     |-- every brick up, some blamed for the folder: the good ones
 *     |   are heal's sources; the answer heal will keep (most of
 *     |   them; ties to a clean copy's, then to the lowest brick:
 *     |   heal.c sources_agree) ----------------------------> done
 *     |-- fewer than quorum could ever agree ----------------> done(-EIO)
 *     '-- no agreement yet (a change still on its way) --> VOTE again,
 *         at most LKQ_VOTES times, then done(-EIO)
 *
 * A good brick is one up and not blamed for the folder: a blamed brick
 * missed committed changes, so its answer is not counted.  With a quorum of
 * clean answers guaranteed to intersect every committed change, an answer
 * shared by quorum bricks is the committed one (or one being committed).
 *
 * Invariants:
 *  1. done runs exactly once, from the loop, after every call returned.
 *  2. On done(0) q->attr and q->brick are the answer of a brick that
 *     agreed with the result.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "client/heal.h"
#include "client/volume_int.h"
#include "common/id.h"
#include "common/log.h"

#define LKQ_VOTES 10 /* votes with no quorum before EIO */

static void lkq_vote(struct lkq *q);

static void lkq_one_reply(struct rcall *rc, const void *rep)
{
    struct lkq *q = vcontainer_of(rc, struct lkq, rc);

    q->attr = ((const struct attr_rep *)rep)->attr;
}

static void lkq_one_done(struct rcall *rc, int status)
{
    struct lkq *q = vcontainer_of(rc, struct lkq, rc);

    if (status == -EAGAIN || (rc->pin && vol_err_is_link(status))) {
        q->votes = 0;
        lkq_vote(q);
        return;
    }
    q->brick = rc->brick;
    q->done(q, status);
}

static void lkq_vote_reply(struct fan *f, unsigned slot, int status,
                           const void *rep)
{
    struct lkq *q = f->owner;
    unsigned b = f->slot[slot].brick;

    if (slot >= PROTO_MAX_BRICKS) { /* the folder's markers */
        /* Under a create's own mark, that mark is not a change. */
        int64_t own = q->own_mark && (q->among & BMASK(b)) ? 1 : 0;

        if (status == 0 && ((const struct xattrop_rep *)rep)->dirty <= own)
            q->clean |= BMASK(b);
        return;
    }
    if (status == 0)
        q->battr[b] = ((const struct attr_rep *)rep)->attr;
    q->st[b] = status;
}

/* Did brick k give brick b's answer (0 with the same id, or ENOENT)? */
static bool lkq_same(const struct lkq *q, unsigned k, unsigned b)
{
    if (q->st[k] != q->st[b])
        return false;
    return q->st[b] != 0 || rfs_id_eq(&q->battr[k].id, &q->battr[b].id);
}

/* heal_largest_group() over the answers. */
static bool lkq_same_cb(const void *arg, unsigned k, unsigned b)
{
    return lkq_same(arg, k, b);
}

/* Answer with brick b's reply. */
static void lkq_answer(struct lkq *q, unsigned b)
{
    q->brick = (int)b;
    if (q->st[b] == 0)
        q->attr = q->battr[b];
    q->done(q, q->st[b]);
}

static void lkq_vote_done(struct fan *f)
{
    struct lkq *q = f->owner;
    struct volume *v = q->v;
    bmask_t asked = q->asked, sure = 0, group;
    unsigned best = 0, nb;

    /* The largest group of equal answers; ties to one with a clean copy,
     * then to the lowest brick: heal's own rule (heal_largest_group).
     * With n bricks only one group can reach a quorum, so it is that one. */
    for (unsigned b = 0; b < v->n; b++)
        if ((asked & BMASK(b)) && (q->st[b] == 0 || q->st[b] == -ENOENT))
            sure |= BMASK(b);
    group = heal_largest_group(v->n, sure, q->clean, lkq_same_cb, q);
    nb = bmask_count(group);
    if (group)
        best = (unsigned)__builtin_ctz(group);
    if (nb >= v->quorum) {
        lkq_answer(q, best);
        return;
    }
    if (sure && sure == asked && v->up == vol_all_bricks(v) &&
        q->parent->blamed) {
        /* Every brick up, some blamed for the folder: the others are the
         * sources heal will copy from, however few, and where they differ
         * heal keeps the version most of them hold, ties going to a clean
         * copy's, then to the lowest brick (heal.c, sources_agree).  That
         * is the answer that stays. */
        lkq_answer(q, best);
        return;
    }
    if (bmask_count(sure) >= v->quorum && ++q->votes < LKQ_VOTES) {
        /* Enough bricks answered but they differ: a change of this name is
         * on its way through them.  Ask again. */
        lkq_vote(q);
        return;
    }
    log_warn("lookup of '%s': no quorum of bricks agrees (%u answered), "
             "and the brick asked first has the folder dirty",
             q->req.name, bmask_count(sure));
    q->done(q, -EIO);
}

static void lkq_vote(struct lkq *q)
{
    struct volume *v = q->v;

    q->req.flags = 0;
    q->asked = (q->among ? q->among : vol_all_bricks(v)) & v->up &
               ~q->parent->blamed;
    for (unsigned b = 0; b < PROTO_MAX_BRICKS; b++)
        q->st[b] = -ENOTCONN;
    q->clean = 0;
    memset(&q->mreq, 0, sizeof(q->mreq));
    q->mreq.id = q->parent->id;
    fan_begin(&q->fan, v, lkq_vote_reply, lkq_vote_done, q);
    for (unsigned b = 0; b < v->n; b++)
        if (q->asked & BMASK(b)) {
            fan_call(&q->fan, b, b, OP_LOOKUP, &q->req);
            fan_call(&q->fan, PROTO_MAX_BRICKS + b, b, OP_XATTROP, &q->mreq);
        }
    fan_end(&q->fan);
}

void vol_lookup_quorum(struct lkq *q, struct volume *v, struct vinode *parent,
                       const char *name, bmask_t among, bool own_mark,
                       void (*done)(struct lkq *q, int status))
{
    q->v = v;
    q->parent = parent;
    q->among = among;
    q->done = done;
    q->own_mark = own_mark;
    q->brick = -1;
    memset(&q->req, 0, sizeof(q->req));
    q->req.parent = parent->id;
    snprintf(q->req.name, sizeof(q->req.name), "%s", name);
    q->req.flags = LOOKUP_CLEAN | (own_mark ? LOOKUP_OWN_MARK : 0);
    q->rc.on_reply = lkq_one_reply;
    q->rc.on_done = lkq_one_done;
    q->rc.pin = 0;
    if (among) {
        /* own_mark counts on the brick holding our mark: ask one of
         * `among` (the others go to the vote if it fails). */
        int why, b = vol_pick_read_brick(parent, vol_all_bricks(v) & ~among,
                                         &why);

        q->rc.pin = b >= 0 ? (unsigned)b + 1 : 0;
    }
    vol_rcall_start(&q->rc, v, parent, OP_LOOKUP, &q->req, false);
}
