/*
 * Data survives: many clients writing at once all land intact, and a daemon
 * killed with SIGKILL in the middle of a stream of writes and fsyncs loses
 * nothing it acknowledged (an acknowledged FSYNC promises the bytes; an
 * acknowledged CREATE promises the name and its id).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/id.h"
#include "itest_util.h"

static struct itest_vol *V;
static const struct rfs_id ROOT = {0, 1};

static void setup(void)
{
    V = itest_vol_new("dur", 1);
    itest_start_all(V);
}

static void teardown(void)
{
    itest_vol_free(V);
    V = NULL;
}

TestSuite(durability, .init = setup, .fini = teardown, .timeout = 120);

/* ---- 8 clients in parallel ---- */

#define NCLIENTS 8
#define CW_SIZE (4u << 20)
#define CW_CHUNK (256u << 10)
#define CW_DEPTH 4

struct cw {
    struct brick_conn *bc;  /* borrowed from V */
    struct rfs_id id;
    uint8_t *data;          /* owned: the whole file's contents */
    unsigned next;          /* next chunk to send */
    unsigned done;          /* chunks acknowledged */
    unsigned inflight;
    int err;
};

static void cw_pump(struct cw *c);

static void cw_write_cb(int status, const void *rep, void *arg)
{
    struct cw *c = arg;
    const struct write_rep *w = rep;

    c->inflight--;
    if (status < 0 && !c->err)
        c->err = status;
    else if (status == 0 && w->count != CW_CHUNK && !c->err)
        c->err = -EIO;
    c->done++;
    cw_pump(c);
}

static void cw_pump(struct cw *c)
{
    while (!c->err && c->inflight < CW_DEPTH && c->next < CW_SIZE / CW_CHUNK) {
        uint64_t off = (uint64_t)c->next * CW_CHUNK;
        struct write_req w = {.id = c->id, .offset = off,
                              .data = {c->data + off, CW_CHUNK}};
        int rc = brick_call(c->bc, OP_WRITE, &w, cw_write_cb, c);

        if (rc < 0) {
            c->err = rc;
            return;
        }
        c->next++;
        c->inflight++;
    }
}

Test(durability, eight_clients_write_different_files_in_parallel)
{
    static struct cw cw[NCLIENTS];
    uint8_t *buf = malloc(CW_SIZE);
    bool busy = true;

    cr_assert(buf);
    for (unsigned i = 0; i < NCLIENTS; i++) {
        char name[32];

        memset(&cw[i], 0, sizeof(cw[i]));
        cw[i].bc = itest_connect(V, 1);
        cw[i].data = malloc(CW_SIZE);
        cr_assert(cw[i].data);
        it_pattern(cw[i].data, CW_SIZE, 1000 + i, 0);
        snprintf(name, sizeof(name), "client-%u", i);
        cr_assert_eq(it_create(cw[i].bc, &ROOT, name, CREATE_EXCL, &cw[i].id,
                               NULL),
                     0);
    }
    for (unsigned i = 0; i < NCLIENTS; i++)
        cw_pump(&cw[i]);
    while (busy) {
        busy = false;
        for (unsigned i = 0; i < NCLIENTS; i++)
            busy |= cw[i].inflight > 0;
        if (busy)
            uv_run(&V->loop, UV_RUN_ONCE);
    }
    for (unsigned i = 0; i < NCLIENTS; i++) {
        cr_assert_eq(cw[i].err, 0, "client %u: %s", i, strerror(-cw[i].err));
        cr_assert_eq(cw[i].done, CW_SIZE / CW_CHUNK);
    }
    /* Read every file back through another client, and from the disk. */
    for (unsigned i = 0; i < NCLIENTS; i++) {
        struct brick_conn *other = cw[(i + 1) % NCLIENTS].bc;
        struct proto_attr a;
        char rel[32];
        int fd;

        IT_OK(it_getattr(other, &cw[i].id, &a));
        cr_assert_eq(a.size, CW_SIZE, "client %u: size %llu", i,
                     (unsigned long long)a.size);
        for (uint64_t off = 0; off < CW_SIZE; off += PROTO_MAX_IO) {
            uint32_t got;

            cr_assert_eq(it_read(other, &cw[i].id, off, PROTO_MAX_IO,
                                 buf + off, &got),
                         0);
            cr_assert_eq(got, PROTO_MAX_IO);
        }
        cr_assert(memcmp(buf, cw[i].data, CW_SIZE) == 0,
                  "client %u: data read back differs", i);
        snprintf(rel, sizeof(rel), "client-%u", i);
        fd = open(itest_brick_path(V, 1, rel), O_RDONLY);
        cr_assert(fd >= 0);
        cr_assert_eq(pread(fd, buf, CW_SIZE, 0), (ssize_t)CW_SIZE);
        close(fd);
        cr_assert(memcmp(buf, cw[i].data, CW_SIZE) == 0,
                  "client %u: data on disk differs", i);
        free(cw[i].data);
    }
    free(buf);
}

/* ---- kill -9 during writes + fsyncs ---- */

#define NWRITERS 4
#define KW_CHUNK (64u << 10)

struct kw {
    struct brick_conn *bc;  /* borrowed */
    struct rfs_id id;
    unsigned idx;
    unsigned chunk;         /* chunk being written */
    unsigned acked;         /* chunks made durable by an acknowledged FSYNC */
    bool running;
    int err;
    uint8_t buf[KW_CHUNK];  /* payload of the WRITE in flight */
};

static void kw_write(struct kw *k);

static void kw_fsync_cb(int status, const void *rep, void *arg)
{
    struct kw *k = arg;

    (void)rep;
    if (status < 0) {
        k->running = false;
        k->err = status;
        return;
    }
    k->acked = k->chunk + 1;
    k->chunk++;
    kw_write(k);
}

static void kw_write_cb(int status, const void *rep, void *arg)
{
    struct kw *k = arg;
    struct fsync_req f = {.id = k->id};
    int rc;

    (void)rep;
    if (status < 0) {
        k->running = false;
        k->err = status;
        return;
    }
    rc = brick_call(k->bc, OP_FSYNC, &f, kw_fsync_cb, k);
    if (rc < 0) {
        k->running = false;
        k->err = rc;
    }
}

static void kw_write(struct kw *k)
{
    struct write_req w = {.id = k->id, .offset = (uint64_t)k->chunk * KW_CHUNK,
                          .data = {k->buf, KW_CHUNK}};
    int rc;

    it_pattern(k->buf, KW_CHUNK, 5000 + k->idx, w.offset);
    rc = brick_call(k->bc, OP_WRITE, &w, kw_write_cb, k);
    if (rc < 0) {
        k->running = false;
        k->err = rc;
    }
}

/* Creates, one after the other, each acknowledged one recorded. */
struct kc {
    struct brick_conn *bc;  /* borrowed */
    struct rfs_id parent;
    unsigned n;             /* acknowledged creates */
    struct rfs_id ids[100000];
    struct rfs_id cur;
    bool running;
};

static void kc_next(struct kc *c);

static void kc_cb(int status, const void *rep, void *arg)
{
    struct kc *c = arg;
    const struct create_rep *r = rep;

    if (status < 0) {
        c->running = false;
        return;
    }
    cr_assert(rfs_id_eq(&r->attr.id, &c->cur));
    c->ids[c->n++] = c->cur;
    kc_next(c);
}

static void kc_next(struct kc *c)
{
    struct create_req q = {.parent = c->parent, .mode = S_IFREG | 0644,
                           .uid = getuid(), .gid = getgid(),
                           .flags = CREATE_EXCL};

    if (c->n >= sizeof(c->ids) / sizeof(c->ids[0])) {
        c->running = false;
        return;
    }
    rfs_id_random(&q.id);
    c->cur = q.id;
    snprintf(q.name, sizeof(q.name), "n%06u", c->n);
    if (brick_call(c->bc, OP_CREATE, &q, kc_cb, c) < 0)
        c->running = false;
}

static void kill_cb(uv_timer_t *t)
{
    (void)t;
    itest_brick_kill9(V, 1);
}

Test(durability, kill9_during_writes_and_fsyncs_keeps_what_was_acked)
{
    static struct kw kw[NWRITERS];
    static struct kc kc;
    struct brick_conn *bc = itest_connect(V, 1);
    uint8_t *want = malloc(KW_CHUNK), *got = malloc(KW_CHUNK);
    uv_timer_t killer;
    bool busy = true;
    unsigned total = 0;

    cr_assert(want && got);
    for (unsigned i = 0; i < NWRITERS; i++) {
        char name[32];

        memset(&kw[i], 0, sizeof(kw[i]));
        kw[i].bc = bc;
        kw[i].idx = i;
        snprintf(name, sizeof(name), "stream-%u", i);
        cr_assert_eq(it_create(bc, &ROOT, name, CREATE_EXCL, &kw[i].id, NULL),
                     0);
    }
    memset(&kc, 0, sizeof(kc));
    kc.bc = bc;
    IT_OK(it_mkdir(bc, &ROOT, "names", &kc.parent));
    for (unsigned i = 0; i < NWRITERS; i++) {
        kw[i].running = true;
        kw_write(&kw[i]);
    }
    kc.running = true;
    kc_next(&kc);
    uv_timer_init(&V->loop, &killer);
    uv_timer_start(&killer, kill_cb, 800, 0);
    while (busy) {
        busy = kc.running;
        for (unsigned i = 0; i < NWRITERS; i++)
            busy |= kw[i].running;
        if (busy)
            uv_run(&V->loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&killer, NULL);
    cr_assert(!itest_brick_alive(V, 1), "the streams ended before the kill");
    for (unsigned i = 0; i < NWRITERS; i++) {
        cr_assert_eq(kw[i].err, -ENOTCONN, "writer %u ended with %d", i,
                     kw[i].err);
        total += kw[i].acked;
    }
    cr_assert_gt(total, 4, "too few fsyncs acknowledged before the kill (%u)",
                 total);
    cr_assert_gt(kc.n, 10, "too few creates before the kill (%u)", kc.n);
    cr_log_info("killed after %u acknowledged fsyncs and %u creates", total,
                kc.n);

    itest_brick_start(V, 1);
    cr_assert_eq(itest_relink(V, bc, 15000), 0, "no reconnect: %s",
                 strerror(-brick_conn_last_error(bc)));
    for (unsigned i = 0; i < NWRITERS; i++) {
        struct proto_attr a;

        IT_OK(it_getattr(bc, &kw[i].id, &a)); /* the stream file survived */
        cr_assert_geq(a.size, (uint64_t)kw[i].acked * KW_CHUNK,
                      "stream %u: size %llu < %u acked chunks", i,
                      (unsigned long long)a.size, kw[i].acked);
        for (unsigned c = 0; c < kw[i].acked; c++) {
            uint32_t n;

            it_pattern(want, KW_CHUNK, 5000 + i, (uint64_t)c * KW_CHUNK);
            cr_assert_eq(it_read(bc, &kw[i].id, (uint64_t)c * KW_CHUNK,
                                 KW_CHUNK, got, &n),
                         0);
            cr_assert_eq(n, KW_CHUNK);
            cr_assert(memcmp(want, got, KW_CHUNK) == 0,
                      "stream %u chunk %u differs after kill -9", i, c);
        }
    }
    for (unsigned i = 0; i < kc.n; i++) {
        char name[16];
        struct proto_attr a;

        snprintf(name, sizeof(name), "n%06u", i);
        cr_assert_eq(it_lookup(bc, &kc.parent, name, &a), 0,
                     "acknowledged create %s lost", name);
        cr_assert(rfs_id_eq(&a.id, &kc.ids[i]), "%s has another id", name);
        /* and findable by id, through the ids/ index */
        IT_OK(it_getattr(bc, &kc.ids[i], &a));
    }
    free(want);
    free(got);
}

Test(durability, restart_keeps_ids_and_contents)
{
    struct brick_conn *bc = itest_connect(V, 1);
    struct rfs_id d, f;
    struct proto_attr a;
    char buf[16];
    uint32_t n;

    IT_OK(it_mkdir(bc, &ROOT, "dir", &d));
    IT_OK(it_create(bc, &d, "file", CREATE_EXCL, &f, NULL));
    IT_OK(it_write(bc, &f, 0, "persist", 7));
    IT_OK(it_fsync(bc, &f));
    cr_assert_eq(itest_brick_stop(V, 1), 0, "SIGTERM exit status not 0");
    itest_brick_start(V, 1);
    IT_OK(itest_relink(V, bc, 15000));
    IT_OK(it_getattr(bc, &d, &a));
    cr_assert(S_ISDIR(a.mode));
    IT_OK(it_lookup(bc, &d, "file", &a));
    cr_assert(rfs_id_eq(&a.id, &f));
    IT_OK(it_read(bc, &f, 0, sizeof(buf), buf, &n));
    cr_assert_eq(n, 7);
    cr_assert(memcmp(buf, "persist", 7) == 0);
}
