/*
 * Client connections: framing, handshake, flow control, replies.
 *
 * States (which function moves it):
 *
 *   HELLO --do_hello: ok--> AUTH --do_auth: MAC ok--> READY
 *     |                      |                          |
 *     |  other frame, bad frame, bad MAC, wrong volume  | server_stop()
 *     +----------------------+--> CLOSING               v
 *                               (conn_close or        DRAINING --idle--> CLOSING
 *                                close_after_flush)
 *   CLOSING --close cb + no request in flight--> freed (conn_maybe_free)
 *
 * Framing.  The receive buffer holds whole frames plus one partial frame.
 * alloc_cb sizes it so the frame being received fits exactly, so a large
 * WRITE frame arrives alone in its buffer; process_frames then hands that
 * buffer to the request (no copy) instead of copying the frame out.
 *
 * Invariants:
 *  1. Nothing but HELLO then AUTH is processed before READY; any other frame
 *     closes the connection.
 *  2. A header with len < PROTO_HDR_SIZE or > PROTO_MAX_FRAME, nonzero
 *     flags, a kind other than request, or a body proto_decode() calls
 *     -EPROTO closes the connection; the daemon serves everyone else on.
 *  3. Flow control: while nreqs >= max_reqs or req_bytes + wq_bytes >=
 *     max_bytes, no frame is processed and the socket is not read (so one
 *     client cannot make the daemon buffer without bound).
 *  4. A conn is freed only when its handle is closed, no request of it is in
 *     flight (replies to a closed conn are dropped, not written) and no
 *     frame processing is on the stack (in_feed).
 *  5. Locks of a conn are released as soon as it starts closing.
 *  6. Its pins are dropped then, and again when it is freed: a request
 *     still in flight may pin after the first drop.
 *  7. Replies are not written one by one: conn_send() queues them on
 *     outq and the server's flush handle (a uv_prepare: it runs before the
 *     loop next waits for I/O) hands each conn's queue to one uv_write, a
 *     writev(2) of many frames.  On loopback each write costs the whole
 *     TCP receive path and a wake-up of the reader, so replies made in the
 *     same iteration share them (docs/performance.md, finding 8).  Queued
 *     replies count in nwrites and wq_bytes like written ones; a conn that
 *     closes drops its queue, one that closes after a flush writes it
 *     first.
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/auth.h"
#include "common/log.h"
#include "conn.h"
#include "req.h"
#include "server.h"

#define RBUF_MIN (64u * 1024)
#define STEAL_MIN (64u * 1024) /* frames this big are handed over, not copied */
#define HEAD_CAP_TAIL 256      /* encoded head of a reply sent with a tail */

struct wreq {
    struct list link; /* on c->outq until written (invariant 7) */
    void *tail;       /* owned: freed when written */
    const void *tail_data;
    uint32_t tail_len;
    uint32_t head_len;
    size_t bytes;
    uint8_t head[];
};

/* One uv_write of a conn's queued replies. */
struct wbatch {
    uv_write_t w;
    struct conn *c;
    unsigned n;
    struct wreq *reqs[];
};

static void process_frames(struct conn *c);
static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *b);
static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *b);

bool conn_is_open(const struct conn *c)
{
    return c->state == CONN_READY || c->state == CONN_DRAINING;
}

static bool over_limits(const struct conn *c)
{
    return c->nreqs >= c->srv->max_reqs ||
           c->req_bytes + c->wq_bytes >= c->srv->max_bytes;
}

static void conn_maybe_free(struct conn *c)
{
    struct server *srv = c->srv;

    if (!c->handle_closed || c->nreqs || c->nwrites || c->in_feed)
        return; /* invariant 4 */
    /* An OPEN or CREATE_OPEN that was on the store when the connection
     * began closing pinned its object after begin_close() dropped the
     * pins: drop those too, or they and their objects leak (invariant 6). */
    leases_conn_gone(srv, c);
    pins_drop_all(srv, &c->pins);
    list_del(&c->link);
    srv->nconns--;
    free(c->buf);
    free(c);
    server_poke(srv);
}

static void close_cb(uv_handle_t *h)
{
    struct conn *c = h->data;

    c->handle_closed = true;
    conn_maybe_free(c);
}

static void wreq_free(struct conn *c, struct wreq *wr)
{
    c->wq_bytes -= wr->bytes;
    c->nwrites--;
    free(wr->tail);
    free(wr);
}

/* Replies not handed to uv_write yet go nowhere (invariant 7). */
static void outq_drop(struct conn *c)
{
    while (!list_empty(&c->outq)) {
        struct wreq *wr = container_of(list_first(&c->outq), struct wreq,
                                       link);

        list_del(&wr->link);
        wreq_free(c, wr);
    }
    list_del(&c->flush_link);
}

static void outq_flush(struct conn *c);

/* Leave READY/DRAINING: invariant 5. */
static void begin_close(struct conn *c)
{
    enum conn_state was = c->state;

    c->state = CONN_CLOSING;
    outq_drop(c);
    if (c->reading && !c->fake)
        uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
    if (was == CONN_READY || was == CONN_DRAINING) {
        lockmgr_conn_gone(&c->srv->locks, c);
        leases_conn_gone(c->srv, c); /* before the pins: it drops some */
        pins_drop_all(c->srv, &c->pins); /* as if every OPEN was RELEASEd */
        /* That client may go on changing things on the other bricks.  One
         * that never changed anything here (status, verify, a reader) or
         * that cleared the mark as its last change (heal) is no sign. */
        if (!c->fake && !c->srv->stopping && c->changed)
            suspect_mark(c->srv, "lost a client");
    }
}

void conn_close(struct conn *c, const char *why)
{
    if (c->state == CONN_CLOSING)
        return;
    log_info("conn %llu (%s): closing: %s", (unsigned long long)c->cid,
             c->peer, why);
    begin_close(c);
    if (c->fake)
        return; /* freed by conn_free_fake(): its owner still holds it */
    uv_close((uv_handle_t *)&c->tcp, close_cb);
}

void conn_free_fake(struct conn *c)
{
    assert(c->fake);
    if (c->state != CONN_CLOSING)
        begin_close(c);
    c->handle_closed = true;
    conn_maybe_free(c);
}

static void shutdown_cb(uv_shutdown_t *s, int status)
{
    struct conn *c = s->data;

    (void)status;
    uv_close((uv_handle_t *)&c->tcp, close_cb);
}

/* Close after the replies already queued are written (error replies of the
 * handshake must reach the client to be useful). */
static void close_after_flush(struct conn *c, const char *why)
{
    if (c->state == CONN_CLOSING)
        return;
    log_info("conn %llu (%s): closing: %s", (unsigned long long)c->cid,
             c->peer, why);
    if (!c->fake) {
        outq_flush(c); /* handed to libuv: the shutdown waits for it */
        if (c->state == CONN_CLOSING)
            return; /* the write failed and closed it */
    }
    begin_close(c);
    if (c->fake)
        return;
    c->shut.data = c;
    if (uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, shutdown_cb) < 0)
        uv_close((uv_handle_t *)&c->tcp, close_cb);
}

static void maybe_finish_drain(struct conn *c)
{
    if (c->state == CONN_DRAINING && c->nreqs == 0 && c->nwrites == 0)
        conn_close(c, "server stopping");
}

void conn_drain(struct conn *c)
{
    if (c->state == CONN_CLOSING)
        return;
    if (c->state != CONN_READY) {
        conn_close(c, "server stopping");
        return;
    }
    lockmgr_conn_gone(&c->srv->locks, c); /* lock waits are not disk work */
    if (c->reading && !c->fake)
        uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
    c->state = CONN_DRAINING;
    maybe_finish_drain(c);
}

static void maybe_resume(struct conn *c)
{
    if (c->state != CONN_READY || c->in_feed || over_limits(c))
        return;
    if (!c->reading && !c->fake) {
        c->reading = true;
        uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
    }
    process_frames(c);
}

/* ---- writing ---- */

static void write_cb(uv_write_t *w, int status)
{
    struct wbatch *b = container_of(w, struct wbatch, w);
    struct conn *c = b->c;

    for (unsigned i = 0; i < b->n; i++)
        wreq_free(c, b->reqs[i]);
    free(b);
    if (status < 0 && status != UV_ECANCELED)
        conn_close(c, uv_strerror(status));
    maybe_finish_drain(c);
    maybe_resume(c);
    conn_maybe_free(c);
}

/* Hand c's queued replies to one uv_write (invariant 7). */
static void outq_flush(struct conn *c)
{
    struct wbatch *b;
    struct list *pos, *tmp;
    uv_buf_t *bufs;
    unsigned n = 0, nb = 0;
    int rc;

    list_del(&c->flush_link);
    list_for_each_safe(pos, tmp, &c->outq)
        n++;
    if (n == 0)
        return;
    b = malloc(sizeof(*b) + n * sizeof(b->reqs[0]) + 2 * n * sizeof(*bufs));
    if (!b) {
        conn_close(c, "no memory for a write");
        return;
    }
    bufs = (uv_buf_t *)(void *)&b->reqs[n];
    b->c = c;
    b->n = 0;
    list_for_each_safe(pos, tmp, &c->outq) {
        struct wreq *wr = container_of(pos, struct wreq, link);

        list_del(&wr->link);
        b->reqs[b->n++] = wr;
        bufs[nb++] = uv_buf_init((char *)wr->head, wr->head_len);
        if (wr->tail_len)
            bufs[nb++] = uv_buf_init((char *)(uintptr_t)wr->tail_data,
                                     wr->tail_len);
    }
    rc = uv_write(&b->w, (uv_stream_t *)&c->tcp, bufs, nb, write_cb);
    if (rc < 0) {
        for (unsigned i = 0; i < b->n; i++)
            wreq_free(c, b->reqs[i]);
        free(b);
        conn_close(c, uv_strerror(rc));
    }
}

void conn_flush_all(uv_prepare_t *h)
{
    struct server *srv = h->data;

    while (!list_empty(&srv->flushq))
        outq_flush(container_of(list_first(&srv->flushq), struct conn,
                                flush_link));
}

int conn_encode(struct conn *c, struct proto_hdr *h, uint32_t status,
                const void *msg, void *tail_owned, struct wreq **out)
{
    size_t cap = tail_owned ? HEAD_CAP_TAIL : proto_encode_bound(h->op, h->kind);
    struct proto_bytes tail = {NULL, 0};
    struct wreq *wr;
    ssize_t n;

    *out = NULL;
    if (c->state == CONN_CLOSING || c->fake) {
        free(tail_owned); /* nobody to send to */
        return c->fake ? 0 : -ENOTCONN;
    }
    wr = malloc(sizeof(*wr) + cap);
    if (!wr) {
        free(tail_owned);
        return -ENOMEM;
    }
    n = proto_encode(wr->head, cap, h, status, status ? NULL : msg,
                     tail_owned ? &tail : NULL);
    if (n < 0) {
        free(tail_owned);
        free(wr);
        return (int)n;
    }
    wr->tail = tail_owned;
    wr->tail_data = tail.data;
    wr->tail_len = tail.len;
    wr->head_len = (uint32_t)n;
    wr->bytes = (size_t)n + tail.len;
    *out = wr;
    return 0;
}

void conn_queue(struct conn *c, struct wreq *wr)
{
    if (!wr)
        return;
    if (c->state == CONN_CLOSING) { /* it closed while the reply waited */
        free(wr->tail);
        free(wr);
        return;
    }
    list_add_tail(&c->outq, &wr->link);
    if (list_empty(&c->flush_link))
        list_add_tail(&c->srv->flushq, &c->flush_link);
    c->wq_bytes += wr->bytes;
    c->nwrites++;
}

int conn_send(struct conn *c, struct proto_hdr *h, uint32_t status,
              const void *msg, void *tail_owned)
{
    struct wreq *wr;
    int rc = conn_encode(c, h, status, msg, tail_owned, &wr);

    if (rc == 0)
        conn_queue(c, wr);
    return rc;
}

static void send_error(struct conn *c, const struct proto_hdr *req, int rc)
{
    struct proto_hdr h = {.op = req->op, .kind = PROTO_REPLY,
                          .reqid = req->reqid};

    conn_send(c, &h, proto_status_from_errno(rc), NULL, NULL);
}

void conn_req_done(struct conn *c, size_t cost)
{
    assert(c->nreqs > 0 && c->req_bytes >= cost);
    c->nreqs--;
    c->req_bytes -= cost;
    maybe_finish_drain(c);
    maybe_resume(c);
    conn_maybe_free(c);
}

/* ---- handshake ---- */

static void do_hello(struct conn *c, const struct proto_hdr *hdr,
                     const uint8_t *body, size_t len)
{
    struct server *srv = c->srv;
    struct proto_hdr h = {.op = OP_HELLO, .kind = PROTO_REPLY,
                          .reqid = hdr->reqid};
    struct hello_req m;
    struct hello_rep rep = {0};
    uint32_t lo, hi;

    if (proto_decode(hdr, body, len, NULL, &m) < 0) {
        srv->metrics.proto_errors++;
        conn_close(c, "malformed HELLO");
        return;
    }
    if (strcmp(m.volume, srv->vol.name) != 0) {
        send_error(c, hdr, -EACCES);
        close_after_flush(c, "HELLO for another volume");
        return;
    }
    lo = m.version_min > PROTO_VERSION_MIN ? m.version_min : PROTO_VERSION_MIN;
    hi = m.version_max < c->srv->protocol_max ? m.version_max
                                                : c->srv->protocol_max;
    if (lo > hi) {
        send_error(c, hdr, -EPROTONOSUPPORT);
        close_after_flush(c, "no common protocol version");
        return;
    }
    c->version = hi; /* the highest both speak */
    memcpy(c->cnonce, m.nonce, sizeof(c->cnonce));
    auth_nonce(c->bnonce);
    rep.version = c->version;
    rep.brick = srv->brick;
    memcpy(rep.nonce, c->bnonce, sizeof(rep.nonce));
    auth_brick_mac(srv->vol.key, c->cnonce, c->bnonce, srv->vol.name, rep.mac);
    c->state = CONN_AUTH;
    conn_send(c, &h, 0, &rep, NULL);
}

static void do_auth(struct conn *c, const struct proto_hdr *hdr,
                    const uint8_t *body, size_t len)
{
    struct server *srv = c->srv;
    struct proto_hdr h = {.op = OP_AUTH, .kind = PROTO_REPLY,
                          .reqid = hdr->reqid};
    uint8_t want[PROTO_MAC_SIZE];
    struct auth_req m;
    struct auth_rep rep;

    if (proto_decode(hdr, body, len, NULL, &m) < 0) {
        srv->metrics.proto_errors++;
        conn_close(c, "malformed AUTH");
        return;
    }
    auth_client_mac(srv->vol.key, c->bnonce, c->cnonce, srv->vol.name, want);
    if (!auth_mac_equal(want, m.mac)) {
        srv->metrics.auth_failures++;
        log_warn("conn %llu (%s): authentication failed (bad MAC)",
                 (unsigned long long)c->cid, c->peer);
        send_error(c, hdr, -EACCES);
        close_after_flush(c, "authentication failed");
        return;
    }
    c->state = CONN_READY;
    rep.brick_uuid_hi = srv->stamp.uuid_hi;
    rep.brick_uuid_lo = srv->stamp.uuid_lo;
    log_info("conn %llu (%s): authenticated, protocol v%u",
             (unsigned long long)c->cid, c->peer, c->version);
    conn_send(c, &h, 0, &rep, NULL);
}

/* ---- requests ---- */

/* Invariant 3 counts the memory a request will hold: a READ or READDIR
 * reply buffer is charged when the request is dispatched, not when the
 * reply is queued, so a burst of big reads cannot overshoot the limit. */
static void charge_reply(struct conn *c, struct req *r)
{
    size_t extra = 0;

    if (r->hdr.op == OP_READ)
        extra = REQ_MSG(r, read_req)->size;
    else if (r->hdr.op == OP_READDIR)
        extra = REQ_MSG(r, readdir_req)->max_bytes;
    r->cost += extra;
    c->req_bytes += extra;
}

static void do_request(struct conn *c, const struct proto_hdr *hdr,
                       const uint8_t *frame, uint8_t **steal)
{
    size_t msize = proto_msg_size(hdr->op, PROTO_REQ);
    const uint8_t *body = frame + PROTO_HDR_SIZE;
    size_t len = hdr->len - PROTO_HDR_SIZE;
    struct req *r;
    int rc;

    /* An op of a later version than this connection agreed on is answered
     * as a brick of that version would (docs/protocol.md). */
    if (!msize || !dispatch_known(hdr->op) ||
        proto_op_version(hdr->op) > c->version) {
        send_error(c, hdr, -ENOSYS); /* the connection stays usable */
        return;
    }
    r = malloc(sizeof(*r) + msize);
    if (!r) {
        send_error(c, hdr, -ENOMEM);
        return;
    }
    memset(r, 0, sizeof(*r));
    r->c = c;
    r->srv = c->srv;
    r->hdr = *hdr;
    r->cost = hdr->len;
    r->t0 = uv_hrtime();
    c->nreqs++;
    c->req_bytes += r->cost;
    if (hdr->op == OP_WRITE) { /* the data must outlive this buffer */
        if (steal) {
            r->frame = *steal;
            *steal = NULL;
        } else if ((r->frame = malloc(hdr->len)) != NULL) {
            memcpy(r->frame, frame, hdr->len);
        } else {
            req_reply(r, -ENOMEM, NULL);
            return;
        }
        body = r->frame + PROTO_HDR_SIZE;
    }
    rc = proto_decode(hdr, body, len, NULL, r->msg);
    if (rc == -EPROTO) {
        c->srv->metrics.proto_errors++;
        req_drop(r);
        conn_close(c, "malformed request body");
        return;
    }
    if (rc < 0) {
        req_reply(r, rc, NULL); /* -EINVAL: bad name; -ENOSYS */
        return;
    }
    charge_reply(c, r);
    dispatch(r);
}

static void handle_frame(struct conn *c, const struct proto_hdr *h,
                         const uint8_t *frame, uint8_t **steal)
{
    const uint8_t *body = frame + PROTO_HDR_SIZE;
    size_t len = h->len - PROTO_HDR_SIZE;

    if (h->kind != PROTO_REQ) {
        c->srv->metrics.proto_errors++;
        conn_close(c, "frame is not a request");
        return;
    }
    switch (c->state) {
    case CONN_HELLO:
        if (h->op == OP_HELLO)
            do_hello(c, h, body, len);
        else
            conn_close(c, "request before HELLO"); /* invariant 1 */
        return;
    case CONN_AUTH:
        if (h->op == OP_AUTH)
            do_auth(c, h, body, len);
        else
            conn_close(c, "request before AUTH");
        return;
    case CONN_READY:
        if (h->op == OP_HELLO || h->op == OP_AUTH)
            send_error(c, h, -EINVAL); /* handshake is over */
        else
            do_request(c, h, frame, steal);
        return;
    default:
        return;
    }
}

static void process_frames(struct conn *c)
{
    size_t off = 0;

    if (c->in_feed)
        return;
    c->in_feed = true;
    while (c->state <= CONN_READY && !over_limits(c) &&
           c->used - off >= PROTO_HDR_SIZE) {
        struct proto_hdr h;
        bool offer;
        uint8_t *steal;

        if (proto_hdr_decode(c->buf + off, &h) < 0) { /* invariant 2 */
            c->srv->metrics.proto_errors++;
            conn_close(c, "bad frame header");
            break;
        }
        if (c->used - off < h.len)
            break;
        /* A big frame alone in the buffer may be handed over, not copied. */
        offer = off == 0 && c->used == h.len && h.len >= STEAL_MIN;
        steal = offer ? c->buf : NULL;
        handle_frame(c, &h, c->buf + off, offer ? &steal : NULL);
        if (offer && !steal) { /* taken by the request */
            c->buf = NULL;
            c->cap = c->used = 0;
            break;
        }
        off += h.len;
    }
    if (off && c->buf) {
        memmove(c->buf, c->buf + off, c->used - off);
        c->used -= off;
    }
    c->in_feed = false;
    conn_maybe_free(c);
}

/* ---- reading ---- */

static uint32_t peek_len(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

/* Room for the current frame, exactly when it is big (see the design). */
static int reserve(struct conn *c)
{
    size_t want = c->used + RBUF_MIN;
    uint8_t *nb;

    if (c->used >= PROTO_HDR_SIZE) {
        uint32_t len = peek_len(c->buf);

        if (len >= PROTO_HDR_SIZE && len <= PROTO_MAX_FRAME)
            want = len > c->used ? len : c->used + RBUF_MIN;
    }
    if (want < RBUF_MIN)
        want = RBUF_MIN;
    if (c->cap >= want && c->cap > c->used)
        return 0;
    nb = realloc(c->buf, want);
    if (!nb)
        return -ENOMEM;
    c->buf = nb;
    c->cap = want;
    return 0;
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    struct conn *c = h->data;

    (void)suggested;
    if (reserve(c) < 0) {
        *b = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS to read_cb */
        return;
    }
    *b = uv_buf_init((char *)c->buf + c->used, (unsigned)(c->cap - c->used));
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct conn *c = s->data;

    (void)b;
    if (nread < 0) {
        conn_close(c, nread == UV_EOF ? "peer closed" : uv_strerror((int)nread));
        return;
    }
    c->used += (size_t)nread;
    process_frames(c);
    if (c->state == CONN_READY && over_limits(c) && c->reading) {
        /* invariant 3: stop reading until requests drain */
        uv_read_stop(s);
        c->reading = false;
        c->srv->metrics.paused++;
    }
}

static struct conn *conn_alloc(struct server *srv)
{
    struct conn *c = calloc(1, sizeof(*c));

    if (!c)
        return NULL;
    c->srv = srv;
    c->cid = ++srv->next_cid;
    list_init(&c->outq);
    list_init(&c->flush_link);
    conn_leases_init(&c->leases);
    list_add_tail(&srv->conns, &c->link);
    srv->nconns++;
    return c;
}

int conn_accept(struct server *srv, uv_stream_t *listener)
{
    struct sockaddr_storage ss;
    int sl = sizeof(ss);
    struct conn *c = conn_alloc(srv);
    int rc;

    if (!c)
        return -ENOMEM;
    uv_tcp_init(srv->loop, &c->tcp);
    c->tcp.data = c;
    rc = uv_accept(listener, (uv_stream_t *)&c->tcp);
    if (rc < 0) {
        conn_close(c, "accept failed");
        return rc;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_tcp_keepalive(&c->tcp, 1, 30);
    snprintf(c->peer, sizeof(c->peer), "?");
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0 &&
        ss.ss_family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        char ip[INET_ADDRSTRLEN] = "?";

        uv_ip4_name(sin, ip, sizeof(ip));
        snprintf(c->peer, sizeof(c->peer), "%s:%u", ip, ntohs(sin->sin_port));
    }
    srv->metrics.conns_accepted++;
    log_debug("conn %llu (%s): accepted", (unsigned long long)c->cid, c->peer);
    c->reading = true;
    rc = uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
    if (rc < 0)
        conn_close(c, uv_strerror(rc));
    return 0;
}

struct conn *conn_new_fake(struct server *srv)
{
    struct conn *c = conn_alloc(srv);

    if (!c)
        return NULL;
    c->fake = true;
    c->state = CONN_READY;
    c->version = PROTO_VERSION_MAX; /* every op reaches its handler */
    snprintf(c->peer, sizeof(c->peer), "fake");
    return c;
}

int conn_feed(struct conn *c, const uint8_t *data, size_t len)
{
    while (len && c->state <= CONN_READY) {
        size_t n;

        if (reserve(c) < 0)
            return -ENOMEM;
        n = c->cap - c->used < len ? c->cap - c->used : len;
        memcpy(c->buf + c->used, data, n);
        c->used += n;
        data += n;
        len -= n;
        process_frames(c);
        if (over_limits(c))
            break; /* a fake conn has no socket to pause: drop the rest */
    }
    return c->state == CONN_CLOSING ? -EPROTO : 0;
}
