/*
 * One client connection: framing of the byte stream, the handshake (HELLO,
 * AUTH), flow control, and the write queue of replies.  Design block and
 * state diagram in conn.c.
 */
#ifndef RFS_DAEMON_CONN_H
#define RFS_DAEMON_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "leases.h"
#include "list.h"
#include "pins.h"
#include "replicafs/proto.h"

struct server;

enum conn_state {
    CONN_HELLO = 0, /* waiting for HELLO */
    CONN_AUTH,      /* HELLO answered; waiting for AUTH */
    CONN_READY,     /* authenticated: requests are served */
    CONN_DRAINING,  /* graceful stop: no more reads; close when idle */
    CONN_CLOSING,   /* uv_close() called (or about to be, after a flush) */
};

struct conn {
    struct server *srv;        /* borrowed */
    uv_tcp_t tcp;              /* freed with the conn, after its close cb */
    uv_shutdown_t shut;        /* flush-then-close after a fatal reply */
    struct list link;          /* on srv->conns */
    uint64_t cid;              /* for logs */
    enum conn_state state;
    bool fake;                 /* no socket (fuzzing): replies are dropped */
    /* This client changed something here (or locked) since it last
     * cleared the suspect mark: losing it may mean it goes on changing
     * things elsewhere (suspect.h). */
    bool changed;
    bool reading;              /* uv_read_start() in effect */
    bool handle_closed;        /* close cb ran (or fake) */
    bool in_feed;              /* processing frames: no free under us */
    char peer[64];
    uint8_t cnonce[PROTO_NONCE_SIZE];
    uint8_t bnonce[PROTO_NONCE_SIZE];
    uint32_t version;          /* negotiated */
    uint8_t *buf;              /* owned receive buffer */
    size_t cap;
    size_t used;
    unsigned nreqs;            /* requests dispatched, not yet answered */
    size_t req_bytes;          /* their frame sizes */
    size_t wq_bytes;           /* reply bytes queued or handed to uv_write,
                                  not yet written */
    unsigned nwrites;          /* replies queued or being written */
    struct list outq;          /* struct wreq: queued, not yet handed to
                                  uv_write (conn.c invariant 7) */
    struct list flush_link;    /* on srv->flushq while outq is not empty */
    struct pins pins;          /* objects OPEN here; dropped at close */
    struct conn_leases leases; /* read leases held here (leases.c) */
};

struct wreq;

/* Accept one pending connection on listener.  0 or -errno. */
int conn_accept(struct server *srv, uv_stream_t *listener);
/*
 * An authenticated connection without a socket, for the fuzz hook and unit
 * tests: bytes come from conn_feed(), replies are counted and dropped.
 * NULL on -ENOMEM.  Free with conn_free_fake().
 */
struct conn *conn_new_fake(struct server *srv);
/* Close (if open) and free the fake conn once its requests are done; c is
 * not to be used after. */
void conn_free_fake(struct conn *c);
/* Process bytes as if received.  0, or -EPROTO if c was closed for them. */
int conn_feed(struct conn *c, const uint8_t *data, size_t len);

/* The server's uv_prepare callback: write every conn's queued replies,
 * one uv_write per conn (invariant 7 in conn.c). */
void conn_flush_all(uv_prepare_t *h);
/* Close now (drops queued replies); `why` is logged.  Idempotent. */
void conn_close(struct conn *c, const char *why);
/* Graceful stop: read no more; close once no request is in flight and
 * every reply is written. */
void conn_drain(struct conn *c);

/*
 * Queue one frame (header h with op/kind/reqid set; status for replies; the
 * message struct msg, may be NULL for an error reply).  tail_owned, when
 * non-NULL, is a malloc'd buffer that the message's bytes field points into:
 * it goes out as a second iovec without a copy and is freed when written.
 * 0, or -errno (the frame is dropped and tail_owned freed).
 */
int conn_send(struct conn *c, struct proto_hdr *h, uint32_t status,
              const void *msg, void *tail_owned);
/* conn_send() in two steps, for a reply that must wait (req.c invariant
 * 3): encode into *out (NULL when there is nobody to send to; 0 or -errno
 * as conn_send), then queue it (NULL is a no-op; a closed connection
 * frees it). */
int conn_encode(struct conn *c, struct proto_hdr *h, uint32_t status,
                const void *msg, void *tail_owned, struct wreq **out);
void conn_queue(struct conn *c, struct wreq *wr);

/* A dispatched request of `cost` frame bytes is finished (answered or
 * dropped): resume reading if under the limits; free c if it is closed and
 * idle. */
void conn_req_done(struct conn *c, size_t cost);

bool conn_is_open(const struct conn *c);

#endif
