/*
 * Client side of one brick: a connection to one replicafsd, on a libuv loop.
 *
 * Everything here runs on the loop's thread; nothing blocks.  The FUSE client,
 * the admin CLI, tools and tests all use it; the *_sync helpers run the loop
 * until their call completes, for programs that are sequential by nature.
 *
 * Link states (which function moves it):
 *
 *   IDLE --brick_conn_start--> CONNECTING --tcp ok--> HANDSHAKE --AUTH ok--> UP
 *     ^                            |                      |                 |
 *     |                            +------- error --------+-----------------+
 *     |                                      v           (ping timeout, EOF,
 *   (closed)                               DOWN            protocol error)
 *                                            |  back-off 100 ms .. 5 s
 *                                            +--> CONNECTING
 *
 * Invariants:
 *  1. Every call accepted by brick_call() gets exactly one callback: the
 *     reply, or -ENOTCONN when the link goes down first, or -ETIMEDOUT.
 *  2. Calls are accepted only in state UP.
 *  3. A brick that has sent nothing for ping_timeout while calls are
 *     outstanding (or pings unanswered) is declared DOWN.
 */
#ifndef REPLICAFS_CLIENT_H
#define REPLICAFS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "replicafs/proto.h"

struct vol_config;
struct brick_conn;

enum brick_state {
    BRICK_IDLE = 0,
    BRICK_CONNECTING,
    BRICK_HANDSHAKE,
    BRICK_UP,
    BRICK_DOWN,
    BRICK_CLOSED,
};

/* status: 0 with rep pointing to the decoded reply struct (valid only during
 * the callback; bytes fields point into the frame), or -errno: the brick's
 * error, -ENOTCONN (link lost before a reply), -ETIMEDOUT. */
typedef void (*brick_reply_cb)(int status, const void *rep, void *arg);
typedef void (*brick_state_cb)(struct brick_conn *bc, enum brick_state st,
                               void *arg);
/* An event frame (OP_INVAL) from the brick; msg valid during the call. */
typedef void (*brick_event_cb)(struct brick_conn *bc, uint16_t op,
                               const void *msg, void *arg);

struct brick_conn_opts {
    unsigned ping_timeout_ms; /* 0: default 5000 */
    unsigned connect_timeout_ms; /* 0: default = ping timeout */
    brick_state_cb on_state;  /* may be NULL */
    brick_event_cb on_event;  /* may be NULL */
    void *arg;                /* passed to both */
};

/*
 * Make a connection object for brick `brick_no` (1-based) of vol.  vol and
 * opts are copied.  Nothing happens on the network until brick_conn_start().
 * Returns 0 or -ENOMEM/-EINVAL; *out untouched on failure.
 * If SIGPIPE is at its default action it is set to SIG_IGN (a brick dying
 * while a request is being written must not kill the process).
 */
int brick_conn_new(uv_loop_t *loop, const struct vol_config *vol,
                   unsigned brick_no, const struct brick_conn_opts *opts,
                   struct brick_conn **out);
/* Connect now, and keep reconnecting with back-off until closed. */
void brick_conn_start(struct brick_conn *bc);
/* Fail outstanding calls with -ENOTCONN (their callbacks run inside this
 * call; on_state is not called), stop reconnecting, free bc once its handles
 * are closed, then call done(arg) (may be NULL).  bc is dead after; closing
 * twice is a bug.  May be called from any callback of bc. */
void brick_conn_close(struct brick_conn *bc, void (*done)(void *), void *arg);

/*
 * Send request `op` with body req (the op's *_req struct).  Returns 0 and
 * calls cb exactly once later, or -ENOTCONN when not UP, -ENOMEM, -EINVAL
 * (the request does not encode, or is HELLO/AUTH, which the connection does
 * itself); then cb is never called.  req is copied except for a trailing
 * bytes field (OP_WRITE's data): that payload is sent from the caller's
 * memory without a copy and must stay valid and unchanged until cb runs.
 * cb is never called from inside brick_call().
 */
int brick_call(struct brick_conn *bc, uint16_t op, const void *req,
               brick_reply_cb cb, void *arg);

enum brick_state brick_conn_state(const struct brick_conn *bc);
const char *brick_state_name(enum brick_state st);
unsigned brick_conn_no(const struct brick_conn *bc);
/* Smoothed round-trip time of pings in microseconds; 0 before the first. */
uint64_t brick_conn_rtt_us(const struct brick_conn *bc);
/* When (uv_hrtime() / 1000) the newest request whose reply has arrived on
 * the current link was sent; 0 before any, and again on a new link.  Every
 * event the brick sent before that reply has been handed out. */
uint64_t brick_conn_fresh_us(const struct brick_conn *bc);
/* Negotiated protocol version; 0 before UP. */
uint32_t brick_conn_version(const struct brick_conn *bc);
/* The brick's stamp uuid as sent in AUTH's reply. */
void brick_conn_uuid(const struct brick_conn *bc, uint64_t *hi, uint64_t *lo);
/* Last connection error (-errno) for messages; 0 if none.  -EACCES after
 * an authentication failure (bad brick MAC, or the brick said EACCES). */
int brick_conn_last_error(const struct brick_conn *bc);
/* Calls accepted and not yet called back (internal pings included). */
size_t brick_conn_outstanding(const struct brick_conn *bc);

/* ---- sequential helpers: run the loop until done ----
 * They call uv_run(UV_RUN_ONCE) themselves, so never call them from inside a
 * callback of the same loop, and do not close bc from a callback while one
 * of them is running on it. */

/* Start bc and run the loop until it is UP (0), or timeout_ms passes
 * (-ETIMEDOUT), or authentication fails (-EACCES). */
int brick_conn_wait_up(struct brick_conn *bc, unsigned timeout_ms);

/*
 * brick_call() and run the loop until the reply.  On 0, the reply struct is
 * copied into rep (proto_msg_size(op, PROTO_REPLY) bytes; may be NULL) and,
 * if the reply has a bytes field, *frame gets the buffer it points into
 * (owned by the caller: free()).  With frame NULL, bytes fields are zeroed.
 * Returns 0 or -errno as brick_call()/brick_reply_cb.
 */
int brick_call_sync(struct brick_conn *bc, uint16_t op, const void *req,
                    void *rep, void **frame);

#endif
