/*
 * Lock manager (see locks.h for the API).
 *
 * Design.  A resource is (domain, id): an inode, or a directory's entry
 * namespace.  Each resource has a list of holds (granted locks, one per
 * holder and name, with a count) and a FIFO queue of waiting requests.
 * Two locks conflict when their names overlap (inode: always; entry: equal
 * names, or either is "" = the whole directory), at least one is WR, and
 * their holders differ.
 *
 *   request --lockmgr_lock--> granted (hold, count++)        [no conflict]
 *                         \-> queued --pump()--> granted, cb(0)
 *                                   \--unlock by holder--> cb(-EINTR)
 *                                   \--conn gone--> cb(-ENOTCONN)
 *   hold --lockmgr_unlock: count-- to 0 / conn gone--> released, pump()
 *
 * Invariants:
 *  1. No two holds on a resource conflict.
 *  2. FIFO fairness: a request is granted only if it conflicts with no hold
 *     and with no earlier queued request of another holder (so a stream of
 *     readers cannot starve a writer).  Exception: a holder re-locking what
 *     it holds is not queued behind waiters (they may wait on it: that
 *     would deadlock), only behind other holders' conflicting holds.
 *  3. A resource with no hold and no waiter is freed at once.
 *  4. Every queued request gets exactly one cb; cbs run after the manager's
 *     state is consistent again (collected first, called last), so a cb may
 *     call back into the manager.
 */
#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/id.h"
#include "locks.h"

struct lk_res {
    uint8_t dom;
    struct rfs_id id;
    struct list holds;    /* struct lk_hold.link */
    struct list waiters;  /* struct lk_req.link, FIFO */
    struct lk_res *hnext; /* hash chain */
};

struct lk_hold {
    struct list link;
    const void *conn;
    uint64_t owner;
    uint32_t type;
    unsigned count;
    char name[PROTO_NAME_MAX + 1];
};

static uint64_t res_hash(uint8_t dom, const struct rfs_id *id)
{
    return rfs_id_hash(id) ^ (dom * 0x9e3779b97f4a7c15ull);
}

static bool names_overlap(uint8_t dom, const char *a, const char *b)
{
    return dom == LK_DOM_INODE || !*a || !*b || strcmp(a, b) == 0;
}

static bool same_holder(const void *c1, uint64_t o1, const void *c2,
                        uint64_t o2)
{
    return c1 == c2 && o1 == o2;
}

static bool conflict(uint8_t dom, const char *na, uint32_t ta, const char *nb,
                     uint32_t tb)
{
    return (ta == LK_WR || tb == LK_WR) && names_overlap(dom, na, nb);
}

int lockmgr_init(struct lockmgr *m)
{
    memset(m, 0, sizeof(*m));
    m->nbuckets = 256;
    m->tab = calloc(m->nbuckets, sizeof(*m->tab));
    return m->tab ? 0 : -ENOMEM;
}

static void res_free(struct lockmgr *m, struct lk_res *res)
{
    struct list *pos, *tmp;

    list_for_each_safe(pos, tmp, &res->holds) {
        list_del(pos);
        free(container_of(pos, struct lk_hold, link));
        m->nholds--;
    }
    list_for_each_safe(pos, tmp, &res->waiters) {
        list_del(pos);
        m->nwaiters--;
    }
    free(res);
    m->nres--;
}

void lockmgr_fini(struct lockmgr *m)
{
    if (!m->tab)
        return;
    for (size_t i = 0; i < m->nbuckets; i++) {
        while (m->tab[i]) {
            struct lk_res *res = m->tab[i];

            m->tab[i] = res->hnext;
            res_free(m, res);
        }
    }
    free(m->tab);
    m->tab = NULL;
}

static struct lk_res **res_slot(struct lockmgr *m, uint8_t dom,
                                const struct rfs_id *id)
{
    struct lk_res **pp = &m->tab[res_hash(dom, id) & (m->nbuckets - 1)];

    while (*pp && !((*pp)->dom == dom && rfs_id_eq(&(*pp)->id, id)))
        pp = &(*pp)->hnext;
    return pp;
}

static struct lk_res *res_get(struct lockmgr *m, uint8_t dom,
                              const struct rfs_id *id, bool create)
{
    struct lk_res **pp = res_slot(m, dom, id);
    struct lk_res *res;

    if (*pp || !create)
        return *pp;
    res = calloc(1, sizeof(*res));
    if (!res)
        return NULL;
    res->dom = dom;
    res->id = *id;
    list_init(&res->holds);
    list_init(&res->waiters);
    *pp = res;
    m->nres++;
    return res;
}

/* Invariant 3. */
static void res_maybe_free(struct lockmgr *m, struct lk_res *res)
{
    struct lk_res **pp;

    if (!list_empty(&res->holds) || !list_empty(&res->waiters))
        return;
    pp = res_slot(m, res->dom, &res->id);
    assert(*pp == res);
    *pp = res->hnext;
    free(res);
    m->nres--;
}

static struct lk_hold *find_hold(struct lk_res *res, const void *conn,
                                 uint64_t owner, const char *name)
{
    struct list *pos, *tmp;

    list_for_each_safe(pos, tmp, &res->holds) {
        struct lk_hold *h = container_of(pos, struct lk_hold, link);

        if (same_holder(h->conn, h->owner, conn, owner) &&
            strcmp(h->name, name) == 0)
            return h;
    }
    return NULL;
}

static bool blocked_by_holds(const struct lk_res *res, const struct lk_req *r)
{
    const struct list *pos;

    for (pos = res->holds.next; pos != &res->holds; pos = pos->next) {
        const struct lk_hold *h = container_of(pos, struct lk_hold, link);

        if (!same_holder(h->conn, h->owner, r->conn, r->owner) &&
            conflict(res->dom, h->name, h->type, r->name, r->type))
            return true;
    }
    return false;
}

/* Invariant 2: conflicting requests queued before `upto` (NULL: all). */
static bool blocked_by_waiters(const struct lk_res *res, const struct lk_req *r,
                               const struct list *upto)
{
    const struct list *pos;

    for (pos = res->waiters.next; pos != &res->waiters && pos != upto;
         pos = pos->next) {
        const struct lk_req *w = container_of(pos, struct lk_req, link);

        if (!same_holder(w->conn, w->owner, r->conn, r->owner) &&
            conflict(res->dom, w->name, w->type, r->name, r->type))
            return true;
    }
    return false;
}

/* Record a grant of r.  0 or -ENOMEM. */
static int grant(struct lockmgr *m, struct lk_res *res, const struct lk_req *r)
{
    struct lk_hold *h = find_hold(res, r->conn, r->owner, r->name);

    if (h) {
        h->count++;
        if (r->type == LK_WR)
            h->type = LK_WR;
        return 0;
    }
    h = calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    h->conn = r->conn;
    h->owner = r->owner;
    h->type = r->type;
    h->count = 1;
    strcpy(h->name, r->name);
    list_add_tail(&res->holds, &h->link);
    m->nholds++;
    return 0;
}

int lockmgr_lock(struct lockmgr *m, struct lk_req *r, enum lk_domain dom,
                 const struct rfs_id *id)
{
    struct lk_res *res;
    bool relock;
    int rc;

    if ((r->type != LK_RD && r->type != LK_WR) ||
        (dom == LK_DOM_INODE && r->name[0]))
        return -EINVAL;
    res = res_get(m, dom, id, true);
    if (!res)
        return -ENOMEM;
    relock = find_hold(res, r->conn, r->owner, r->name) != NULL;
    if (!blocked_by_holds(res, r) &&
        (relock || !blocked_by_waiters(res, r, NULL))) {
        rc = grant(m, res, r);
        res_maybe_free(m, res);
        return rc;
    }
    if (r->flags & LK_NONBLOCK) {
        res_maybe_free(m, res);
        return -EAGAIN;
    }
    r->res = res;
    list_add_tail(&res->waiters, &r->link);
    m->nwaiters++;
    return 1;
}

/* Grant what can be granted, in FIFO order; the granted requests (and
 * those that failed with -ENOMEM) move to `done` for invariant 4. */
static void pump(struct lockmgr *m, struct lk_res *res, struct list *done)
{
    struct list *pos, *tmp;

    list_for_each_safe(pos, tmp, &res->waiters) {
        struct lk_req *w = container_of(pos, struct lk_req, link);

        if (blocked_by_holds(res, w) || blocked_by_waiters(res, w, pos))
            continue;
        list_del(&w->link);
        m->nwaiters--;
        w->res = NULL;
        w->status = grant(m, res, w);
        list_add_tail(done, &w->link);
    }
}

static void run_done(struct list *done, int status)
{
    struct list *pos, *tmp;

    list_for_each_safe(pos, tmp, done) {
        struct lk_req *w = container_of(pos, struct lk_req, link);

        list_del(pos);
        w->cb(w, status == 0 ? w->status : status);
    }
}

static void release_hold(struct lockmgr *m, struct lk_hold *h)
{
    list_del(&h->link);
    free(h);
    m->nholds--;
}

static int cancel_waiter(struct lockmgr *m, struct lk_res *res,
                         const void *conn, uint64_t owner, const char *name,
                         struct list *cancelled)
{
    struct list *pos, *tmp;

    list_for_each_safe(pos, tmp, &res->waiters) {
        struct lk_req *w = container_of(pos, struct lk_req, link);

        if (same_holder(w->conn, w->owner, conn, owner) &&
            strcmp(w->name, name) == 0) {
            list_del(pos);
            m->nwaiters--;
            w->res = NULL;
            list_add_tail(cancelled, pos);
            return 0;
        }
    }
    return -ENOENT;
}

int lockmgr_unlock(struct lockmgr *m, const void *conn, uint64_t owner,
                   enum lk_domain dom, const struct rfs_id *id,
                   const char *name)
{
    struct lk_res *res = res_get(m, dom, id, false);
    struct list granted, cancelled;
    struct lk_hold *h;
    int rc = 0;

    if (!res)
        return -ENOENT;
    list_init(&granted);
    list_init(&cancelled);
    h = find_hold(res, conn, owner, name);
    if (h && --h->count == 0)
        release_hold(m, h);
    if (!h)
        rc = cancel_waiter(m, res, conn, owner, name, &cancelled);
    pump(m, res, &granted);
    res_maybe_free(m, res);
    run_done(&cancelled, -EINTR);
    run_done(&granted, 0);
    return rc;
}

static void drop_conn_in(struct lockmgr *m, struct lk_res *res,
                         const void *conn, struct list *dropped)
{
    struct list *pos, *tmp;

    list_for_each_safe(pos, tmp, &res->holds) {
        struct lk_hold *h = container_of(pos, struct lk_hold, link);

        if (h->conn == conn)
            release_hold(m, h);
    }
    list_for_each_safe(pos, tmp, &res->waiters) {
        struct lk_req *w = container_of(pos, struct lk_req, link);

        if (w->conn == conn) {
            list_del(pos);
            m->nwaiters--;
            w->res = NULL;
            list_add_tail(dropped, pos);
        }
    }
}

void lockmgr_conn_gone(struct lockmgr *m, const void *conn)
{
    struct list granted, dropped;

    list_init(&granted);
    list_init(&dropped);
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct lk_res *res = m->tab[i];

        while (res) {
            struct lk_res *next = res->hnext;

            drop_conn_in(m, res, conn, &dropped);
            pump(m, res, &granted);
            res_maybe_free(m, res);
            res = next;
        }
    }
    run_done(&dropped, -ENOTCONN);
    run_done(&granted, 0);
}
