/*
 * The brick's lock manager: inode locks (per object id) and entry locks (per
 * (parent id, name), where name "" is the whole directory).  RD is shared,
 * WR exclusive; a lock belongs to a holder = (connection, owner).  Pure data
 * structure: no I/O, no libuv, so it is unit tested directly
 * (tests/unit/test_locks.c).  Design block in locks.c.
 */
#ifndef RFS_DAEMON_LOCKS_H
#define RFS_DAEMON_LOCKS_H

#include <stddef.h>
#include <stdint.h>

#include "list.h"
#include "replicafs/proto.h"

enum lk_domain {
    LK_DOM_INODE = 0,
    LK_DOM_ENTRY = 1,
};

struct lk_req;
/* 0: granted; -ENOTCONN: dropped (its connection closed); -EINTR: cancelled
 * by its holder's unlock; -ENOMEM.  The lock manager no longer refers to r
 * when this runs. */
typedef void (*lk_cb)(struct lk_req *r, int status);

struct lk_req { /* a lock request; embedded in the caller's op */
    const void *conn;          /* borrowed: identity only, never dereferenced */
    uint64_t owner;
    uint32_t type;             /* LK_RD or LK_WR */
    uint32_t flags;            /* LK_NONBLOCK */
    lk_cb cb;                  /* called iff lockmgr_lock() returned 1 */
    char name[PROTO_NAME_MAX + 1]; /* entry name; "" for inode locks */
    struct list link;          /* on the resource's waiter queue */
    struct lk_res *res;        /* the resource queued on */
    int status;                /* private: the grant's result for cb */
};

struct lockmgr {
    struct lk_res **tab;       /* owned hash buckets of resources */
    size_t nbuckets;           /* power of two */
    size_t nres;               /* resources (with holds or waiters) */
    size_t nholds;             /* granted locks (distinct holder+name) */
    size_t nwaiters;           /* queued requests */
};

int lockmgr_init(struct lockmgr *m);
/* Free everything.  Queued requests are dropped without callback. */
void lockmgr_fini(struct lockmgr *m);

/*
 * Ask for a lock (r->type LK_RD/LK_WR) on (domain, id, r->name).
 * Returns 0: granted now (r->cb not called, r is free to reuse);
 *         1: queued, r must stay alive until r->cb runs;
 *         -EAGAIN: conflicts and LK_NONBLOCK is set;  -ENOMEM;
 *         -EINVAL: bad type, or a name on an inode lock.
 * A holder that already holds (domain, id, name) is granted again at once
 * unless it upgrades RD to WR while another holder has it; the count of
 * grants is kept and each unlock takes one off.  A RD+WR mix counts as WR.
 */
int lockmgr_lock(struct lockmgr *m, struct lk_req *r, enum lk_domain dom,
                 const struct rfs_id *id);

/*
 * Release one grant of (domain, id, name) held by (conn, owner).  If not
 * held but the holder has a queued request there, that request is cancelled
 * (its cb gets -EINTR).  Returns 0 when something was released or
 * cancelled, -ENOENT when the holder had nothing there.  Waiters that can
 * now be granted get their cb(0) before this returns.
 */
int lockmgr_unlock(struct lockmgr *m, const void *conn, uint64_t owner,
                   enum lk_domain dom, const struct rfs_id *id,
                   const char *name);

/* A connection closed: release all its locks, drop its queued requests
 * (cb -ENOTCONN), grant whatever that unblocks (cb 0). */
void lockmgr_conn_gone(struct lockmgr *m, const void *conn);

#endif
