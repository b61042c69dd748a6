/*
 * Answering requests (see req.h): encode, account, free.
 *
 * Invariants:
 *  1. Every struct req ends in exactly one of req_reply(), req_reply_tail()
 *     or req_drop(), which frees it and tells the connection (flow control,
 *     graceful stop, freeing a closed connection all hang on that).
 *  2. Metrics count a request when it is answered, with its latency.
 *  3. A change that recalled read leases (r->recalls > 0) is answered with
 *     its reply encoded at once but held, and sent (and r freed) when the
 *     last recalled lease is gone (leases.c invariant 2).  The latency
 *     metric does not count the wait: it is the holders', not the disk's.
 */
#include <errno.h>
#include <stdlib.h>

#include "common/log.h"
#include "conn.h"
#include "req.h"
#include "server.h"

static void req_free(struct req *r)
{
    struct conn *c = r->c;
    size_t cost = r->cost;

    free(r->frame);
    free(r);
    conn_req_done(c, cost);
}

static void account(struct req *r, int rc)
{
    struct metrics *m = &r->srv->metrics;
    uint16_t op = r->hdr.op;

    if (op >= OP__MAX)
        return;
    m->ops[op]++;
    if (rc < 0)
        m->errors[op]++;
    m->lat_us[op] += (uv_hrtime() - r->t0) / 1000;
}

/*
 * A change that failed for a reason of this brick's own (its disk, its
 * memory), not one every brick would give (EEXIST, ENOENT...): the others
 * may have done it.
 */
static bool change_failed_here(uint16_t op, int rc)
{
    switch (op) {
    case OP_SETATTR: case OP_MKDIR: case OP_CREATE: case OP_MKNOD:
    case OP_SYMLINK: case OP_LINK: case OP_UNLINK: case OP_RMDIR:
    case OP_RENAME: case OP_WRITE: case OP_FSYNC: case OP_XATTROP:
        break;
    default:
        return false;
    }
    return rc == -ENOSPC || rc == -EDQUOT || rc == -EIO || rc == -ENOMEM ||
           rc == -EROFS || rc == -EFBIG;
}

void req_reply_tail(struct req *r, int rc, const void *rep, void *tail_owned)
{
    struct proto_hdr h = {.op = r->hdr.op, .kind = PROTO_REPLY,
                          .reqid = r->hdr.reqid};
    int src;

    account(r, rc);
    if (rc < 0 && change_failed_here(r->hdr.op, rc))
        suspect_mark(r->srv, "a change failed");
    if (rc < 0)
        log_debug("conn %llu: %s reqid %llu: %d", (unsigned long long)r->c->cid,
                  proto_op_name(r->hdr.op), (unsigned long long)r->hdr.reqid,
                  rc);
    if (rc < 0 && tail_owned) {
        free(tail_owned);
        tail_owned = NULL;
    }
    src = conn_encode(r->c, &h, proto_status_from_errno(rc), rep, tail_owned,
                      &r->held);
    if (src < 0 && src != -ENOTCONN && rc == 0) {
        /* The reply does not encode (a bug or -ENOMEM): say so instead. */
        log_warn("%s reply not sent: %d", proto_op_name(r->hdr.op), src);
        conn_encode(r->c, &h, proto_status_from_errno(src), NULL, NULL,
                    &r->held);
    }
    if (r->recalls > 0)
        return; /* invariant 3: req_recall_done() sends it */
    conn_queue(r->c, r->held);
    req_free(r);
}

void req_recall_wait(struct req *r)
{
    r->recalls++;
}

void req_recall_done(struct req *r)
{
    if (--r->recalls > 0 || !r->held)
        return; /* more to wait for, or not answered yet */
    conn_queue(r->c, r->held);
    req_free(r);
}

void req_reply(struct req *r, int rc, const void *rep)
{
    req_reply_tail(r, rc, rep, NULL);
}

void req_drop(struct req *r)
{
    req_free(r);
}
