/*
 * Read leases (protocol version 3): a connection that holds a lease on an
 * object may answer opens of it from its own memory, so every change to
 * the object first recalls the lease and is answered only once the holder
 * gave it back or the recall wait ran out.  Design block in leases.c;
 * protocol in docs/protocol.md ("Read leases").
 */
#ifndef RFS_DAEMON_LEASES_H
#define RFS_DAEMON_LEASES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "list.h"
#include "replicafs/proto.h"

struct server;
struct conn;
struct req;
struct obj;

#define LEASE_RECALL_WAIT_MS 1000u  /* W: longest a change waits for one */
#define LEASE_MAX_PER_CONN 65536u   /* default cap per connection
                                       (RFS_LEASE_CAP) */

struct lease;

struct leases {                 /* embedded in struct server */
    struct lease **tab;         /* owned: hash by id, every holder of an
                                   id in the same chain */
    size_t nbuckets;            /* power of two, or 0 */
    size_t count;
    struct list recalling;      /* struct lease.rlink, oldest first */
    uv_timer_t timer;           /* the oldest recall's deadline */
    bool timer_ok;
    unsigned wait_ms;           /* W */
    size_t cap;                 /* leases per connection (invariant 6) */
    uint64_t recalled, expired, evicted; /* metrics */
};

struct conn_leases {            /* embedded in struct conn */
    struct list all;            /* struct lease.clink */
    size_t count;
};

/* wait_ms 0: LEASE_RECALL_WAIT_MS; cap 0: LEASE_MAX_PER_CONN. */
void leases_init(struct leases *ls, uv_loop_t *loop, unsigned wait_ms,
                 size_t cap);
/* Stop and close the timer (server stop); the table stays. */
void leases_close(struct leases *ls);
/* Free the table; every connection's leases must be gone. */
void leases_fini(struct leases *ls);
void conn_leases_init(struct conn_leases *cl);

/*
 * OPENX with OPEN_LEASE: c may serve opens of id from its memory until
 * recalled.  Called when the request is dispatched, before the object's
 * attributes are read, so a change that ends while the OPENX runs recalls
 * it.  At the cap, the connection's oldest lease is recalled to make room.
 * 0 granted (or already held); -EBUSY (a recall of it is under way: the
 * client gives it back first), -ENOSPC (twice the cap, its recalls
 * unanswered), -ENOMEM.  The caller tells the client a refusal with
 * leases_refuse().
 */
int leases_grant(struct server *srv, struct conn *c, const struct rfs_id *id);
/* Say "no lease on id" to c: an INVAL with INVAL_RECALL, sent before the
 * reply of the OPENX that asked (the client drops what the OPENX would
 * have granted). */
void leases_refuse(struct server *srv, struct conn *c,
                   const struct rfs_id *id);

/*
 * A change of id by r (its reply not yet sent) recalls c's lease, if c
 * holds one: r's reply waits until it is given back (or W runs out).
 * Returns true when c holds one (the caller adds INVAL_RECALL to what it
 * sends c).  A recall already under way is not sent again, but r waits
 * for it too.
 */
bool leases_recall(struct server *srv, struct req *r, struct conn *c,
                   const struct rfs_id *id);
/* LEASE_ACK: c gives back its lease on id (nothing if it holds none). */
void leases_ack(struct server *srv, struct conn *c, const struct rfs_id *id);
/*
 * id is losing its last name: every holder pins o (as one OPEN on its
 * connection), so that the files it opened from the lease stay readable
 * until it answers the recall (the client OPENs each of them before its
 * LEASE_ACK, and the ack drops this pin).  Returns how many pins it took.
 */
unsigned leases_pin(struct server *srv, const struct rfs_id *id,
                    struct obj *o);
/* Does anyone hold a lease on id? */
bool leases_held(struct server *srv, const struct rfs_id *id);
/* c is closing: its leases go (waiters woken, pins dropped). */
void leases_conn_gone(struct server *srv, struct conn *c);

#endif
