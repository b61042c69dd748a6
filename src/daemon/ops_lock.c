/*
 * INODELK and ENTRYLK: glue between requests and the lock manager
 * (locks.c).  A blocking request that cannot be granted stays in flight
 * (it counts against the connection's limits) until granted, cancelled by
 * its holder's unlock (EINTR), or dropped with its connection.
 *
 * Unlocking what the holder does not hold (and has not queued) answers 0,
 * not EINVAL: after a brick restart or reconnect the client's unlocks of
 * locks the brick already dropped must not look like failures.  Documented
 * in docs/daemon.md.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "ops.h"

struct op_lock {
    struct lk_req lk;
    struct req *r;
};

static void lock_granted_cb(struct lk_req *lk, int status)
{
    struct op_lock *op = container_of(lk, struct op_lock, lk);
    struct req *r = op->r;

    free(op);
    if (status == -ENOTCONN)
        req_drop(r); /* its connection is closing: nobody to answer */
    else
        req_reply(r, status, NULL);
}

int ops_lock_take(struct req *r, struct lk_req *lk, enum lk_domain dom,
                  const struct rfs_id *id, const char *name, uint64_t owner,
                  uint32_t type, uint32_t flags, lk_cb cb)
{
    lk->conn = r->c;
    lk->owner = owner;
    lk->type = type;
    lk->flags = flags;
    lk->cb = cb;
    strcpy(lk->name, name);
    return lockmgr_lock(&r->srv->locks, lk, dom, id);
}

static void lock_common(struct req *r, enum lk_domain dom,
                        const struct rfs_id *id, const char *name,
                        uint64_t owner, uint32_t type, uint32_t flags)
{
    struct server *srv = r->srv;
    struct op_lock *op;
    int rc;

    if (type == LK_UN) {
        rc = lockmgr_unlock(&srv->locks, r->c, owner, dom, id, name);
        if (rc == -ENOENT)
            log_debug("unlock of a lock not held (owner %llx): answered 0",
                      (unsigned long long)owner);
        req_reply(r, 0, NULL);
        return;
    }
    op = calloc(1, sizeof(*op));
    if (!op) {
        req_reply(r, -ENOMEM, NULL);
        return;
    }
    op->r = r;
    rc = ops_lock_take(r, &op->lk, dom, id, name, owner, type, flags,
                       lock_granted_cb);
    if (rc == 1)
        return; /* queued: lock_granted_cb answers */
    free(op);
    req_reply(r, rc, NULL);
}

void op_inodelk(struct req *r)
{
    const struct inodelk_req *m = REQ_MSG(r, inodelk_req);

    lock_common(r, LK_DOM_INODE, &m->id, "", m->owner, m->type, m->flags);
}

void op_entrylk(struct req *r)
{
    const struct entrylk_req *m = REQ_MSG(r, entrylk_req);

    lock_common(r, LK_DOM_ENTRY, &m->parent, m->name, m->owner, m->type,
                m->flags);
}
