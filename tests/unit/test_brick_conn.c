/*
 * brick_conn against a scripted fake brick (a thread with blocking sockets on
 * 127.0.0.1), so that the link's failure paths run on demand: a bad brick
 * MAC, an EACCES reply, replies out of order, a brick that goes silent, one
 * that hangs up, one that sends garbage, events, big payloads, and a program
 * that leaves the loop alone for longer than the ping timeout.
 *
 * Every test ends with brick_conn_close() and uv_loop_close() == 0.
 */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/auth.h"
#include "common/config.h"
#include "replicafs/client.h"

/* ---- the fake brick ---- */

struct fake {
    int lfd;
    uint16_t port;
    pthread_t th;
    uint8_t key[RFS_KEY_SIZE];
    char volume[PROTO_NAME_MAX + 1];
    unsigned brick_no;      /* what HELLO's reply claims */
    /* behaviour */
    bool bad_mac;           /* HELLO reply with a wrong MAC */
    bool auth_eacces;       /* AUTH reply EACCES */
    int silent_conns;       /* this many connections go silent after AUTH */
    int close_after;        /* hang up after this many requests (once) */
    bool garbage;           /* send junk after AUTH (first connection) */
    bool send_event;        /* send one INVAL event after AUTH */
    unsigned reverse_batch; /* answer GETATTRs in batches, last first */
    bool hold_getattr;      /* never answer GETATTR (a lock that waits) */
    /* observations */
    atomic_int accepts;
    atomic_int authed;
    atomic_int pings;
    atomic_uint_fast64_t write_sum;
    atomic_uint write_len;
    atomic_bool stop;
};

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Read exactly len bytes, polling so that f->stop is noticed.  0 or -1. */
static int fake_read(struct fake *f, int fd, uint8_t *p, size_t len)
{
    while (len > 0) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        ssize_t n;

        if (atomic_load(&f->stop))
            return -1;
        if (poll(&pf, 1, 50) <= 0)
            continue;
        n = recv(fd, p, len, 0);
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* One whole frame into *buf (grown as needed).  0 or -1. */
static int fake_frame(struct fake *f, int fd, uint8_t **buf,
                      struct proto_hdr *h)
{
    uint8_t hdr[PROTO_HDR_SIZE];

    if (fake_read(f, fd, hdr, sizeof(hdr)) < 0 ||
        proto_hdr_decode(hdr, h) < 0)
        return -1;
    *buf = realloc(*buf, h->len);
    memcpy(*buf, hdr, sizeof(hdr));
    return fake_read(f, fd, *buf + PROTO_HDR_SIZE, h->len - PROTO_HDR_SIZE);
}

static void fake_send(int fd, const void *p, size_t len)
{
    const uint8_t *b = p;

    while (len > 0) {
        ssize_t n = send(fd, b, len, MSG_NOSIGNAL);

        if (n <= 0)
            return;
        b += n;
        len -= (size_t)n;
    }
}

static void fake_reply(int fd, uint16_t op, uint64_t reqid, uint32_t status,
                       const void *msg)
{
    struct proto_hdr h = {.op = op, .kind = PROTO_REPLY, .reqid = reqid};
    uint8_t *out = malloc(PROTO_MAX_FRAME);
    ssize_t n = out ? proto_encode(out, PROTO_MAX_FRAME, &h, status, msg, NULL)
                    : -ENOMEM;

    if (n > 0)
        fake_send(fd, out, (size_t)n);
    free(out);
}

/* HELLO and AUTH.  Returns 0 when the client is authenticated. */
static int fake_handshake(struct fake *f, int fd, uint8_t **buf)
{
    struct proto_hdr h;
    struct hello_req hreq;
    struct hello_rep hrep = {.version = 1};
    struct auth_req areq;
    struct auth_rep arep = {.brick_uuid_hi = 0x1111, .brick_uuid_lo = 0x2222};
    uint8_t mac[PROTO_MAC_SIZE];
    uint32_t st;

    if (fake_frame(f, fd, buf, &h) < 0 || h.op != OP_HELLO ||
        proto_decode(&h, *buf + PROTO_HDR_SIZE, h.len - PROTO_HDR_SIZE, &st,
                     &hreq) < 0)
        return -1;
    hrep.brick = f->brick_no;
    auth_nonce(hrep.nonce);
    auth_brick_mac(f->key, hreq.nonce, hrep.nonce, hreq.volume, hrep.mac);
    if (f->bad_mac)
        hrep.mac[0] ^= 1;
    fake_reply(fd, OP_HELLO, h.reqid, 0, &hrep);
    if (fake_frame(f, fd, buf, &h) < 0 || h.op != OP_AUTH ||
        proto_decode(&h, *buf + PROTO_HDR_SIZE, h.len - PROTO_HDR_SIZE, &st,
                     &areq) < 0)
        return -1;
    auth_client_mac(f->key, hrep.nonce, hreq.nonce, hreq.volume, mac);
    if (f->auth_eacces || !auth_mac_equal(mac, areq.mac)) {
        fake_reply(fd, OP_AUTH, h.reqid, EACCES, NULL);
        return -1;
    }
    atomic_fetch_add(&f->authed, 1); /* before the client can see UP */
    fake_reply(fd, OP_AUTH, h.reqid, 0, &arep);
    return 0;
}

/* Answer one request the ordinary way. */
static void fake_serve_one(struct fake *f, int fd, const struct proto_hdr *h,
                           const uint8_t *body)
{
    union {
        struct ping_req ping;
        struct getattr_req getattr;
        struct write_req write;
        struct read_req read;
        struct statfs_req statfs;
    } req;
    uint32_t st;

    if (proto_decode(h, body, h->len - PROTO_HDR_SIZE, &st, &req) < 0) {
        fake_reply(fd, h->op, h->reqid, EINVAL, NULL);
        return;
    }
    switch (h->op) {
    case OP_PING: {
        struct ping_rep r = {.stamp = req.ping.stamp};

        atomic_fetch_add(&f->pings, 1);
        fake_reply(fd, OP_PING, h->reqid, 0, &r);
        break;
    }
    case OP_GETATTR: {
        struct attr_rep r = {0};

        r.attr.id = req.getattr.id;
        r.attr.mode = 0100644;
        r.attr.nlink = 1;
        fake_reply(fd, OP_GETATTR, h->reqid, 0, &r);
        break;
    }
    case OP_WRITE: {
        struct write_rep r = {.count = req.write.data.len};
        uint64_t sum = 0;

        for (uint32_t i = 0; i < req.write.data.len; i++)
            sum = sum * 31 + req.write.data.data[i];
        atomic_store(&f->write_sum, sum);
        atomic_store(&f->write_len, req.write.data.len);
        r.attr.id = req.write.id;
        r.attr.size = req.write.offset + req.write.data.len;
        fake_reply(fd, OP_WRITE, h->reqid, 0, &r);
        break;
    }
    case OP_READ: {
        uint8_t *data = malloc(req.read.size ? req.read.size : 1);
        struct read_rep r = {.data = {data, req.read.size}};

        for (uint32_t i = 0; i < req.read.size; i++)
            data[i] = (uint8_t)((req.read.offset + i) * 7);
        fake_reply(fd, OP_READ, h->reqid, 0, &r);
        free(data);
        break;
    }
    default:
        fake_reply(fd, h->op, h->reqid, ENOSYS, NULL);
    }
}

static void fake_conn(struct fake *f, int fd)
{
    struct pending {
        struct proto_hdr h;
        uint8_t *frame;
    } batch[64];
    unsigned nbatch = 0;
    uint8_t *buf = NULL;
    struct proto_hdr h;
    int nreq = 0;

    if (fake_handshake(f, fd, &buf) < 0)
        goto out;
    if (f->garbage) {
        f->garbage = false;
        static const char junk[] = "\xff\xff\xff\xff garbage garbage!";

        fake_send(fd, junk, sizeof(junk) - 1);
    }
    if (f->send_event) {
        struct inval_event ev = {.id = {7, 8}, .what = INVAL_DATA,
                                 .parent = {0, 1}, .name = "x"};
        struct proto_hdr eh = {.op = OP_INVAL, .kind = PROTO_EVENT};
        uint8_t out[512];
        ssize_t n = proto_encode(out, sizeof(out), &eh, 0, &ev, NULL);

        cr_assert(n > 0);
        fake_send(fd, out, (size_t)n);
    }
    if (f->silent_conns > 0) {
        f->silent_conns--;
        while (fake_frame(f, fd, &buf, &h) == 0)
            ; /* swallow everything, answer nothing */
        goto out;
    }
    while (fake_frame(f, fd, &buf, &h) == 0) {
        if (f->close_after && ++nreq >= f->close_after) {
            f->close_after = 0;
            goto out;
        }
        if (f->hold_getattr && h.op == OP_GETATTR)
            continue;
        if (f->reverse_batch && h.op == OP_GETATTR) {
            batch[nbatch].h = h;
            batch[nbatch].frame = buf;
            buf = NULL;
            if (++nbatch < f->reverse_batch)
                continue;
            while (nbatch > 0) {
                struct pending *p = &batch[--nbatch];

                fake_serve_one(f, fd, &p->h, p->frame + PROTO_HDR_SIZE);
                free(p->frame);
            }
            continue;
        }
        fake_serve_one(f, fd, &h, buf + PROTO_HDR_SIZE);
    }
out:
    while (nbatch > 0)
        free(batch[--nbatch].frame);
    free(buf);
    close(fd);
}

static void *fake_main(void *arg)
{
    struct fake *f = arg;

    while (!atomic_load(&f->stop)) {
        struct pollfd pf = {.fd = f->lfd, .events = POLLIN};
        int fd;

        if (poll(&pf, 1, 50) <= 0)
            continue;
        fd = accept(f->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        atomic_fetch_add(&f->accepts, 1);
        fake_conn(f, fd);
    }
    return NULL;
}

static struct fake F;
static struct vol_config V;
static uv_loop_t L;

static void setup(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t alen = sizeof(a);

    cr_assert(auth_init() == 0);
    memset(&F, 0, sizeof(F));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    F.lfd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(F.lfd >= 0);
    cr_assert(bind(F.lfd, (struct sockaddr *)&a, sizeof(a)) == 0);
    cr_assert(getsockname(F.lfd, (struct sockaddr *)&a, &alen) == 0);
    cr_assert(listen(F.lfd, 16) == 0);
    F.port = ntohs(a.sin_port);
    F.brick_no = 1;
    for (unsigned i = 0; i < RFS_KEY_SIZE; i++)
        F.key[i] = (uint8_t)(i * 13 + 1);
    snprintf(F.volume, sizeof(F.volume), "unit");

    memset(&V, 0, sizeof(V));
    snprintf(V.name, sizeof(V.name), "unit");
    V.replica = V.nbricks = 1;
    snprintf(V.bricks[0].host, sizeof(V.bricks[0].host), "127.0.0.1");
    V.bricks[0].port = F.port;
    V.bricks[0].addr = a;
    memcpy(V.key, F.key, sizeof(V.key));
    cr_assert(uv_loop_init(&L) == 0);
}

static void start_fake(void)
{
    cr_assert(pthread_create(&F.th, NULL, fake_main, &F) == 0);
}

static void closed_cb(void *arg)
{
    *(bool *)arg = true;
}

/* Close bc, run the loop dry, stop the fake, and insist the loop closes. */
static void finish(struct brick_conn *bc)
{
    bool closed = false;

    brick_conn_close(bc, closed_cb, &closed);
    uv_run(&L, UV_RUN_DEFAULT);
    cr_assert(closed, "close callback not called");
    cr_assert_eq(uv_loop_close(&L), 0, "handles left on the loop");
    atomic_store(&F.stop, true);
    pthread_join(F.th, NULL);
    close(F.lfd);
}

static struct brick_conn *conn(unsigned ping_ms, brick_state_cb on_state,
                               brick_event_cb on_event, void *arg)
{
    struct brick_conn_opts o = {.ping_timeout_ms = ping_ms,
                                .on_state = on_state,
                                .on_event = on_event,
                                .arg = arg};
    struct brick_conn *bc;

    cr_assert_eq(brick_conn_new(&L, &V, 1, &o, &bc), 0);
    return bc;
}

static void noop_timer(uv_timer_t *t)
{
    (void)t; /* only wakes uv_run(UV_RUN_ONCE) */
}

/* Run the loop until *flag or timeout_ms. */
static void run_until(volatile bool *flag, unsigned timeout_ms)
{
    uv_timer_t t;
    uint64_t end = now_ms() + timeout_ms;

    uv_timer_init(&L, &t);
    uv_timer_start(&t, noop_timer, 10, 10);
    while (!*flag && now_ms() < end)
        uv_run(&L, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&L, UV_RUN_NOWAIT);
}

static void run_for(unsigned ms)
{
    uv_timer_t t;
    uint64_t end = now_ms() + ms;

    uv_timer_init(&L, &t);
    uv_timer_start(&t, noop_timer, 10, 10);
    while (now_ms() < end)
        uv_run(&L, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&L, UV_RUN_NOWAIT);
}

TestSuite(brick_conn, .init = setup, .timeout = 30);

Test(brick_conn, handshake_reaches_up_with_version_uuid_and_rtt)
{
    struct brick_conn *bc;
    uint64_t hi, lo;

    start_fake();
    bc = conn(0, NULL, NULL, NULL);
    cr_assert_eq(brick_conn_state(bc), BRICK_IDLE);
    cr_assert_eq(brick_conn_version(bc), 0);
    cr_assert_eq(brick_conn_wait_up(bc, 5000), 0);
    cr_assert_eq(brick_conn_state(bc), BRICK_UP);
    cr_assert_eq(brick_conn_version(bc), 1);
    cr_assert_eq(brick_conn_no(bc), 1);
    brick_conn_uuid(bc, &hi, &lo);
    cr_assert_eq(hi, 0x1111);
    cr_assert_eq(lo, 0x2222);
    cr_assert_eq(brick_conn_last_error(bc), 0);
    run_for(100); /* the first ping goes out at UP */
    cr_assert_gt(brick_conn_rtt_us(bc), 0);
    cr_assert_lt(brick_conn_rtt_us(bc), 1000000);
    finish(bc);
}

Test(brick_conn, bad_brick_mac_is_eacces_and_retried_only_with_backoff)
{
    struct brick_conn *bc;
    int n;

    F.bad_mac = true;
    start_fake();
    bc = conn(0, NULL, NULL, NULL);
    cr_assert_eq(brick_conn_wait_up(bc, 5000), -EACCES);
    cr_assert_eq(brick_conn_last_error(bc), -EACCES);
    cr_assert_neq(brick_conn_state(bc), BRICK_UP);
    cr_assert_eq(atomic_load(&F.authed), 0);
    /* 1 s of back-off (100+200+400 ms) allows at most 4 more attempts. */
    n = atomic_load(&F.accepts);
    run_for(1000);
    cr_assert_leq(atomic_load(&F.accepts) - n, 4, "%d attempts in 1 s",
                  atomic_load(&F.accepts) - n);
    cr_assert_geq(atomic_load(&F.accepts) - n, 2, "no retry at all");
    cr_assert_eq(atomic_load(&F.authed), 0, "the client sent AUTH anyway");
    finish(bc);
}

Test(brick_conn, eacces_reply_to_auth_is_auth_failure)
{
    struct brick_conn *bc;

    F.auth_eacces = true;
    start_fake();
    bc = conn(0, NULL, NULL, NULL);
    cr_assert_eq(brick_conn_wait_up(bc, 5000), -EACCES);
    cr_assert_eq(brick_conn_last_error(bc), -EACCES);
    finish(bc);
}

Test(brick_conn, wrong_key_is_refused_by_the_brick)
{
    struct brick_conn *bc;

    V.key[5] ^= 0x40; /* the brick's MAC check fails first */
    start_fake();
    bc = conn(0, NULL, NULL, NULL);
    cr_assert_eq(brick_conn_wait_up(bc, 5000), -EACCES);
    finish(bc);
}

Test(brick_conn, wrong_brick_number_never_comes_up)
{
    struct brick_conn *bc;

    F.brick_no = 2;
    start_fake();
    bc = conn(0, NULL, NULL, NULL);
    cr_assert_eq(brick_conn_wait_up(bc, 500), -ETIMEDOUT);
    cr_assert_eq(brick_conn_last_error(bc), -EPROTO);
    finish(bc);
}

Test(brick_conn, calls_refused_unless_up)
{
    struct brick_conn *bc;
    struct getattr_req g = {.id = {0, 1}};
    struct hello_req hr = {0};

    start_fake();
    bc = conn(0, NULL, NULL, NULL);
    cr_assert_eq(brick_call_sync(bc, OP_GETATTR, &g, NULL, NULL), -ENOTCONN);
    cr_assert_eq(brick_conn_wait_up(bc, 5000), 0);
    cr_assert_eq(brick_call_sync(bc, OP_HELLO, &hr, NULL, NULL), -EINVAL);
    cr_assert_eq(brick_call_sync(bc, OP_GETATTR, &g, NULL, NULL), 0);
    cr_assert_eq(brick_call_sync(bc, OP_STATFS, &g, NULL, NULL), -ENOSYS);
    finish(bc);
}

struct ooo {
    unsigned done;
    unsigned order[16];
    bool bad;
};
struct ooo_call {
    struct ooo *o;
    unsigned i;
};

static void ooo_cb(int status, const void *rep, void *arg)
{
    struct ooo_call *c = arg;
    const struct attr_rep *r = rep;

    if (status != 0 || r->attr.id.lo != 1000 + c->i)
        c->o->bad = true;
    c->o->order[c->o->done++] = c->i;
}

Test(brick_conn, out_of_order_replies_reach_their_calls)
{
    struct brick_conn *bc;
    struct ooo o = {0};
    struct ooo_call calls[8];
    bool all = false;

    F.reverse_batch = 8;
    start_fake();
    bc = conn(0, NULL, NULL, NULL);
    cr_assert_eq(brick_conn_wait_up(bc, 5000), 0);
    for (unsigned i = 0; i < 8; i++) {
        struct getattr_req g = {.id = {0, 1000 + i}};

        calls[i] = (struct ooo_call){&o, i};
        cr_assert_eq(brick_call(bc, OP_GETATTR, &g, ooo_cb, &calls[i]), 0);
    }
    cr_assert_eq(o.done, 0, "a callback ran inside brick_call");
    while (o.done < 8 && brick_conn_state(bc) == BRICK_UP) {
        uv_run(&L, UV_RUN_ONCE);
        all = o.done == 8;
    }
    cr_assert(all, "%u of 8 replies", o.done);
    cr_assert(!o.bad, "a reply went to the wrong call");
    for (unsigned i = 0; i < 8; i++)
        cr_assert_eq(o.order[i], 7 - i);
    finish(bc);
}

struct many {
    unsigned done;
    unsigned bad;
};
struct many_call {
    struct many *m;
    uint64_t lo;
};

static void many_cb(int status, const void *rep, void *arg)
{
    struct many_call *c = arg;
    const struct attr_rep *r = rep;

    if (status != 0 || r->attr.id.lo != c->lo)
        c->m->bad++;
    c->m->done++;
}

Test(brick_conn, five_thousand_calls_in_flight_grow_the_table)
{
    enum { N = 5000 };
    static struct many_call calls[N];
    struct many m = {0};
    struct brick_conn *bc;

    start_fake();
    bc = conn(0, NULL, NULL, NULL);
    cr_assert_eq(brick_conn_wait_up(bc, 5000), 0);
    for (unsigned i = 0; i < N; i++) {
        struct getattr_req g = {.id = {9, 50000 + i}};

        calls[i] = (struct many_call){&m, 50000 + i};
        cr_assert_eq(brick_call(bc, OP_GETATTR, &g, many_cb, &calls[i]), 0);
    }
    cr_assert_geq(brick_conn_outstanding(bc), N);
    while (m.done < N && brick_conn_state(bc) == BRICK_UP)
        uv_run(&L, UV_RUN_ONCE);
    cr_assert_eq(m.done, N);
    cr_assert_eq(m.bad, 0);
    cr_assert_leq(brick_conn_outstanding(bc), 1); /* a ping, maybe */
    finish(bc);
}

Test(brick_conn, one_mib_write_and_read_are_intact)
{
    struct brick_conn *bc;
    uint8_t *data = malloc(PROTO_MAX_IO);
    struct write_req w = {.id = {3, 4}, .offset = 5};
    struct write_rep wr;
    struct read_req r = {.id = {3, 4}, .offset = 11, .size = PROTO_MAX_IO};
    struct read_rep rr;
    void *frame = NULL;
    uint64_t sum = 0;

    cr_assert(data);
    for (uint32_t i = 0; i < PROTO_MAX_IO; i++) {
        data[i] = (uint8_t)(i * 2654435761u >> 13);
        sum = sum * 31 + data[i];
    }
    start_fake();
    bc = conn(0, NULL, NULL, NULL);
    cr_assert_eq(brick_conn_wait_up(bc, 5000), 0);
    w.data.data = data;
    w.data.len = PROTO_MAX_IO;
    cr_assert_eq(brick_call_sync(bc, OP_WRITE, &w, &wr, NULL), 0);
    cr_assert_eq(wr.count, PROTO_MAX_IO);
    cr_assert_eq(wr.attr.size, 5 + PROTO_MAX_IO);
    cr_assert_eq(atomic_load(&F.write_len), PROTO_MAX_IO);
    cr_assert_eq(atomic_load(&F.write_sum), sum, "payload corrupted");

    cr_assert_eq(brick_call_sync(bc, OP_READ, &r, &rr, &frame), 0);
    cr_assert_eq(rr.data.len, PROTO_MAX_IO);
    cr_assert_eq((const void *)rr.data.data, frame);
    for (uint32_t i = 0; i < PROTO_MAX_IO; i++)
        cr_assert_eq(rr.data.data[i], (uint8_t)((11 + i) * 7), "byte %u", i);
    free(frame);
    /* Without a frame pointer the bytes field is zeroed. */
    r.size = 10;
    cr_assert_eq(brick_call_sync(bc, OP_READ, &r, &rr, NULL), 0);
    cr_assert_null(rr.data.data);
    cr_assert_eq(rr.data.len, 0);
    /* An oversized payload does not encode. */
    w.data.len = PROTO_MAX_IO + 1;
    cr_assert_eq(brick_call_sync(bc, OP_WRITE, &w, &wr, NULL), -EINVAL);
    free(data);
    finish(bc);
}

struct counter {
    unsigned calls;
    int status;
};

static void count_cb(int status, const void *rep, void *arg)
{
    struct counter *c = arg;

    (void)rep;
    c->calls++;
    c->status = status;
}

struct states {
    enum brick_state seen[64];
    unsigned n;
};

static void state_cb(struct brick_conn *bc, enum brick_state st, void *arg)
{
    struct states *s = arg;

    (void)bc;
    if (s->n < 64)
        s->seen[s->n++] = st;
}

Test(brick_conn, silent_brick_is_down_after_ping_timeout_then_reconnects)
{
    struct brick_conn *bc;
    struct counter c[4] = {{0}};
    struct states s = {0};
    struct getattr_req g = {.id = {0, 1}};
    uint64_t t0, waited;
    bool down = false;

    F.silent_conns = 1;
    start_fake();
    bc = conn(600, state_cb, NULL, &s);
    cr_assert_eq(brick_conn_wait_up(bc, 5000), 0);
    t0 = now_ms();
    for (int i = 0; i < 4; i++)
        cr_assert_eq(brick_call(bc, OP_GETATTR, &g, count_cb, &c[i]), 0);
    while (!down && now_ms() - t0 < 5000) {
        uv_run(&L, UV_RUN_ONCE);
        down = brick_conn_state(bc) != BRICK_UP;
    }
    waited = now_ms() - t0;
    cr_assert(down, "never declared down");
    cr_assert_geq(waited, 550, "down after %llu ms", (unsigned long long)waited);
    cr_assert_leq(waited, 1500, "down after %llu ms", (unsigned long long)waited);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(c[i].calls, 1, "call %d: %u callbacks", i, c[i].calls);
        cr_assert_eq(c[i].status, -ENOTCONN);
    }
    cr_assert_eq(brick_conn_last_error(bc), -ETIMEDOUT);
    /* It comes back by itself on the next connection. */
    cr_assert_eq(brick_conn_wait_up(bc, 5000), 0);
    cr_assert_eq(brick_call_sync(bc, OP_GETATTR, &g, NULL, NULL), 0);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(c[i].calls, 1, "call %d called again", i);
    /* States: connecting, handshake, up, down, connecting, handshake, up. */
    cr_assert_geq(s.n, 7);
    cr_assert_eq(s.seen[0], BRICK_CONNECTING);
    cr_assert_eq(s.seen[1], BRICK_HANDSHAKE);
    cr_assert_eq(s.seen[2], BRICK_UP);
    cr_assert_eq(s.seen[3], BRICK_DOWN);
    cr_assert_eq(s.seen[s.n - 1], BRICK_UP);
    finish(bc);
}

Test(brick_conn, idle_link_is_kept_up_by_pings)
{
    struct brick_conn *bc;
    struct states s = {0};

    start_fake();
    bc = conn(300, state_cb, NULL, &s);
    cr_assert_eq(brick_conn_wait_up(bc, 5000), 0);
    run_for(1500);
    cr_assert_eq(brick_conn_state(bc), BRICK_UP);
    cr_assert_eq(s.seen[s.n - 1], BRICK_UP);
    cr_assert_eq(s.n, 3, "the link flapped");
    /* one ping per 100 ms of idle time, roughly */
    cr_assert_geq(atomic_load(&F.pings), 8, "%d pings", atomic_load(&F.pings));
    cr_assert_leq(atomic_load(&F.pings), 20, "%d pings", atomic_load(&F.pings));
    finish(bc);
}

Test(brick_conn, a_long_wait_for_one_reply_is_not_a_dead_brick)
{
    struct brick_conn *bc;
    struct counter c = {0};
    struct getattr_req g = {.id = {0, 1}};
    bool closed = false;

    F.hold_getattr = true; /* like a blocking lock that is not granted */
    start_fake();
    bc = conn(300, NULL, NULL, NULL);
    cr_assert_eq(brick_conn_wait_up(bc, 5000), 0);
    cr_assert_eq(brick_call(bc, OP_GETATTR, &g, count_cb, &c), 0);
    run_for(1500); /* 5 ping timeouts; the pings are answered */
    cr_assert_eq(brick_conn_state(bc), BRICK_UP);
    cr_assert_eq(c.calls, 0);
    cr_assert_geq(atomic_load(&F.pings), 5);
    brick_conn_close(bc, closed_cb, &closed);
    cr_assert_eq(c.calls, 1);
    cr_assert_eq(c.status, -ENOTCONN);
    uv_run(&L, UV_RUN_DEFAULT);
    cr_assert(closed);
    cr_assert_eq(uv_loop_close(&L), 0);
    atomic_store(&F.stop, true);
    pthread_join(F.th, NULL);
    close(F.lfd);
}

Test(brick_conn, a_program_that_leaves_the_loop_alone_is_not_punished)
{
    struct brick_conn *bc;
    struct getattr_req g = {.id = {0, 1}};

    start_fake();
    bc = conn(300, NULL, NULL, NULL);
    cr_assert_eq(brick_conn_wait_up(bc, 5000), 0);
    usleep(1000 * 1000); /* > 3 ping timeouts without running the loop */
    cr_assert_eq(brick_call_sync(bc, OP_GETATTR, &g, NULL, NULL), 0);
    cr_assert_eq(brick_conn_state(bc), BRICK_UP);
    finish(bc);
}

Test(brick_conn, brick_hangup_fails_calls_once_and_reconnects)
{
    struct brick_conn *bc;
    struct counter c[3] = {{0}};
    struct getattr_req g = {.id = {0, 1}};

    F.close_after = 2; /* hang up on the second request */
    start_fake();
    bc = conn(0, NULL, NULL, NULL);
    cr_assert_eq(brick_conn_wait_up(bc, 5000), 0);
    run_for(50); /* let the first ping be answered */
    for (int i = 0; i < 3; i++)
        cr_assert_eq(brick_call(bc, OP_GETATTR, &g, count_cb, &c[i]), 0);
    while (brick_conn_state(bc) == BRICK_UP)
        uv_run(&L, UV_RUN_ONCE);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(c[i].calls, 1);
        /* the first may have been answered before the hang-up */
        cr_assert(c[i].status == -ENOTCONN || (i == 0 && c[i].status == 0));
    }
    cr_assert_eq(brick_conn_wait_up(bc, 5000), 0);
    cr_assert_eq(atomic_load(&F.authed), 2, "%d handshakes",
                 atomic_load(&F.authed));
    finish(bc);
}

Test(brick_conn, garbage_from_brick_drops_the_link)
{
    struct brick_conn *bc;

    F.garbage = true;
    start_fake();
    bc = conn(0, NULL, NULL, NULL);
    cr_assert_eq(brick_conn_wait_up(bc, 5000), 0);
    run_for(200);
    /* Down with EPROTO, then up again on a clean connection. */
    cr_assert_geq(atomic_load(&F.accepts), 2);
    cr_assert_eq(brick_conn_wait_up(bc, 5000), 0);
    finish(bc);
}

struct ev_seen {
    bool got;
    uint16_t op;
    struct inval_event ev;
};

static void event_cb(struct brick_conn *bc, uint16_t op, const void *msg,
                     void *arg)
{
    struct ev_seen *e = arg;

    (void)bc;
    e->got = true;
    e->op = op;
    e->ev = *(const struct inval_event *)msg;
}

Test(brick_conn, events_reach_on_event)
{
    struct brick_conn *bc;
    struct ev_seen e = {0};

    F.send_event = true;
    start_fake();
    bc = conn(0, NULL, event_cb, &e);
    cr_assert_eq(brick_conn_wait_up(bc, 5000), 0);
    run_until(&e.got, 2000);
    cr_assert(e.got);
    cr_assert_eq(e.op, OP_INVAL);
    cr_assert_eq(e.ev.id.hi, 7);
    cr_assert_eq(e.ev.id.lo, 8);
    cr_assert_eq(e.ev.what, INVAL_DATA);
    cr_assert_str_eq(e.ev.name, "x");
    finish(bc);
}

Test(brick_conn, close_fails_outstanding_calls_once_and_frees_everything)
{
    struct brick_conn *bc;
    struct counter c[5] = {{0}};
    struct getattr_req g = {.id = {0, 1}};
    bool closed = false;

    F.silent_conns = 1;
    start_fake();
    bc = conn(0, NULL, NULL, NULL);
    cr_assert_eq(brick_conn_wait_up(bc, 5000), 0);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(brick_call(bc, OP_GETATTR, &g, count_cb, &c[i]), 0);
    cr_assert_geq(brick_conn_outstanding(bc), 5);
    brick_conn_close(bc, closed_cb, &closed);
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(c[i].calls, 1);
        cr_assert_eq(c[i].status, -ENOTCONN);
    }
    cr_assert(!closed, "freed before its handles closed");
    uv_run(&L, UV_RUN_DEFAULT);
    cr_assert(closed);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(c[i].calls, 1);
    cr_assert_eq(uv_loop_close(&L), 0);
    atomic_store(&F.stop, true);
    pthread_join(F.th, NULL);
    close(F.lfd);
}

struct reentrant {
    struct brick_conn *bc;
    unsigned calls;
    unsigned after_close_call; /* brick_call() result from a callback */
    bool closed;
};

static void close_from_cb(int status, const void *rep, void *arg)
{
    struct reentrant *r = arg;
    struct getattr_req g = {.id = {0, 1}};

    (void)status;
    (void)rep;
    if (r->calls++ == 0)
        brick_conn_close(r->bc, closed_cb, &r->closed);
    /* A new call from a failing callback must be refused, not queued. */
    r->after_close_call +=
        brick_call(r->bc, OP_GETATTR, &g, close_from_cb, r) == -ENOTCONN;
}

Test(brick_conn, close_from_a_callback_while_the_link_goes_down)
{
    struct brick_conn *bc;
    struct reentrant r = {0};
    struct getattr_req g = {.id = {0, 1}};
    uint64_t t0 = now_ms();

    F.silent_conns = 1;
    start_fake();
    bc = conn(300, NULL, NULL, NULL);
    cr_assert_eq(brick_conn_wait_up(bc, 5000), 0);
    r.bc = bc;
    for (int i = 0; i < 5; i++)
        cr_assert_eq(brick_call(bc, OP_GETATTR, &g, close_from_cb, &r), 0);
    while (!r.closed && now_ms() - t0 < 5000)
        uv_run(&L, UV_RUN_ONCE);
    cr_assert(r.closed);
    cr_assert_eq(r.calls, 5, "%u callbacks for 5 calls", r.calls);
    cr_assert_eq(r.after_close_call, 5);
    cr_assert_eq(uv_run(&L, UV_RUN_DEFAULT), 0);
    cr_assert_eq(uv_loop_close(&L), 0);
    atomic_store(&F.stop, true);
    pthread_join(F.th, NULL);
    close(F.lfd);
}

Test(brick_conn, refused_connection_backs_off_and_wait_up_times_out)
{
    struct brick_conn *bc;
    struct states s = {0};
    uint64_t t0;

    close(F.lfd); /* nothing listens on the port any more */
    F.lfd = -1;
    bc = conn(0, state_cb, NULL, &s);
    t0 = now_ms();
    cr_assert_eq(brick_conn_wait_up(bc, 700), -ETIMEDOUT);
    cr_assert_geq(now_ms() - t0, 650);
    cr_assert_eq(brick_conn_last_error(bc), -ECONNREFUSED);
    /* attempts at 0, 100, 300 and maybe 700 ms */
    {
        unsigned attempts = 0;

        for (unsigned i = 0; i < s.n; i++)
            attempts += s.seen[i] == BRICK_CONNECTING;
        cr_assert_geq(attempts, 3);
        cr_assert_leq(attempts, 5);
    }
    {
        bool closed = false;

        brick_conn_close(bc, closed_cb, &closed);
        uv_run(&L, UV_RUN_DEFAULT);
        cr_assert(closed);
        cr_assert_eq(uv_loop_close(&L), 0);
    }
}
