/*
 * XATTROP: the replication markers trusted.rfs.dirty (i64 LE) and
 * trusted.rfs.pending (n x i64 LE, index i = brick i+1), changed atomically
 * by deltas, with the heal index kept in step.
 *
 * Design.  Atomicity comes from serialization, not from the filesystem:
 * every xattrop on an object queues on obj->xops (the object stays cached
 * while its queue is non-empty: each queued op holds a reference) and only
 * the head runs.  All of this happens on the loop thread, so the queue
 * needs no lock.
 *
 *   queued --(head)--> read dirty --> read pending --> add deltas
 *     --[becomes marked]--> healidx_add --> write dirty, pending
 *     --[becomes clear]--> healidx_del --> reply --> next in queue
 *
 * With a lock (xattrop_req.lk, proto.h): XO_LOCK takes the write lock
 * before the object is even looked up, and releases it again if the op
 * fails, so the client gets both or neither; XO_UNLOCK releases it after
 * the op, whatever its result, before the reply goes out.
 *
 *   [XO_LOCK] lockmgr_lock --(granted)--> get object --> queued ...
 *     ... reply <-- [XO_LOCK and failed, or XO_UNLOCK] lockmgr_unlock
 *
 * Invariants:
 *  1. At most one xattrop per object is between "read dirty" and "reply".
 *  2. The heal index holds the object exactly while dirty != 0 or some
 *     pending != 0.  Crash ordering: the entry is added before markers turn
 *     nonzero and removed after they are zero, so after a crash the index
 *     is a superset (healidx.c invariant 3).
 *  3. All-zero deltas read only; nothing is written.
 *  4. An add that would overflow an i64 fails the whole op with -ERANGE and
 *     changes nothing.
 *  5. pending is written only when a pending delta is nonzero: a dirty
 *     mark alone leaves it as it was (one setxattr less per mark).
 *  6. Every reply of an XO_LOCK op that did not succeed, and of every
 *     XO_UNLOCK op, comes after the lock was released (lk_settle).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#include "common/id.h"
#include "conn.h"
#include "healidx.h"
#include "ops.h"

#define XATTR_DIRTY "trusted.rfs.dirty"
#define XATTR_PENDING "trusted.rfs.pending"

struct xop {
    struct get1 g;
    const struct xattrop_req *m; /* the XATTROP, or zero_req (markers_read) */
    struct markers_read *mr;     /* markers_read: its caller, who replies */
    struct lk_req lk;            /* XO_LOCK: the request while it waits */
    struct list link;            /* on o->xops */
    struct store_op sop;
    struct healidx_op hop;
    struct req *r;
    struct obj *o;               /* referenced */
    int64_t dirty;               /* current, then new value */
    uint32_t npend;
    int64_t pend[PROTO_MAX_BRICKS];
    bool was_marked;
    uint8_t dbuf[8];
    uint8_t pbuf[PROTO_MAX_BRICKS * 8];
};

/* What markers_read() asks for: all-zero deltas, no lock (invariant 3). */
static const struct xattrop_req zero_req;

static void put_i64(uint8_t *p, int64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)((uint64_t)v >> (8 * i));
}

static int64_t get_i64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return (int64_t)v;
}

/*
 * The dirty counter of a directory, read now (LOOKUP_CLEAN).  Synchronous:
 * the directory is open and cached, the read is one fgetxattr on its fd,
 * and an answer that waited for the xops queue would be no truer (a mark
 * may land the moment after anyway).  0 or -errno.
 */
/* A read of trusted.rfs.dirty into buf (res: its length or -errno) as a
 * counter: none is 0.  0 or -errno. */
static int dirty_parse(ssize_t res, const uint8_t *buf, int64_t *dirty)
{
    if (res == -ENODATA)
        res = 0;
    if (res != 0 && res != 8)
        return res < 0 ? (int)res : -EIO;
    *dirty = res ? get_i64(buf) : 0;
    return 0;
}

int markers_dirty_now(const struct obj *o, int64_t *dirty)
{
    uint8_t buf[8];
    ssize_t n = o->opath ? ids_opath_getxattr(o->fd, XATTR_DIRTY, buf, 8)
                         : fgetxattr(o->fd, XATTR_DIRTY, buf, 8);

    if (n < 0 && !o->opath)
        n = -errno;
    return dirty_parse(n, buf, dirty);
}

static bool marked(const struct xop *x)
{
    if (x->dirty)
        return true;
    for (uint32_t i = 0; i < x->npend; i++)
        if (x->pend[i])
            return true;
    return false;
}

static void xop_run(struct xop *x);

bool xattrop_pending_delta(const struct xattrop_req *m)
{
    for (uint32_t i = 0; i < m->npending; i++)
        if (m->pending[i])
            return true;
    return false;
}

/* The lock an XATTROP names: its domain, and its entry name ("" for the
 * inode lock). */
static enum lk_domain lk_dom(const struct xattrop_req *m)
{
    return (m->lk & XO_ENTRY) ? LK_DOM_ENTRY : LK_DOM_INODE;
}

static const char *lk_name(const struct xattrop_req *m)
{
    return (m->lk & XO_ENTRY) ? m->lk_name : "";
}

/* Invariant 6: release the lock the op was asked to release, or took and
 * failed under. */
static void lk_settle(struct req *r, const struct xattrop_req *m, int rc)
{
    if ((m->lk & XO_UNLOCK) || ((m->lk & XO_LOCK) && rc < 0))
        (void)lockmgr_unlock(&r->srv->locks, r->c, m->lk_owner, lk_dom(m),
                             &m->id, lk_name(m));
}

static void xop_finish(struct xop *x, int rc)
{
    struct server *srv = x->r->srv;
    struct obj *o = x->o;
    const struct xattrop_req *m = x->m;
    struct xattrop_rep rep = {.dirty = x->dirty, .npending = x->npend};
    struct list *next;

    memcpy(rep.pending, x->pend, sizeof(rep.pending));
    if (rc == 0 && m->clear_suspect && rfs_id_is_root(&o->id) &&
        suspect_clear(srv, m->clear_suspect))
        /* The healer vouches for everything up to now, its own changes
         * included: its leaving is no sign any more. */
        x->r->c->changed = false;
    if (rc == 0 && xattrop_pending_delta(m))
        /* Other clients cache who is blamed for this object: a read they
         * sent to a brick now blamed would return old bytes.  A read lease
         * vouches for that cache too (an open from it reads where the
         * cache says), so it is recalled like any change: the blame may
         * come after the data reached this brick, and a lease granted in
         * between saw none. */
        server_inval(srv, x->r->c, &o->id, INVAL_MARKERS, NULL, NULL,
                     x->mr ? NULL : x->r);
    rep.suspect = srv->suspect.gen;
    if (x->mr) {
        x->mr->cb(x->mr, rc, &rep);
    } else {
        lk_settle(x->r, m, rc);
        req_reply(x->r, rc, &rep);
    }
    list_del(&x->link);
    free(x);
    next = list_first(&o->xops);
    if (next) /* invariant 1: the next in line starts now */
        xop_run(container_of(next, struct xop, link));
    ids_put(&srv->ids, o);
}

static void xop_unindexed_cb(struct healidx_op *hop, int status)
{
    xop_finish(container_of(hop, struct xop, hop), status);
}

static void xop_written_cb(struct store_op *sop, int res)
{
    struct xop *x = container_of(sop, struct xop, sop);

    if (res < 0) {
        xop_finish(x, res);
        return;
    }
    if (x->was_marked && !marked(x)) { /* invariant 2: del after clear */
        healidx_del(&x->r->srv->heal, &x->hop, &x->o->id, xop_unindexed_cb);
        return;
    }
    xop_finish(x, 0);
}

static void xop_write_pending(struct xop *x)
{
    struct store *st = &x->r->srv->st;

    for (uint32_t i = 0; i < x->npend; i++)
        put_i64(x->pbuf + 8 * i, x->pend[i]);
    if (x->npend == 0 || !xattrop_pending_delta(x->m)) {
        /* invariant 5 */
        xop_written_cb(&x->sop, 0);
        return;
    }
    if (x->o->opath) {
        xop_written_cb(&x->sop, ids_opath_setxattr(x->o->fd, XATTR_PENDING,
                                                   x->pbuf, 8 * x->npend));
        return;
    }
    store_fsetxattr(st, &x->sop, xop_written_cb, x->o->fd, XATTR_PENDING,
                    x->pbuf, 8 * x->npend, 0);
}

static void xop_dirty_written_cb(struct store_op *sop, int res)
{
    struct xop *x = container_of(sop, struct xop, sop);

    if (res < 0) {
        xop_finish(x, res);
        return;
    }
    xop_write_pending(x);
}

static void xop_write(struct xop *x)
{
    put_i64(x->dbuf, x->dirty);
    if (x->o->opath) {
        xop_dirty_written_cb(&x->sop, ids_opath_setxattr(x->o->fd, XATTR_DIRTY,
                                                         x->dbuf, 8));
        return;
    }
    store_fsetxattr(&x->r->srv->st, &x->sop, xop_dirty_written_cb, x->o->fd,
                    XATTR_DIRTY, x->dbuf, 8, 0);
}

static void xop_indexed_cb(struct healidx_op *hop, int status)
{
    struct xop *x = container_of(hop, struct xop, hop);

    if (status < 0) {
        xop_finish(x, status);
        return;
    }
    xop_write(x);
}

/* Add the deltas (invariant 4: all or nothing).  false on overflow. */
static bool xop_add(struct xop *x, const struct xattrop_req *m, bool *changed)
{
    int64_t d, p[PROTO_MAX_BRICKS];
    uint32_t n = m->npending > x->npend ? m->npending : x->npend;

    *changed = m->dirty != 0;
    if (__builtin_add_overflow(x->dirty, m->dirty, &d))
        return false;
    for (uint32_t i = 0; i < n; i++) {
        int64_t delta = i < m->npending ? m->pending[i] : 0;
        int64_t cur = i < x->npend ? x->pend[i] : 0;

        *changed |= delta != 0;
        if (__builtin_add_overflow(cur, delta, &p[i]))
            return false;
    }
    x->dirty = d;
    x->npend = n;
    memcpy(x->pend, p, sizeof(int64_t) * n);
    return true;
}

static void xop_compute(struct xop *x)
{
    const struct xattrop_req *m = x->m;
    bool changed;

    x->was_marked = marked(x);
    if (!xop_add(x, m, &changed)) {
        xop_finish(x, -ERANGE);
        return;
    }
    if (!changed) { /* invariant 3 */
        xop_finish(x, 0);
        return;
    }
    if (!x->was_marked && marked(x)) { /* invariant 2: add before marking */
        healidx_add(&x->r->srv->heal, &x->hop, &x->o->id, xop_indexed_cb);
        return;
    }
    xop_write(x);
}

static void xop_pending_cb(struct store_op *sop, int res)
{
    struct xop *x = container_of(sop, struct xop, sop);

    if (res == -ENODATA)
        res = 0;
    if (res < 0 || res % 8 || res > (int)sizeof(x->pbuf)) {
        xop_finish(x, res < 0 ? res : -EIO);
        return;
    }
    x->npend = (uint32_t)res / 8;
    for (uint32_t i = 0; i < x->npend; i++)
        x->pend[i] = get_i64(x->pbuf + 8 * i);
    xop_compute(x);
}

static void xop_dirty_cb(struct store_op *sop, int res)
{
    struct xop *x = container_of(sop, struct xop, sop);
    int rc = dirty_parse(res, x->dbuf, &x->dirty);

    if (rc < 0) {
        xop_finish(x, rc);
        return;
    }
    if (x->o->opath) {
        xop_pending_cb(sop, (int)ids_opath_getxattr(x->o->fd, XATTR_PENDING,
                                                    x->pbuf, sizeof(x->pbuf)));
        return;
    }
    store_fgetxattr(&x->r->srv->st, &x->sop, xop_pending_cb, x->o->fd,
                    XATTR_PENDING, x->pbuf, sizeof(x->pbuf));
}

/* ---- a CREATE_LOCK file's first mark (ops.h) ---- */

static void birth_written_cb(struct store_op *sop, int res)
{
    struct markers_birth *b = container_of(sop, struct markers_birth, sop);

    b->cb(b, res < 0 ? res : 0);
}

static void birth_indexed_cb(struct healidx_op *hop, int status)
{
    struct markers_birth *b = container_of(hop, struct markers_birth, hop);

    if (status < 0) {
        b->cb(b, status);
        return;
    }
    /* A new file has no markers: dirty 0 + 1, pending untouched
     * (invariant 5), written after the index entry (invariant 2). */
    put_i64(b->dbuf, 1);
    store_fsetxattr(&b->srv->st, &b->sop, birth_written_cb, b->fd,
                    XATTR_DIRTY, b->dbuf, 8, 0);
}

void markers_birth(struct server *srv, struct markers_birth *b, int fd,
                   const struct rfs_id *id, markers_birth_cb cb)
{
    b->srv = srv;
    b->fd = fd;
    b->cb = cb;
    healidx_add(&srv->heal, &b->hop, id, birth_indexed_cb);
}

static void xop_run(struct xop *x)
{
    if (x->o->opath) {
        xop_dirty_cb(&x->sop, (int)ids_opath_getxattr(x->o->fd, XATTR_DIRTY,
                                                      x->dbuf, 8));
        return;
    }
    store_fgetxattr(&x->r->srv->st, &x->sop, xop_dirty_cb, x->o->fd,
                    XATTR_DIRTY, x->dbuf, 8);
}

/* Queue x on its object (a reference x now owns); run it if first. */
static void xop_queue(struct xop *x, struct obj *o)
{
    bool idle = list_empty(&o->xops);

    x->o = o;
    list_add_tail(&o->xops, &x->link);
    if (idle)
        xop_run(x);
}

static void xop_obj_cb(struct get1 *g, struct obj *o)
{
    struct xop *x = container_of(g, struct xop, g);

    if (!o) {
        /* get1 replies with the error after this: release first. */
        lk_settle(x->r, x->m, -ENOENT);
        free(x);
        return;
    }
    xop_queue(x, o);
}

void markers_read(struct req *r, struct obj *o, struct markers_read *mr,
                  markers_read_cb cb)
{
    struct xop *x = calloc(1, sizeof(*x));

    if (!x) {
        struct xattrop_rep none = {0};

        cb(mr, -ENOMEM, &none);
        return;
    }
    mr->cb = cb;
    x->r = r;
    x->m = &zero_req;
    x->mr = mr;
    list_init(&x->link);
    ids_ref(o);
    xop_queue(x, o);
}

static void xop_locked_cb(struct lk_req *lk, int status)
{
    struct xop *x = container_of(lk, struct xop, lk);
    struct req *r = x->r;

    if (status < 0) {
        free(x);
        if (status == -ENOTCONN)
            req_drop(r); /* its connection is closing: nobody to answer */
        else
            req_reply(r, status, NULL);
        return;
    }
    get1_start(&x->g, r, &REQ_MSG(r, xattrop_req)->id, xop_obj_cb);
}

void op_xattrop(struct req *r)
{
    const struct xattrop_req *m = REQ_MSG(r, xattrop_req);
    struct xop *x;
    int rc;

    if ((m->lk & XO_LOCK) && (m->lk & XO_UNLOCK)) {
        req_reply(r, -EINVAL, NULL);
        return;
    }
    x = calloc(1, sizeof(*x));
    if (!x) {
        if (m->lk & XO_UNLOCK)
            lk_settle(r, m, -ENOMEM);
        req_reply(r, -ENOMEM, NULL);
        return;
    }
    x->r = r;
    x->m = m;
    list_init(&x->link);
    if (m->lk & XO_LOCK) {
        rc = ops_lock_take(r, &x->lk, lk_dom(m), &m->id, lk_name(m),
                           m->lk_owner, LK_WR,
                           (m->lk & XO_NONBLOCK) ? LK_NONBLOCK : 0,
                           xop_locked_cb);
        if (rc == 1)
            return; /* queued: xop_locked_cb goes on */
        if (rc < 0) {
            free(x);
            req_reply(r, rc, NULL);
            return;
        }
    }
    get1_start(&x->g, r, &m->id, xop_obj_cb);
}
