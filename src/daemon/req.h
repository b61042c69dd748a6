/*
 * One request in flight: what every op handler receives, and the single way
 * out (req_reply / req_drop).  libfuse's rule holds: every request is
 * answered exactly once, then freed.
 */
#ifndef RFS_DAEMON_REQ_H
#define RFS_DAEMON_REQ_H

#include <stddef.h>
#include <stdint.h>

#include "replicafs/proto.h"

struct conn;
struct server;
struct wreq;

struct req {
    struct conn *c;            /* borrowed; c->nreqs counts this request */
    struct server *srv;        /* borrowed */
    struct proto_hdr hdr;
    uint8_t *frame;            /* owned or NULL: keeps WRITE data alive */
    size_t cost;               /* frame bytes charged to the connection */
    uint64_t t0;               /* uv_hrtime() at dispatch */
    unsigned recalls;          /* leases this change recalled, not yet
                                  given back (leases.c) */
    struct wreq *held;         /* owned: the reply, encoded, waiting for
                                  recalls to reach 0 */
    max_align_t msg[];         /* decoded request: proto_msg_size(op) */
};

/*
 * Answer r: rc 0 with rep (the op's reply struct) or -errno (rep ignored).
 * Frees r.  If the connection is gone the reply is dropped.
 */
void req_reply(struct req *r, int rc, const void *rep);
/* As req_reply(), for replies whose bytes field points into tail_owned (a
 * malloc'd buffer, always consumed). */
void req_reply_tail(struct req *r, int rc, const void *rep, void *tail_owned);
/* Finish r without a reply (its connection closed).  Frees r. */
void req_drop(struct req *r);
/* r's reply must wait for one more recalled lease (leases.c). */
void req_recall_wait(struct req *r);
/* One recalled lease is gone: at the last, a held reply goes out and r is
 * freed. */
void req_recall_done(struct req *r);

/* The request body, typed. */
#define REQ_MSG(r, type) ((const struct type *)(const void *)(r)->msg)

/* dispatch.c: run a decoded request (authenticated connection). */
void dispatch(struct req *r);
/* Is op a request op that dispatch() handles (not HELLO/AUTH)? */
int dispatch_known(uint16_t op);

#endif
