/*
 * Prometheus text endpoint: GET /metrics over HTTP/1.0 on the daemon loop.
 *
 * Each HTTP client reads at most HTTP_MAX bytes of request head, gets one
 * response and is closed ("Connection: close").  Rendering reads counters
 * only: it cannot disturb the brick.
 *
 * Invariants:
 *  1. An HTTP client is freed only in its close callback; metrics_stop()
 *     closes them all, so a graceful stop leaves no handle open.
 *  2. Memory per HTTP client is bounded (HTTP_MAX + one response).
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "server.h"

#define HTTP_MAX 4096

struct http_client {
    uv_tcp_t tcp;                 /* freed in its close cb */
    struct metrics *m;            /* borrowed */
    struct list link;             /* on m->clients */
    uv_write_t w;
    char *resp;                   /* owned: response being written */
    size_t used;
    bool closing;
    char buf[HTTP_MAX];
};

struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
};

static void sb_printf(struct sbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (b->oom)
        return;
    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = true;
            return;
        }
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        char *np = realloc(b->p, b->cap * 2 + (size_t)n);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = b->cap * 2 + (size_t)n;
    }
}

void metrics_init(struct metrics *m, struct server *srv)
{
    memset(m, 0, sizeof(*m));
    m->srv = srv;
    list_init(&m->clients);
}

static void op_label(uint16_t op, char out[32])
{
    const char *n = proto_op_name(op);
    size_t i;

    for (i = 0; n[i] && i < 31; i++)
        out[i] = (char)tolower((unsigned char)n[i]);
    out[i] = '\0';
}

static void render_ops(const struct metrics *m, struct sbuf *b)
{
    static const char *const fam[3][2] = {
        {"replicafs_ops_total", "Requests answered, by opcode."},
        {"replicafs_op_errors_total", "Requests answered with an error."},
        {"replicafs_op_latency_seconds_sum", "Sum of request latencies."}};
    char lbl[32];

    for (int f = 0; f < 3; f++) {
        sb_printf(b, "# HELP %s %s\n# TYPE %s counter\n", fam[f][0],
                  fam[f][1], fam[f][0]);
        for (uint16_t op = 0; op < OP__MAX; op++) {
            if (!m->ops[op])
                continue;
            op_label(op, lbl);
            if (f == 2)
                sb_printf(b, "%s{op=\"%s\"} %.6f\n", fam[f][0], lbl,
                          (double)m->lat_us[op] / 1e6);
            else
                sb_printf(b, "%s{op=\"%s\"} %llu\n", fam[f][0], lbl,
                          (unsigned long long)(f ? m->errors[op] : m->ops[op]));
        }
    }
}

static void one(struct sbuf *b, const char *name, const char *type,
                const char *help, unsigned long long v)
{
    sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name,
              type, name, v);
}

char *metrics_render(const struct metrics *m, size_t *len)
{
    const struct server *srv = m->srv;
    struct sbuf b = {malloc(8192), 0, 8192, false};

    if (!b.p)
        return NULL;
    sb_printf(&b, "# TYPE replicafs_brick_info gauge\n"
                  "replicafs_brick_info{volume=\"%s\",brick=\"%u\"} 1\n",
              srv->vol.name, srv->brick);
    render_ops(m, &b);
    one(&b, "replicafs_read_bytes_total", "counter", "READ payload bytes.",
        m->bytes_read);
    one(&b, "replicafs_written_bytes_total", "counter", "WRITE payload bytes.",
        m->bytes_written);
    one(&b, "replicafs_connected_clients", "gauge", "Open client connections.",
        srv->nconns);
    one(&b, "replicafs_connections_total", "counter", "Accepted connections.",
        m->conns_accepted);
    one(&b, "replicafs_auth_failures_total", "counter",
        "Handshakes that failed authentication.", m->auth_failures);
    one(&b, "replicafs_protocol_errors_total", "counter",
        "Connections closed for malformed frames.", m->proto_errors);
    one(&b, "replicafs_flow_control_pauses_total", "counter",
        "Times a connection hit its in-flight limits.", m->paused);
    one(&b, "replicafs_heal_index_entries", "gauge",
        "Objects in the heal index.", srv->heal.count);
    one(&b, "replicafs_fd_cache_open", "gauge", "Open fds in the id cache.",
        srv->ids.nopen);
    one(&b, "replicafs_fd_cache_hits_total", "counter", "Id cache hits.",
        srv->ids.hits);
    one(&b, "replicafs_fd_cache_misses_total", "counter", "Id cache misses.",
        srv->ids.misses);
    one(&b, "replicafs_fd_cache_evictions_total", "counter",
        "Fds closed to stay under the cap.", srv->ids.evictions);
    one(&b, "replicafs_locks_held", "gauge", "Granted locks.",
        srv->locks.nholds);
    one(&b, "replicafs_lock_waiters", "gauge", "Queued lock requests.",
        srv->locks.nwaiters);
    one(&b, "replicafs_leases", "gauge", "Read leases held by clients.",
        srv->leases.count);
    one(&b, "replicafs_lease_recalls_total", "counter",
        "Read leases recalled by a change.", srv->leases.recalled);
    one(&b, "replicafs_lease_recalls_expired_total", "counter",
        "Recalls not answered within the recall wait (the holder lost "
        "every lease).", srv->leases.expired);
    one(&b, "replicafs_lease_evictions_total", "counter",
        "Leases recalled to keep a connection under its cap.",
        srv->leases.evicted);
    one(&b, "replicafs_store_inflight", "gauge",
        "Disk operations in flight (io_uring and pool).", srv->st.inflight);
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}

/* ---- HTTP ---- */

static void http_close_cb(uv_handle_t *h)
{
    struct http_client *hc = h->data;

    list_del(&hc->link);
    free(hc->resp);
    free(hc);
}

static void http_close(struct http_client *hc)
{
    if (hc->closing)
        return;
    hc->closing = true;
    uv_close((uv_handle_t *)&hc->tcp, http_close_cb);
}

static void http_written_cb(uv_write_t *w, int status)
{
    (void)status;
    http_close(w->data);
}

static void http_respond(struct http_client *hc, const char *status,
                         const char *body, size_t blen)
{
    size_t cap = blen + 256;
    uv_buf_t buf;
    int n;

    uv_read_stop((uv_stream_t *)&hc->tcp);
    hc->resp = malloc(cap);
    if (!hc->resp) {
        http_close(hc);
        return;
    }
    n = snprintf(hc->resp, cap, "HTTP/1.0 %s\r\nContent-Type: text/plain; "
                 "version=0.0.4\r\nContent-Length: %zu\r\nConnection: close"
                 "\r\n\r\n", status, blen);
    memcpy(hc->resp + n, body, blen);
    buf = uv_buf_init(hc->resp, (unsigned)(n + blen));
    hc->w.data = hc;
    if (uv_write(&hc->w, (uv_stream_t *)&hc->tcp, &buf, 1, http_written_cb) < 0)
        http_close(hc);
}

static void http_request(struct http_client *hc)
{
    size_t len;
    char *body;

    if (strncmp(hc->buf, "GET /metrics ", 13) != 0 &&
        strncmp(hc->buf, "GET /metrics?", 13) != 0) {
        http_respond(hc, strncmp(hc->buf, "GET ", 4) ? "400 Bad Request"
                                                     : "404 Not Found",
                     "not found\n", 10);
        return;
    }
    body = metrics_render(hc->m, &len);
    if (!body) {
        http_respond(hc, "500 Internal Server Error", "oom\n", 4);
        return;
    }
    http_respond(hc, "200 OK", body, len);
    free(body);
}

static void http_alloc_cb(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    struct http_client *hc = h->data;

    (void)sz;
    *b = uv_buf_init(hc->buf + hc->used, (unsigned)(HTTP_MAX - 1 - hc->used));
}

static void http_read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct http_client *hc = s->data;

    (void)b;
    if (n < 0) {
        http_close(hc);
        return;
    }
    hc->used += (size_t)n;
    hc->buf[hc->used] = '\0';
    if (strstr(hc->buf, "\r\n\r\n") || strstr(hc->buf, "\n\n"))
        http_request(hc);
    else if (hc->used >= HTTP_MAX - 1) /* invariant 2 */
        http_respond(hc, "431 Request Header Fields Too Large", "", 0);
}

static void http_connection_cb(uv_stream_t *l, int status)
{
    struct metrics *m = l->data;
    struct http_client *hc;

    if (status < 0)
        return;
    hc = calloc(1, sizeof(*hc));
    if (!hc)
        return;
    hc->m = m;
    uv_tcp_init(l->loop, &hc->tcp);
    hc->tcp.data = hc;
    list_add_tail(&m->clients, &hc->link);
    if (uv_accept(l, (uv_stream_t *)&hc->tcp) < 0 ||
        uv_read_start((uv_stream_t *)&hc->tcp, http_alloc_cb, http_read_cb) < 0)
        http_close(hc);
}

int metrics_listen(struct metrics *m, uv_loop_t *loop,
                   const struct sockaddr_in *addr)
{
    int rc;

    uv_tcp_init(loop, &m->listener);
    m->listener.data = m;
    m->listening = true;
    rc = uv_tcp_bind(&m->listener, (const struct sockaddr *)addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&m->listener, 64, http_connection_cb);
    return rc;
}

void metrics_stop(struct metrics *m)
{
    struct list *pos, *tmp;

    if (m->listening) {
        uv_close((uv_handle_t *)&m->listener, NULL);
        m->listening = false;
    }
    list_for_each_safe(pos, tmp, &m->clients)
        http_close(container_of(pos, struct http_client, link));
}
