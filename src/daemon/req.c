/*
 * Answering requests (see req.h): encode, account, free.
 *
 * Invariants:
 *  1. Every struct req ends in exactly one of req_reply(), req_reply_tail()
 *     or req_drop(), which frees it and tells the connection (flow control,
 *     graceful stop, freeing a closed connection all hang on that).
 *  2. Metrics count a request when it is answered, with its latency.
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

void req_reply_tail(struct req *r, int rc, const void *rep, void *tail_owned)
{
    struct proto_hdr h = {.op = r->hdr.op, .kind = PROTO_REPLY,
                          .reqid = r->hdr.reqid};
    int src;

    account(r, rc);
    if (rc < 0)
        log_debug("conn %llu: %s reqid %llu: %d", (unsigned long long)r->c->cid,
                  proto_op_name(r->hdr.op), (unsigned long long)r->hdr.reqid,
                  rc);
    if (rc < 0 && tail_owned) {
        free(tail_owned);
        tail_owned = NULL;
    }
    src = conn_send(r->c, &h, proto_status_from_errno(rc), rep, tail_owned);
    if (src < 0 && src != -ENOTCONN && rc == 0) {
        /* The reply does not encode (a bug or -ENOMEM): say so instead. */
        log_warn("%s reply not sent: %d", proto_op_name(r->hdr.op), src);
        conn_send(r->c, &h, proto_status_from_errno(src), NULL, NULL);
    }
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
