/*
 * brick_conn: the client side of one brick link (API in replicafs/client.h).
 *
 * Design
 * ======
 * A brick_conn lives as long as its owner wants to talk to one brick; each
 * TCP connection attempt is a separate `struct link` (a uv_tcp_t cannot be
 * re-initialised until its close callback has run, and a fresh object per
 * attempt means a late callback of an old socket can never touch the new
 * one).  Calls (`struct call`) are written to the current link and wait in a
 * hash keyed by reqid, so replies may come in any order.
 *
 *   IDLE --brick_conn_start()--> CONNECTING --connect_cb()--> HANDSHAKE
 *                                 ^     |                    | hello_cb()
 *                 conn_timer_cb() |     | link_down()        | auth_cb()
 *                                 |     v                    v
 *                                DOWN <------link_down()----- UP
 *            (connect/handshake timeout, EOF, read/write error, protocol
 *             error, bad brick MAC, EACCES, ping timeout in ping_timer_cb())
 *
 *   any state --brick_conn_close()--> CLOSED --last handle closed--> freed
 *
 * Who moves it:
 *   connect_start()  IDLE/DOWN -> CONNECTING: new link, uv_tcp_connect, arms
 *                    conn_timer with the connect timeout (which also bounds
 *                    the handshake).
 *   connect_cb()     CONNECTING -> HANDSHAKE: TCP_NODELAY, keepalive,
 *                    uv_read_start, sends HELLO with a fresh nonce.
 *   hello_cb()       checks version, brick number and the brick's MAC, sends
 *                    AUTH with ours.  A wrong MAC is an auth failure.
 *   auth_cb()        HANDSHAKE -> UP (link_up()): sends a first ping for the
 *                    RTT, arms ping_timer.
 *   link_down()      CONNECTING/HANDSHAKE/UP -> DOWN: closes the socket,
 *                    fails every outstanding call with -ENOTCONN, notifies
 *                    on_state, arms conn_timer with the back-off.
 *   conn_timer_cb()  DOWN -> CONNECTING when the back-off ends (and, in
 *                    CONNECTING/HANDSHAKE, the connect timeout: link_down).
 *   brick_conn_close() any -> CLOSED: like link_down() without notifying,
 *                    then closes the timers; conn_free() runs when the last
 *                    handle's close callback has.
 *
 * Invariants (conn_state_ok() checks the structural ones):
 *  1. link != NULL exactly in CONNECTING, HANDSHAKE and UP.
 *  2. ncalls > 0 only with a link; every call in the table was written to
 *     bc->link.  Internal calls (HELLO, AUTH, PING) use the same table.
 *  3. A call gets its callback exactly once: from dispatch_reply() or from
 *     fail_all() (link_down, close).  It is freed when it has both had its
 *     callback and its uv_write callback (call->outstanding/writing).
 *  4. bc is freed only from a close callback, never inside a function a
 *     user callback can reach, so bc stays valid for the rest of any
 *     function that calls out to the user; such functions check
 *     bc->closing and link->dead after every callout.
 *  5. A request's payload tail (OP_WRITE data) is borrowed from the caller
 *     until its callback.  Before a callback can run early (link down,
 *     close), the socket is closed, so libuv never touches the tail again;
 *     a reply to a request not yet fully written is a protocol error
 *     (check in dispatch_reply()), so the normal path cannot free it early.
 *  6. Liveness (client.h invariant 3): ping_timer fires at the earlier of
 *     "idle for ping_interval" (send a ping) and "silent for ping_timeout
 *     while calls are outstanding" (down).  Silence counts from the later
 *     of the last byte received and the moment calls became outstanding,
 *     so a program that did not run the loop for a while is not punished;
 *     bytes already waiting in the socket count as life (FIONREAD).
 *  7. Back-off: each failed attempt doubles the delay, 100 ms .. 5 s; a link
 *     that stayed UP for the maximum resets it.  An auth failure is a failed
 *     attempt like any other, so a wrong key is retried ever more slowly,
 *     then every 5 s.
 *  8. No call is failed on its own with -ETIMEDOUT (client.h allows it): a
 *     silent brick takes the whole link down, every call gets -ENOTCONN and
 *     last_error is -ETIMEDOUT.  A call that waits long for its reply (a
 *     blocking lock) is fine as long as the brick answers pings.
 *  9. Frames are not written one by one: call_send() queues a call on its
 *     link and the flush handle (a uv_prepare, so before the loop next
 *     waits for I/O) hands everything queued to one uv_write, a writev(2)
 *     of many frames.  On loopback a write costs the writer the whole TCP
 *     receive path and a wake-up of the brick, so frames sent in the same
 *     iteration share them (docs/performance.md, finding 8).  A queued
 *     call counts as writing (not freed, no reply due: tx_end is unset)
 *     until its batch's write callback; a link that goes drops its queue.
 */
#include "replicafs/client.h"

#include <assert.h>
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "client/frame.h"
#include "common/auth.h"
#include "common/config.h"
#include "common/log.h"

#define PING_TIMEOUT_DEFAULT_MS 5000u
#define BACKOFF_MIN_MS 100u
#define BACKOFF_MAX_MS 5000u
#define HASH_MIN 64u
#define ENCODE_STACK 8192u /* every v1 request but its tail fits */

struct brick_conn;

struct link {
    uv_tcp_t tcp;            /* closed by link_drop(); link_close_cb frees */
    uv_connect_t creq;       /* pending until connect_cb */
    struct brick_conn *bc;   /* borrowed: bc waits for this link's close */
    struct frame_buf rx;     /* owned; freed in link_close_cb() */
    uint64_t tx_queued;      /* bytes ever handed to uv_write */
    struct call *pend_head;  /* encoded, not yet handed to uv_write */
    struct call **pend_tail; /* (invariant 9), linked by call->pnext */
    unsigned npend;
    bool dead;               /* uv_close called: callbacks are ignored */
};

/* One uv_write of the frames queued in one loop iteration (invariant 9). */
struct wbatch {
    uv_write_t wr;
    unsigned n;
    struct call *calls[];
};

struct call {
    uint64_t reqid;
    uint16_t op;
    brick_reply_cb cb;       /* called exactly once (invariant 3) */
    void *arg;               /* borrowed: the caller's */
    struct call *hnext;      /* hash chain in bc->buckets */
    struct call *prev, *next; /* bc->head list, in send order */
    struct link *link;       /* borrowed: the link written to */
    uint64_t tx_end;         /* link->tx_queued after this frame */
    uint64_t sent_us;        /* uv_hrtime() / 1000 when it was queued */
    bool outstanding;        /* in bc's table, callback not yet called */
    bool writing;            /* queued or written, uv_write callback not
                                yet called */
    struct call *pnext;      /* link->pend_head list while queued */
    const void *tail;        /* borrowed payload (invariant 5) */
    uint32_t tail_len;
    uint32_t enc_len;
    uint8_t enc[];           /* header and fields, without the tail */
};

struct brick_conn {
    uv_loop_t *loop;                  /* borrowed */
    unsigned brick_no;
    struct sockaddr_in addr;
    char volume[PROTO_NAME_MAX + 1];
    uint8_t key[RFS_KEY_SIZE];        /* wiped in conn_free() */
    struct brick_conn_opts opts;
    unsigned ping_timeout_ms;
    unsigned ping_interval_ms;
    unsigned connect_timeout_ms;

    enum brick_state state;
    bool closing;                     /* brick_conn_close() was called */
    void (*done)(void *);             /* from brick_conn_close() */
    void *done_arg;
    struct link *link;                /* owned via its handle; invariant 1 */
    uv_timer_t conn_timer;            /* connect timeout, or back-off */
    uv_timer_t ping_timer;            /* liveness, invariant 6 */
    uv_timer_t wait_timer;            /* brick_conn_wait_up() deadline */
    unsigned nhandles;                /* open handles; conn_free() at 0 */
    uv_prepare_t flush;               /* writes the queued frames, inv. 9 */

    uint64_t next_reqid;
    struct call **buckets;            /* owned; nbuckets is a power of 2 */
    size_t nbuckets;
    size_t ncalls;
    struct call *head, *tail;         /* outstanding calls, send order */

    uint8_t cnonce[PROTO_NONCE_SIZE]; /* this attempt's HELLO nonce */
    uint32_t hello_version;           /* from HELLO, until UP */
    uint32_t version;                 /* 0 unless UP */
    uint64_t uuid_hi, uuid_lo;

    uint64_t last_rx_ms;              /* loop time of the last bytes read */
    uint64_t busy_since_ms;           /* loop time ncalls went 0 -> 1 */
    uint64_t up_since_ms;
    bool ping_inflight;
    uint64_t fresh_us;                /* sent_us of the newest call whose
                                         reply arrived on this link; 0
                                         when the link is new */
    uint64_t ping_stamp;              /* of the ping in flight, us */
    uint64_t srtt_us;
    unsigned backoff_ms;              /* next back-off delay */
    int last_error;
    unsigned auth_failures;           /* for brick_conn_wait_up() */
    bool wait_expired;
};

/* Every reply and event struct, so one stack buffer can hold any. */
union any_msg {
    struct hello_rep hello;
    struct auth_rep auth;
    struct ping_rep ping;
    struct attr_rep attr;
    struct create_rep create;
    struct readlink_rep readlink;
    struct read_rep read;
    struct write_rep write;
    struct readdir_rep readdir;
    struct statfs_rep statfs;
    struct xattrop_rep xattrop;
    struct heal_list_rep heal_list;
    struct inval_event inval;
};

static void link_down(struct brick_conn *bc, int err);
static void conn_timer_cb(uv_timer_t *t);
static void connect_start(struct brick_conn *bc);
static void ping_rearm(struct brick_conn *bc);

static const char *const state_names[] = {
    [BRICK_IDLE] = "idle",         [BRICK_CONNECTING] = "connecting",
    [BRICK_HANDSHAKE] = "handshake", [BRICK_UP] = "up",
    [BRICK_DOWN] = "down",         [BRICK_CLOSED] = "closed",
};

const char *brick_state_name(enum brick_state st)
{
    if ((unsigned)st >= sizeof(state_names) / sizeof(state_names[0]))
        return "?";
    return state_names[st];
}

__attribute__((unused)) /* only in assert(), gone under NDEBUG */
static bool conn_state_ok(const struct brick_conn *bc)
{
    bool linked = bc->state == BRICK_CONNECTING ||
                  bc->state == BRICK_HANDSHAKE || bc->state == BRICK_UP;

    if ((bc->link != NULL) != linked)
        return false;
    if (bc->ncalls > 0 && !bc->link)
        return false;
    if ((bc->ncalls == 0) != (bc->head == NULL))
        return false;
    return bc->closing == (bc->state == BRICK_CLOSED);
}

/* Tell the owner; not after brick_conn_close() (its arg may be gone). */
static void notify(struct brick_conn *bc)
{
    if (bc->opts.on_state && !bc->closing)
        bc->opts.on_state(bc, bc->state, bc->opts.arg);
}

/* ---- the call table ---- */

static size_t bucket_of(const struct brick_conn *bc, uint64_t reqid)
{
    return (size_t)(reqid * 0x9e3779b97f4a7c15ull >> 32) & (bc->nbuckets - 1);
}

/* Double the table when it gets crowded; failure only costs speed. */
static void table_grow(struct brick_conn *bc)
{
    size_t n = bc->nbuckets * 2;
    struct call **nb = calloc(n, sizeof(*nb));

    if (!nb)
        return;
    free(bc->buckets);
    bc->buckets = nb;
    bc->nbuckets = n;
    for (struct call *c = bc->head; c; c = c->next) {
        size_t b = bucket_of(bc, c->reqid);

        c->hnext = nb[b];
        nb[b] = c;
    }
}

static void table_add(struct brick_conn *bc, struct call *c)
{
    size_t b;

    if (bc->ncalls == 0) {
        /* Silence is counted from now (invariant 6): the loop may not
         * have run for a while, so refresh its idea of "now". */
        uv_update_time(bc->loop);
        bc->busy_since_ms = uv_now(bc->loop);
    }
    c->prev = bc->tail;
    c->next = NULL;
    if (bc->tail)
        bc->tail->next = c;
    else
        bc->head = c;
    bc->tail = c;
    bc->ncalls++;
    c->outstanding = true;
    if (bc->ncalls > bc->nbuckets)
        table_grow(bc); /* relinks c too: it is on the list already */
    else {
        b = bucket_of(bc, c->reqid);
        c->hnext = bc->buckets[b];
        bc->buckets[b] = c;
    }
}

static struct call *table_find(const struct brick_conn *bc, uint64_t reqid)
{
    struct call *c = bc->buckets[bucket_of(bc, reqid)];

    while (c && c->reqid != reqid)
        c = c->hnext;
    return c;
}

static void table_del(struct brick_conn *bc, struct call *c)
{
    struct call **pp = &bc->buckets[bucket_of(bc, c->reqid)];

    while (*pp != c)
        pp = &(*pp)->hnext;
    *pp = c->hnext;
    if (c->prev)
        c->prev->next = c->next;
    else
        bc->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        bc->tail = c->prev;
    bc->ncalls--;
}

/* Give c its one callback (invariant 3) and free it if its write is done. */
static void call_finish(struct call *c, int status, const void *rep)
{
    c->outstanding = false;
    c->cb(status, rep, c->arg);
    if (!c->writing)
        free(c);
}

/* Fail every outstanding call.  The list is detached first, so a callback
 * that closes bc or makes new calls cannot disturb the walk. */
static void fail_all(struct brick_conn *bc, int err)
{
    struct call *c = bc->head;

    bc->head = bc->tail = NULL;
    bc->ncalls = 0;
    memset(bc->buckets, 0, bc->nbuckets * sizeof(*bc->buckets));
    while (c) {
        struct call *next = c->next;

        call_finish(c, err, NULL);
        c = next;
    }
}

/* ---- sending ---- */

static void batch_write_cb(uv_write_t *wr, int status)
{
    struct wbatch *b = wr->data;
    struct link *l = b->calls[0]->link;

    /* writing stays set across link_down(), which may finish the calls. */
    if (status < 0 && status != UV_ECANCELED && !l->dead)
        link_down(l->bc, status);
    for (unsigned i = 0; i < b->n; i++) {
        struct call *c = b->calls[i];

        c->writing = false;
        if (!c->outstanding)
            free(c);
    }
    free(b);
}

/* Hand every frame queued on the link to one uv_write (invariant 9). */
static void link_flush(struct link *l)
{
    struct wbatch *b;
    uv_buf_t *bufs;
    unsigned nb = 0, i = 0;
    int rc;

    if (!l->npend)
        return;
    b = malloc(sizeof(*b) + l->npend * sizeof(b->calls[0]) +
               2 * l->npend * sizeof(*bufs));
    if (!b) {
        link_down(l->bc, -ENOMEM);
        return;
    }
    bufs = (uv_buf_t *)(void *)&b->calls[l->npend];
    for (struct call *c = l->pend_head; c; c = c->pnext) {
        b->calls[i++] = c;
        bufs[nb++] = uv_buf_init((char *)c->enc, c->enc_len);
        if (c->tail_len)
            bufs[nb++] = uv_buf_init((char *)(uintptr_t)c->tail, c->tail_len);
        l->tx_queued += (uint64_t)c->enc_len + c->tail_len;
        c->tx_end = l->tx_queued;
    }
    b->n = i;
    b->wr.data = b;
    /* Silence counts from when a brick could first have answered
     * (invariant 6): for calls that were only queued, that is now. */
    if (l->bc->ncalls == l->npend)
        l->bc->busy_since_ms = uv_now(l->bc->loop);
    l->pend_head = NULL;
    l->pend_tail = &l->pend_head;
    l->npend = 0;
    rc = uv_write(&b->wr, (uv_stream_t *)&l->tcp, bufs, nb, batch_write_cb);
    if (rc < 0) {
        /* Not written: the calls are freed when link_down fails them. */
        for (i = 0; i < b->n; i++)
            b->calls[i]->writing = false;
        free(b);
        link_down(l->bc, rc);
    }
}

static void flush_cb(uv_prepare_t *h)
{
    struct brick_conn *bc = h->data;

    uv_prepare_stop(h);
    if (bc->link && !bc->link->dead)
        link_flush(bc->link);
}

/* Forget the frames not written yet: the link is going (invariant 9). */
static void link_unqueue(struct link *l)
{
    struct call *c = l->pend_head;

    l->pend_head = NULL;
    l->pend_tail = &l->pend_head;
    l->npend = 0;
    while (c) {
        struct call *next = c->pnext;

        c->writing = false;
        if (!c->outstanding)
            free(c);
        c = next;
    }
}

/*
 * Encode one request, queue it on the current link for this iteration's
 * write, and enter it in the table.  Returns 0 (cb will be called once),
 * -ENOMEM, -EINVAL (does not encode) or -ENOTCONN (no link).
 */
static int call_send(struct brick_conn *bc, uint16_t op, const void *req,
                     brick_reply_cb cb, void *arg)
{
    uint8_t stack[ENCODE_STACK], *enc = stack, *heap = NULL;
    struct proto_hdr h = {.op = op, .kind = PROTO_REQ, .flags = 0};
    struct proto_bytes tail = {NULL, 0};
    struct link *l = bc->link;
    struct call *c;
    ssize_t n;
    int rc;

    if (!l)
        return -ENOTCONN;
    h.reqid = bc->next_reqid++;
    n = proto_encode(enc, sizeof(stack), &h, 0, req, &tail);
    if (n == -ENOSPC) {
        size_t bound = proto_encode_bound(op, PROTO_REQ);

        heap = malloc(bound);
        if (!heap)
            return -ENOMEM;
        enc = heap;
        n = proto_encode(enc, bound, &h, 0, req, &tail);
    }
    if (n < 0) {
        rc = n == -ENOSPC ? -EINVAL : (int)n;
        goto out_free_heap;
    }
    c = malloc(sizeof(*c) + (size_t)n);
    if (!c) {
        rc = -ENOMEM;
        goto out_free_heap;
    }
    memcpy(c->enc, enc, (size_t)n);
    c->enc_len = (uint32_t)n;
    c->reqid = h.reqid;
    c->op = op;
    c->cb = cb;
    c->arg = arg;
    c->link = l;
    /* The payload goes out from the caller's memory (invariant 5). */
    c->tail = tail.data;
    c->tail_len = tail.len;
    c->tx_end = UINT64_MAX; /* not written yet: no reply can be due */
    c->sent_us = uv_hrtime() / 1000;
    c->writing = true;
    c->pnext = NULL;
    *l->pend_tail = c;
    l->pend_tail = &c->pnext;
    if (l->npend++ == 0)
        uv_prepare_start(&bc->flush, flush_cb);
    table_add(bc, c);
    rc = 0;
out_free_heap:
    free(heap);
    return rc;
}

/* ---- receiving ---- */

/* Offset of the bytes field in op's reply struct, or -1 if it has none. */
static ssize_t reply_bytes_offset(uint16_t op)
{
    switch (op) {
    case OP_READ: return offsetof(struct read_rep, data);
    case OP_READDIR: return offsetof(struct readdir_rep, entries);
    case OP_HEAL_LIST: return offsetof(struct heal_list_rep, ids);
    default: return -1;
    }
}

static int dispatch_reply(struct brick_conn *bc, struct link *l,
                          const struct proto_hdr *h, const uint8_t *body,
                          size_t len)
{
    size_t msz = proto_msg_size(h->op, PROTO_REPLY);
    struct call *c = table_find(bc, h->reqid);
    union any_msg msg;
    uint32_t status = 0;
    int rc;

    if (!c || c->op != h->op || msz == 0 || msz > sizeof(msg))
        return -EPROTO;
    /* A reply to bytes we have not sent yet (invariant 5). */
    if (c->writing &&
        l->tx_queued - uv_stream_get_write_queue_size((uv_stream_t *)&l->tcp) <
            c->tx_end)
        return -EPROTO;
    rc = proto_decode(h, body, len, &status, &msg);
    if (rc < 0 && rc != -EINVAL)
        return -EPROTO;
    table_del(bc, c);
    if (rc == -EINVAL) {
        /* A well-framed reply with a bad name: that call fails, the link
         * stays. */
        call_finish(c, -EIO, NULL);
        return 0;
    }
    /* Everything the brick sent before this reply has been read: the
     * lease rule (volume_int.h) needs the newest such request. */
    if (c->sent_us > bc->fresh_us)
        bc->fresh_us = c->sent_us;
    rc = proto_errno_from_status(status);
    call_finish(c, rc, rc == 0 ? &msg : NULL);
    return 0;
}

static int dispatch_event(struct brick_conn *bc, const struct proto_hdr *h,
                          const uint8_t *body, size_t len)
{
    size_t msz = proto_msg_size(h->op, PROTO_EVENT);
    union any_msg msg;
    uint32_t status = 0;

    if (bc->state != BRICK_UP || h->reqid != 0 || msz == 0 ||
        msz > sizeof(msg))
        return -EPROTO;
    if (proto_decode(h, body, len, &status, &msg) < 0)
        return -EPROTO;
    if (bc->opts.on_event)
        bc->opts.on_event(bc, h->op, &msg, bc->opts.arg);
    return 0;
}

static void link_alloc_cb(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    struct link *l = handle->data;
    uint8_t *base;
    size_t len;

    (void)suggested;
    if (l->dead || frame_buf_space(&l->rx, &base, &len) < 0) {
        *buf = uv_buf_init(NULL, 0); /* read_cb gets UV_ENOBUFS */
        return;
    }
    *buf = uv_buf_init((char *)base, len > UINT32_MAX ? UINT32_MAX : len);
}

static void link_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct link *l = s->data;
    struct brick_conn *bc = l->bc;
    struct proto_hdr h = {0};
    const uint8_t *body;
    size_t len;
    int rc;

    (void)buf;
    if (l->dead || nread == 0)
        return;
    if (nread < 0) {
        link_down(bc, nread == UV_EOF ? -ECONNRESET : (int)nread);
        return;
    }
    frame_buf_commit(&l->rx, (size_t)nread);
    bc->last_rx_ms = uv_now(bc->loop);
    while ((rc = frame_buf_next(&l->rx, &h, &body, &len)) > 0) {
        if (h.kind == PROTO_REPLY)
            rc = dispatch_reply(bc, l, &h, body, len);
        else if (h.kind == PROTO_EVENT)
            rc = dispatch_event(bc, &h, body, len);
        else
            rc = -EPROTO; /* a brick never sends requests */
        if (l->dead) /* a callback closed bc or took the link down */
            return;
        if (rc < 0)
            break;
    }
    if (rc < 0) {
        log_warn("brick %u: protocol error from brick (op %u)", bc->brick_no,
                 (unsigned)h.op);
        link_down(bc, -EPROTO);
    }
}

/* ---- link lifecycle ---- */

/* The last handle is closed: free bc, then tell the owner. */
static void conn_free(struct brick_conn *bc)
{
    void (*done)(void *) = bc->done;
    void *arg = bc->done_arg;

    assert(bc->closing && bc->ncalls == 0 && !bc->link);
    explicit_bzero(bc->key, sizeof(bc->key));
    free(bc->buckets);
    free(bc);
    if (done)
        done(arg);
}

static void link_close_cb(uv_handle_t *handle)
{
    struct link *l = handle->data;
    struct brick_conn *bc = l->bc;

    frame_buf_fini(&l->rx);
    free(l);
    if (--bc->nhandles == 0)
        conn_free(bc);
}

static void timer_close_cb(uv_handle_t *handle)
{
    struct brick_conn *bc = handle->data;

    if (--bc->nhandles == 0)
        conn_free(bc);
}

/* Detach and close the current link.  Its pending callbacks (connect,
 * writes, close) still run and see l->dead. */
static void link_drop(struct brick_conn *bc)
{
    struct link *l = bc->link;

    bc->link = NULL;
    l->dead = true;
    link_unqueue(l);
    uv_close((uv_handle_t *)&l->tcp, link_close_cb);
}

/* Arm conn_timer for the next attempt and double the delay (invariant 7). */
static void schedule_retry(struct brick_conn *bc)
{
    unsigned delay = bc->backoff_ms;

    bc->backoff_ms = delay * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : delay * 2;
    uv_timer_stop(&bc->conn_timer);
    uv_timer_start(&bc->conn_timer, conn_timer_cb, delay, 0);
}

/* CONNECTING/HANDSHAKE/UP -> DOWN (invariant 7 for the delay). */
static void link_down(struct brick_conn *bc, int err)
{
    uint64_t now = uv_now(bc->loop);

    assert(bc->link && !bc->closing);
    if (bc->state == BRICK_UP && now - bc->up_since_ms >= BACKOFF_MAX_MS)
        bc->backoff_ms = BACKOFF_MIN_MS;
    log_debug("brick %u: %s -> down: %s", bc->brick_no,
              brick_state_name(bc->state), strerror(-err));
    bc->last_error = err;
    if (err == -EACCES) {
        bc->auth_failures++;
        log_warn("brick %u: authentication failed (wrong key or volume?)",
                 bc->brick_no);
    }
    link_drop(bc);
    bc->state = BRICK_DOWN;
    bc->version = 0;
    bc->fresh_us = 0;
    bc->ping_inflight = false;
    uv_timer_stop(&bc->ping_timer);
    schedule_retry(bc);
    fail_all(bc, -ENOTCONN); /* the socket is closed first (invariant 5) */
    if (bc->closing) /* a callback closed bc */
        return;
    assert(conn_state_ok(bc));
    notify(bc);
}

static void ping_cb(int status, const void *rep, void *arg)
{
    struct brick_conn *bc = arg;
    const struct ping_rep *pr = rep;

    bc->ping_inflight = false;
    if (status < 0 || bc->state != BRICK_UP)
        return;
    if (pr->stamp == bc->ping_stamp) {
        uint64_t now = uv_hrtime() / 1000;
        uint64_t rtt = now > pr->stamp ? now - pr->stamp : 0;

        /* Smoothed like TCP's SRTT: 7/8 old + 1/8 new. */
        bc->srtt_us = bc->srtt_us ? (7 * bc->srtt_us + rtt) / 8 : rtt;
        if (bc->srtt_us == 0)
            bc->srtt_us = 1; /* 0 means "no sample yet" */
    }
    ping_rearm(bc);
}

static void send_ping(struct brick_conn *bc)
{
    struct ping_req req = {.stamp = uv_hrtime() / 1000};

    /* Failure (-ENOMEM) is retried on the next tick. */
    if (call_send(bc, OP_PING, &req, ping_cb, bc) == 0) {
        bc->ping_stamp = req.stamp;
        bc->ping_inflight = true;
    }
}

/* Bytes waiting in the socket prove the brick is alive even if the loop has
 * not read them yet (invariant 6). */
static bool socket_has_bytes(struct link *l)
{
    uv_os_fd_t fd;
    int n = 0;

    if (uv_fileno((uv_handle_t *)&l->tcp, &fd) < 0)
        return false;
    return ioctl(fd, FIONREAD, &n) == 0 && n > 0;
}

static void ping_timer_cb(uv_timer_t *t)
{
    struct brick_conn *bc = t->data;
    uint64_t now = uv_now(bc->loop);
    uint64_t quiet = bc->last_rx_ms > bc->busy_since_ms ? bc->last_rx_ms
                                                         : bc->busy_since_ms;

    assert(bc->state == BRICK_UP);
    if (bc->link->npend) {
        /* Timers run before this iteration's flush: what is queued has
         * not been asked yet (invariant 9). */
        link_flush(bc->link);
        if (bc->state != BRICK_UP)
            return;
        quiet = bc->last_rx_ms > bc->busy_since_ms ? bc->last_rx_ms
                                                   : bc->busy_since_ms;
    }
    if (bc->ncalls > 0 && now - quiet >= bc->ping_timeout_ms) {
        if (!socket_has_bytes(bc->link)) {
            log_warn("brick %u: silent for %u ms, declaring it down",
                     bc->brick_no, (unsigned)(now - quiet));
            link_down(bc, -ETIMEDOUT);
            return;
        }
        bc->last_rx_ms = now;
    }
    if (!bc->ping_inflight && now - bc->last_rx_ms >= bc->ping_interval_ms)
        send_ping(bc);
    ping_rearm(bc);
}

/* Arm ping_timer for the next ping or the down deadline (invariant 6). */
static void ping_rearm(struct brick_conn *bc)
{
    uint64_t now = uv_now(bc->loop);
    uint64_t deadline = UINT64_MAX;
    uint64_t quiet;

    if (!bc->ping_inflight)
        deadline = bc->last_rx_ms + bc->ping_interval_ms;
    if (bc->ncalls > 0) {
        quiet = bc->last_rx_ms > bc->busy_since_ms ? bc->last_rx_ms
                                                    : bc->busy_since_ms;
        if (quiet + bc->ping_timeout_ms < deadline)
            deadline = quiet + bc->ping_timeout_ms;
    }
    if (deadline == UINT64_MAX) /* ping in flight, nothing outstanding? */
        deadline = now + bc->ping_interval_ms;
    uv_timer_start(&bc->ping_timer, ping_timer_cb,
                   deadline > now ? deadline - now : 1, 0);
}

/* HANDSHAKE -> UP. */
static void link_up(struct brick_conn *bc)
{
    uv_timer_stop(&bc->conn_timer);
    bc->state = BRICK_UP;
    bc->version = bc->hello_version;
    bc->up_since_ms = uv_now(bc->loop);
    bc->last_error = 0;
    log_debug("brick %u: up (protocol %u)", bc->brick_no, bc->version);
    send_ping(bc); /* a first RTT sample at once */
    ping_rearm(bc);
    assert(conn_state_ok(bc));
    notify(bc);
}

static void auth_cb(int status, const void *rep, void *arg)
{
    struct brick_conn *bc = arg;
    const struct auth_rep *ar = rep;

    if (status == -ENOTCONN && (!bc->link || bc->closing))
        return; /* failed by link_down() or close: nothing to do */
    if (status < 0) {
        link_down(bc, status);
        return;
    }
    bc->uuid_hi = ar->brick_uuid_hi;
    bc->uuid_lo = ar->brick_uuid_lo;
    link_up(bc);
}

static void hello_cb(int status, const void *rep, void *arg)
{
    struct brick_conn *bc = arg;
    const struct hello_rep *hr = rep;
    struct auth_req areq;
    uint8_t mac[PROTO_MAC_SIZE];
    int rc;

    if (status == -ENOTCONN && (!bc->link || bc->closing))
        return;
    if (status < 0) {
        link_down(bc, status);
        return;
    }
    if (hr->version < PROTO_VERSION_MIN || hr->version > PROTO_VERSION_MAX) {
        link_down(bc, -EPROTONOSUPPORT);
        return;
    }
    if (hr->brick != bc->brick_no) {
        log_warn("brick %u: the daemon at this address is brick %u",
                 bc->brick_no, hr->brick);
        link_down(bc, -EPROTO);
        return;
    }
    auth_brick_mac(bc->key, bc->cnonce, hr->nonce, bc->volume, mac);
    if (!auth_mac_equal(mac, hr->mac)) {
        link_down(bc, -EACCES);
        return;
    }
    bc->hello_version = hr->version;
    auth_client_mac(bc->key, hr->nonce, bc->cnonce, bc->volume, areq.mac);
    rc = call_send(bc, OP_AUTH, &areq, auth_cb, bc);
    explicit_bzero(mac, sizeof(mac));
    if (rc < 0)
        link_down(bc, rc);
}

/* CONNECTING -> HANDSHAKE. */
static void connect_cb(uv_connect_t *req, int status)
{
    struct link *l = req->data;
    struct brick_conn *bc = l->bc;
    struct hello_req hreq;
    unsigned ka_s = bc->ping_timeout_ms / 1000;
    int rc;

    if (l->dead)
        return;
    if (status < 0) {
        link_down(bc, status);
        return;
    }
    /* Small requests must not wait for Nagle; keepalive catches a peer
     * that vanished while the link is idle and pings are not running. */
    uv_tcp_nodelay(&l->tcp, 1);
    uv_tcp_keepalive(&l->tcp, 1, ka_s ? ka_s : 1);
    rc = uv_read_start((uv_stream_t *)&l->tcp, link_alloc_cb, link_read_cb);
    if (rc < 0) {
        link_down(bc, rc);
        return;
    }
    bc->state = BRICK_HANDSHAKE;
    bc->last_rx_ms = uv_now(bc->loop);
    memset(&hreq, 0, sizeof(hreq));
    hreq.magic = PROTO_MAGIC;
    hreq.version_min = PROTO_VERSION_MIN;
    hreq.version_max = PROTO_VERSION_MAX;
    auth_nonce(bc->cnonce);
    memcpy(hreq.nonce, bc->cnonce, sizeof(hreq.nonce));
    memcpy(hreq.volume, bc->volume, sizeof(hreq.volume));
    rc = call_send(bc, OP_HELLO, &hreq, hello_cb, bc);
    if (rc < 0) {
        link_down(bc, rc);
        return;
    }
    notify(bc);
}

static void conn_timer_cb(uv_timer_t *t)
{
    struct brick_conn *bc = t->data;

    if (bc->state == BRICK_DOWN)
        connect_start(bc);
    else
        link_down(bc, -ETIMEDOUT); /* connect or handshake took too long */
}

/* IDLE/DOWN -> CONNECTING. */
static void connect_start(struct brick_conn *bc)
{
    struct link *l = calloc(1, sizeof(*l));
    int rc;

    assert(!bc->link && !bc->closing);
    bc->state = BRICK_CONNECTING;
    bc->hello_version = 0;
    uv_timer_stop(&bc->conn_timer);
    uv_timer_start(&bc->conn_timer, conn_timer_cb, bc->connect_timeout_ms, 0);
    if (!l) {
        rc = -ENOMEM;
        goto err_retry;
    }
    frame_buf_init(&l->rx);
    l->pend_tail = &l->pend_head;
    l->bc = bc;
    l->tcp.data = l;
    l->creq.data = l;
    rc = uv_tcp_init(bc->loop, &l->tcp);
    if (rc < 0)
        goto err_free_link;
    bc->nhandles++;
    bc->link = l;
    rc = uv_tcp_connect(&l->creq, &l->tcp, (const struct sockaddr *)&bc->addr,
                        connect_cb);
    if (rc < 0) {
        link_down(bc, rc);
        return;
    }
    assert(conn_state_ok(bc));
    notify(bc);
    return;
err_free_link:
    free(l);
err_retry:
    bc->last_error = rc;
    bc->state = BRICK_DOWN;
    schedule_retry(bc);
    notify(bc);
}

/* ---- public API ---- */

/* libuv writes with writev(2), so a brick that died while a request was
 * going out would kill the whole process with SIGPIPE.  Ignore it unless
 * the program already decided what SIGPIPE does. */
static void ignore_sigpipe(void)
{
    struct sigaction old;

    if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL &&
        !(old.sa_flags & SA_SIGINFO))
        signal(SIGPIPE, SIG_IGN);
}

int brick_conn_new(uv_loop_t *loop, const struct vol_config *vol,
                   unsigned brick_no, const struct brick_conn_opts *opts,
                   struct brick_conn **out)
{
    struct brick_conn *bc;

    if (!loop || !vol || brick_no < 1 || brick_no > vol->nbricks ||
        brick_no > PROTO_MAX_BRICKS)
        return -EINVAL;
    ignore_sigpipe();
    bc = calloc(1, sizeof(*bc));
    if (!bc)
        return -ENOMEM;
    bc->nbuckets = HASH_MIN;
    bc->buckets = calloc(bc->nbuckets, sizeof(*bc->buckets));
    if (!bc->buckets) {
        free(bc);
        return -ENOMEM;
    }
    bc->loop = loop;
    bc->brick_no = brick_no;
    bc->addr = vol->bricks[brick_no - 1].addr;
    memcpy(bc->volume, vol->name, sizeof(bc->volume));
    bc->volume[PROTO_NAME_MAX] = '\0';
    memcpy(bc->key, vol->key, sizeof(bc->key));
    if (opts)
        bc->opts = *opts;
    bc->ping_timeout_ms = bc->opts.ping_timeout_ms ? bc->opts.ping_timeout_ms
                                                   : PING_TIMEOUT_DEFAULT_MS;
    bc->ping_interval_ms = bc->ping_timeout_ms / 3;
    if (bc->ping_interval_ms == 0)
        bc->ping_interval_ms = 1;
    bc->connect_timeout_ms = bc->opts.connect_timeout_ms
                                 ? bc->opts.connect_timeout_ms
                                 : bc->ping_timeout_ms;
    bc->state = BRICK_IDLE;
    bc->next_reqid = 1;
    bc->backoff_ms = BACKOFF_MIN_MS;
    /* uv_timer_init cannot fail on Unix. */
    uv_timer_init(loop, &bc->conn_timer);
    uv_timer_init(loop, &bc->ping_timer);
    uv_timer_init(loop, &bc->wait_timer);
    uv_prepare_init(loop, &bc->flush);
    bc->conn_timer.data = bc->ping_timer.data = bc->wait_timer.data = bc;
    bc->flush.data = bc;
    bc->nhandles = 4;
    *out = bc;
    return 0;
}

void brick_conn_start(struct brick_conn *bc)
{
    if (bc->state == BRICK_IDLE && !bc->closing)
        connect_start(bc);
}

void brick_conn_close(struct brick_conn *bc, void (*done)(void *), void *arg)
{
    assert(!bc->closing); /* closing twice is the owner's bug */
    bc->closing = true;
    bc->done = done;
    bc->done_arg = arg;
    bc->state = BRICK_CLOSED;
    bc->version = 0;
    if (bc->link)
        link_drop(bc);
    uv_close((uv_handle_t *)&bc->conn_timer, timer_close_cb);
    uv_close((uv_handle_t *)&bc->ping_timer, timer_close_cb);
    uv_close((uv_handle_t *)&bc->wait_timer, timer_close_cb);
    uv_close((uv_handle_t *)&bc->flush, timer_close_cb);
    fail_all(bc, -ENOTCONN);
}

int brick_call(struct brick_conn *bc, uint16_t op, const void *req,
               brick_reply_cb cb, void *arg)
{
    if (bc->state != BRICK_UP)
        return -ENOTCONN;
    if (!cb || !req || op == OP_HELLO || op == OP_AUTH)
        return -EINVAL; /* the handshake is ours */
    return call_send(bc, op, req, cb, arg);
}

enum brick_state brick_conn_state(const struct brick_conn *bc)
{
    return bc->state;
}

unsigned brick_conn_no(const struct brick_conn *bc)
{
    return bc->brick_no;
}

uint64_t brick_conn_rtt_us(const struct brick_conn *bc)
{
    return bc->srtt_us;
}

uint64_t brick_conn_fresh_us(const struct brick_conn *bc)
{
    return bc->fresh_us;
}

uint32_t brick_conn_version(const struct brick_conn *bc)
{
    return bc->state == BRICK_UP ? bc->version : 0;
}

void brick_conn_uuid(const struct brick_conn *bc, uint64_t *hi, uint64_t *lo)
{
    *hi = bc->uuid_hi;
    *lo = bc->uuid_lo;
}

int brick_conn_last_error(const struct brick_conn *bc)
{
    return bc->last_error;
}

size_t brick_conn_outstanding(const struct brick_conn *bc)
{
    return bc->ncalls;
}

/* ---- sequential helpers ---- */

static void wait_timer_cb(uv_timer_t *t)
{
    struct brick_conn *bc = t->data;

    bc->wait_expired = true;
}

int brick_conn_wait_up(struct brick_conn *bc, unsigned timeout_ms)
{
    unsigned fails = bc->auth_failures;

    if (bc->closing)
        return -ENOTCONN;
    brick_conn_start(bc);
    bc->wait_expired = false;
    uv_timer_start(&bc->wait_timer, wait_timer_cb, timeout_ms, 0);
    while (bc->state != BRICK_UP && !bc->wait_expired &&
           bc->auth_failures == fails)
        uv_run(bc->loop, UV_RUN_ONCE);
    uv_timer_stop(&bc->wait_timer);
    if (bc->state == BRICK_UP)
        return 0;
    return bc->auth_failures != fails ? -EACCES : -ETIMEDOUT;
}

struct sync_call {
    bool done;
    int status;
    uint16_t op;
    void *rep;    /* borrowed: the caller's, may be NULL */
    void **frame; /* borrowed: the caller's, may be NULL */
};

static void sync_cb(int status, const void *rep, void *arg)
{
    struct sync_call *s = arg;
    ssize_t boff = reply_bytes_offset(s->op);
    struct proto_bytes *b;
    void *copy = NULL;

    s->done = true;
    s->status = status;
    if (status < 0 || !s->rep)
        return;
    memcpy(s->rep, rep, proto_msg_size(s->op, PROTO_REPLY));
    if (boff < 0) {
        if (s->frame)
            *s->frame = NULL;
        return;
    }
    b = (struct proto_bytes *)((uint8_t *)s->rep + boff);
    if (s->frame) {
        /* The receive buffer is reused at once: the caller gets a copy. */
        copy = malloc(b->len ? b->len : 1);
        if (!copy) {
            s->status = -ENOMEM;
            return;
        }
        if (b->len)
            memcpy(copy, b->data, b->len);
        b->data = copy;
        *s->frame = copy;
    } else {
        b->data = NULL;
        b->len = 0;
    }
}

int brick_call_sync(struct brick_conn *bc, uint16_t op, const void *req,
                    void *rep, void **frame)
{
    struct sync_call s = {.op = op, .rep = rep, .frame = frame};
    int rc;

    rc = brick_call(bc, op, req, sync_cb, &s);
    if (rc < 0)
        return rc;
    /* Invariant 1 of client.h ends this loop: a reply, or -ENOTCONN once
     * the link is declared down. */
    while (!s.done)
        uv_run(bc->loop, UV_RUN_ONCE);
    return s.status;
}
