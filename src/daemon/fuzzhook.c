/*
 * Fuzzing hook (see fuzzhook.h).
 *
 * libFuzzer's entry point takes no context, so the harness state is one
 * static struct here: the only such state in the daemon, and it is not used
 * by replicafsd itself.
 *
 * Invariants:
 *  1. Each input gets its own fake connection; when the input is consumed
 *     the loop runs until the store is idle, then the connection is closed
 *     (dropping lock waits) and freed: nothing leaks from one input to the
 *     next except what is on the brick.
 *  2. The fake connection is READY from the start, so inputs exercise the
 *     request decoder and every handler, not just the handshake.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/config.h"
#include "common/log.h"
#include "conn.h"
#include "fuzzhook.h"
#include "server.h"
#include "stamp.h"

static struct {
    bool ready;
    char dir[64];
    uv_loop_t loop;
    struct vol_config vol;
    struct server srv;
} fz;

static void run_until_idle(void)
{
    while (fz.srv.st.inflight || fz.srv.st.unsubmitted || fz.srv.st.deferred)
        uv_run(&fz.loop, UV_RUN_ONCE);
    uv_run(&fz.loop, UV_RUN_NOWAIT); /* pending close callbacks */
}

static void feed(const uint8_t *data, size_t len)
{
    struct conn *c = conn_new_fake(&fz.srv);

    if (!c)
        return;
    conn_feed(c, data, len);
    run_until_idle();
    conn_free_fake(c); /* invariant 1: drops lock waits, frees when idle */
    run_until_idle();
}

/* A few objects with guessable ids, made through the dispatch itself. */
static void seed(void)
{
    struct mkdir_req md = {.parent = RFS_ROOT_ID, .name = "d", .id = {0, 2},
                           .mode = 0755};
    struct create_req cr = {.parent = {0, 2}, .name = "f", .id = {0, 4},
                            .mode = 0644};
    struct symlink_req sl = {.parent = {0, 2}, .name = "l", .id = {0, 5},
                             .target = "f"};
    uint8_t buf[8192];
    struct proto_hdr h = {.kind = PROTO_REQ, .reqid = 1};
    ssize_t n;

    h.op = OP_MKDIR;
    n = proto_encode(buf, sizeof(buf), &h, 0, &md, NULL);
    feed(buf, (size_t)n);
    md.parent = (struct rfs_id){0, 2};
    md.id = (struct rfs_id){0, 3};
    strcpy(md.name, "sub");
    n = proto_encode(buf, sizeof(buf), &h, 0, &md, NULL);
    feed(buf, (size_t)n);
    h.op = OP_CREATE;
    n = proto_encode(buf, sizeof(buf), &h, 0, &cr, NULL);
    feed(buf, (size_t)n);
    h.op = OP_SYMLINK;
    n = proto_encode(buf, sizeof(buf), &h, 0, &sl, NULL);
    feed(buf, (size_t)n);
}

static int setup(void)
{
    struct server_opts o = {0};
    char err[512];
    int rc;

    snprintf(fz.dir, sizeof(fz.dir), "/tmp/rfs-fuzz-XXXXXX");
    if (!mkdtemp(fz.dir))
        return -errno;
    log_setup("fuzz", false, getenv("RFS_FUZZ_LOG") ? LOG_LVL_DEBUG
                                                     : LOG_LVL_ERR);
    strcpy(fz.vol.name, "fuzz");
    fz.vol.replica = fz.vol.nbricks = 1;
    rc = stamp_init_dir(fz.dir, "fuzz", 1, NULL, err, sizeof(err));
    if (rc < 0)
        return rc;
    uv_loop_init(&fz.loop);
    o.dir = fz.dir;
    o.vol = &fz.vol;
    o.brick = 1;
    o.fd_cache = 64; /* small: eviction paths run too */
    rc = server_init(&fz.srv, &fz.loop, &o, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "fuzz setup: %s\n", err);
        return rc;
    }
    fz.ready = true;
    seed();
    return 0;
}

int daemon_fuzz_one(const uint8_t *data, size_t len)
{
    int rc;

    if (!fz.ready && (rc = setup()) < 0)
        return rc;
    feed(data, len);
    return 0;
}

void daemon_fuzz_fini(void)
{
    char cmd[128];

    if (!fz.ready)
        return;
    server_stop(&fz.srv);
    uv_run(&fz.loop, UV_RUN_DEFAULT);
    server_fini(&fz.srv);
    uv_run(&fz.loop, UV_RUN_DEFAULT);
    uv_loop_close(&fz.loop);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fz.dir);
    if (system(cmd) != 0)
        fprintf(stderr, "fuzz: could not remove %s\n", fz.dir);
    fz.ready = false;
}
