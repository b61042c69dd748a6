/*
 * A replicafsd must serve only clients that hold the volume key, survive any
 * bytes a peer sends, refuse every bad name, and refuse to start on a
 * directory that is not (or cannot become) its brick.
 *
 * Frames the encoder refuses to build (bad names, bad lengths) are written by
 * hand over a plain socket.  After every attack a second, well-behaved
 * client must still be served.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/id.h"
#include "itest_util.h"

static struct itest_vol *V;

static void setup(void)
{
    V = itest_vol_new("sec", 2);
    itest_brick_start(V, 1); /* brick 2 only has a directory */
}

static void teardown(void)
{
    itest_vol_free(V);
    V = NULL;
}

TestSuite(security, .init = setup, .fini = teardown, .timeout = 60);

/* A fresh, honest client gets answers (the daemon survived). */
static void assert_still_serving(void)
{
    struct brick_conn *bc = itest_connect(V, 1);
    struct ping_req q = {.stamp = 42};
    struct ping_rep r;
    struct proto_attr a;
    struct rfs_id root = RFS_ROOT_ID;

    cr_assert(itest_brick_alive(V, 1), "the daemon died");
    IT_OK(brick_call_sync(bc, OP_PING, &q, &r, NULL));
    cr_assert_eq(r.stamp, 42);
    IT_OK(it_getattr(bc, &root, &a));
    itest_disconnect(V, bc);
}

static void put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* A request header for a body of blen bytes. */
static void raw_hdr(uint8_t *buf, uint16_t op, uint64_t reqid, size_t blen)
{
    put_le(buf, PROTO_HDR_SIZE + blen, 4);
    put_le(buf + 4, op, 2);
    buf[6] = PROTO_REQ;
    buf[7] = 0;
    put_le(buf + 8, reqid, 8);
}

/* A LOOKUP frame in the root for `name` (nlen raw bytes).  Returns size. */
static size_t raw_lookup(uint8_t *buf, uint64_t reqid, const char *name,
                         size_t nlen)
{
    size_t blen = 16 + 2 + nlen;

    raw_hdr(buf, OP_LOOKUP, reqid, blen);
    put_le(buf + 16, 0, 8);
    put_le(buf + 24, 1, 8); /* the root id */
    put_le(buf + 32, nlen, 2);
    memcpy(buf + 34, name, nlen);
    return PROTO_HDR_SIZE + blen;
}

/* Send frame; expect an error reply with status `want` for reqid, or the
 * connection closed (when may_close).  Returns true if still open. */
static bool expect_error(int fd, const uint8_t *frame, size_t len,
                         uint64_t reqid, uint32_t want, bool may_close)
{
    uint8_t buf[4096];
    struct proto_hdr h;
    ssize_t n;

    cr_assert_eq(itest_raw_send(fd, frame, len), 0);
    n = itest_raw_recv(fd, buf, sizeof(buf));
    if (n <= 0) {
        cr_assert(may_close && n == 0, "no reply and no close: %zd", n);
        return false;
    }
    cr_assert_eq(proto_hdr_decode(buf, &h), 0);
    cr_assert_eq(h.kind, PROTO_REPLY);
    cr_assert_eq(h.reqid, reqid);
    cr_assert_geq(h.len, PROTO_HDR_SIZE + 4);
    {
        uint32_t st = buf[16] | buf[17] << 8 | buf[18] << 16 |
                      (uint32_t)buf[19] << 24;

        cr_assert_eq(st, want, "status %u, want %u", st, want);
    }
    return true;
}

/* A PING on a raw authenticated socket gets its reply. */
static void assert_raw_usable(int fd)
{
    struct proto_hdr h = {.op = OP_PING, .kind = PROTO_REQ, .reqid = 777};
    struct ping_req q = {.stamp = 5};
    uint8_t buf[256];
    ssize_t n = proto_encode(buf, sizeof(buf), &h, 0, &q, NULL);

    cr_assert_gt(n, 0);
    cr_assert_eq(itest_raw_send(fd, buf, (size_t)n), 0);
    n = itest_raw_recv(fd, buf, sizeof(buf));
    cr_assert_gt(n, 0, "connection unusable after an error reply: %zd", n);
    cr_assert_eq(proto_hdr_decode(buf, &h), 0);
    cr_assert_eq(h.reqid, 777);
}

/* ---- authentication ---- */

Test(security, wrong_key_fails_auth_and_nothing_is_served)
{
    struct vol_config bad = V->cfg;
    struct brick_conn *bc;
    int rc;

    bad.key[0] ^= 1;
    rc = brick_conn_new(&V->loop, &bad, 1, NULL, &bc);
    cr_assert_eq(rc, 0);
    V->conns[V->nconns++] = bc; /* closed by the fixture */
    IT_RC(brick_conn_wait_up(bc, 5000), -EACCES);
    cr_assert_eq(brick_conn_last_error(bc), -EACCES);
    cr_assert_neq(brick_conn_state(bc), BRICK_UP);
    {
        struct getattr_req g = {.id = RFS_ROOT_ID};

        cr_assert_eq(brick_call_sync(bc, OP_GETATTR, &g, NULL, NULL),
                     -ENOTCONN);
    }
    assert_still_serving();
}

Test(security, forged_auth_mac_is_refused_then_requests_close)
{
    int fd = itest_raw_connect(V, 1);
    struct proto_hdr h = {.op = OP_HELLO, .kind = PROTO_REQ, .reqid = 1};
    struct hello_req hq = {.magic = PROTO_MAGIC, .version_min = 1,
                           .version_max = 1};
    struct auth_req aq;
    uint8_t buf[4096];
    ssize_t n;

    snprintf(hq.volume, sizeof(hq.volume), "%s", V->cfg.name);
    n = proto_encode(buf, sizeof(buf), &h, 0, &hq, NULL);
    cr_assert_eq(itest_raw_send(fd, buf, (size_t)n), 0);
    cr_assert_gt(itest_raw_recv(fd, buf, sizeof(buf)), 0);
    memset(aq.mac, 0xa5, sizeof(aq.mac)); /* not the client MAC */
    h = (struct proto_hdr){.op = OP_AUTH, .kind = PROTO_REQ, .reqid = 2};
    n = proto_encode(buf, sizeof(buf), &h, 0, &aq, NULL);
    cr_assert_eq(itest_raw_send(fd, buf, (size_t)n), 0);
    n = itest_raw_recv(fd, buf, sizeof(buf));
    if (n > 0) {
        /* An EACCES reply, then nothing else is served. */
        cr_assert_eq(proto_hdr_decode(buf, &h), 0);
        cr_assert_eq(buf[16], EACCES);
        {
            uint8_t f[64];
            size_t len = raw_lookup(f, 3, "x", 1);

            itest_raw_send(fd, f, len);
            n = itest_raw_recv(fd, buf, sizeof(buf));
            cr_assert(n <= 0, "served a request after a failed AUTH");
        }
    }
    close(fd);
    assert_still_serving();
}

Test(security, wrong_volume_name_is_refused)
{
    int fd = itest_raw_connect(V, 1);
    struct proto_hdr h = {.op = OP_HELLO, .kind = PROTO_REQ, .reqid = 1};
    struct hello_req hq = {.magic = PROTO_MAGIC, .version_min = 1,
                           .version_max = 1, .volume = "other"};
    uint8_t buf[4096];
    ssize_t n = proto_encode(buf, sizeof(buf), &h, 0, &hq, NULL);

    cr_assert_eq(itest_raw_send(fd, buf, (size_t)n), 0);
    n = itest_raw_recv(fd, buf, sizeof(buf));
    cr_assert(n <= 0 || buf[16] != 0, "HELLO for another volume accepted");
    close(fd);
    assert_still_serving();
}

Test(security, request_before_auth_closes_the_connection)
{
    uint8_t f[64];
    size_t len;
    int fd;

    /* Straight after connect. */
    fd = itest_raw_connect(V, 1);
    len = raw_lookup(f, 1, "x", 1);
    cr_assert_eq(itest_raw_send(fd, f, len), 0);
    cr_assert(itest_raw_closed(fd, 3000), "not closed");
    close(fd);

    /* After HELLO, before AUTH. */
    fd = itest_raw_connect(V, 1);
    {
        struct proto_hdr h = {.op = OP_HELLO, .kind = PROTO_REQ, .reqid = 1};
        struct hello_req hq = {.magic = PROTO_MAGIC, .version_min = 1,
                               .version_max = 1};
        uint8_t buf[4096];
        ssize_t n;

        snprintf(hq.volume, sizeof(hq.volume), "%s", V->cfg.name);
        n = proto_encode(buf, sizeof(buf), &h, 0, &hq, NULL);
        cr_assert_eq(itest_raw_send(fd, buf, (size_t)n), 0);
        cr_assert_gt(itest_raw_recv(fd, buf, sizeof(buf)), 0);
    }
    cr_assert_eq(itest_raw_send(fd, f, len), 0);
    cr_assert(itest_raw_closed(fd, 3000), "not closed after HELLO");
    close(fd);
    assert_still_serving();
}

/* ---- malformed frames ---- */

Test(security, garbage_bytes_close_the_connection)
{
    static const uint8_t junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    int fd;

    fd = itest_raw_connect(V, 1);
    cr_assert_eq(itest_raw_send(fd, junk, sizeof(junk) - 1), 0);
    cr_assert(itest_raw_closed(fd, 3000), "garbage before auth kept open");
    close(fd);

    fd = itest_raw_connect(V, 1);
    cr_assert_eq(itest_raw_handshake(V, fd), 0);
    cr_assert_eq(itest_raw_send(fd, junk, sizeof(junk) - 1), 0);
    cr_assert(itest_raw_closed(fd, 3000), "garbage after auth kept open");
    close(fd);
    assert_still_serving();
}

Test(security, truncated_frame_then_hangup)
{
    uint8_t f[64];
    size_t len = raw_lookup(f, 5, "abc", 3);
    int fd = itest_raw_connect(V, 1);

    cr_assert_eq(itest_raw_handshake(V, fd), 0);
    cr_assert_eq(itest_raw_send(fd, f, len - 2), 0);
    shutdown(fd, SHUT_WR);
    cr_assert(itest_raw_closed(fd, 3000), "half frame + EOF kept open");
    close(fd);
    /* A header alone, then silence: the next honest client is served. */
    fd = itest_raw_connect(V, 1);
    cr_assert_eq(itest_raw_handshake(V, fd), 0);
    cr_assert_eq(itest_raw_send(fd, f, PROTO_HDR_SIZE), 0);
    assert_still_serving();
    close(fd);
    assert_still_serving();
}

Test(security, oversized_and_undersized_length_headers_close)
{
    uint8_t f[PROTO_HDR_SIZE];
    int fd;

    raw_hdr(f, OP_WRITE, 9, 0);
    put_le(f, PROTO_MAX_FRAME + 1, 4);
    fd = itest_raw_connect(V, 1);
    cr_assert_eq(itest_raw_handshake(V, fd), 0);
    cr_assert_eq(itest_raw_send(fd, f, sizeof(f)), 0);
    cr_assert(itest_raw_closed(fd, 3000), "oversized length kept open");
    close(fd);

    put_le(f, 0xffffffffu, 4);
    fd = itest_raw_connect(V, 1);
    cr_assert_eq(itest_raw_send(fd, f, sizeof(f)), 0);
    cr_assert(itest_raw_closed(fd, 3000), "4 GiB length before auth open");
    close(fd);

    put_le(f, 3, 4);
    fd = itest_raw_connect(V, 1);
    cr_assert_eq(itest_raw_handshake(V, fd), 0);
    cr_assert_eq(itest_raw_send(fd, f, sizeof(f)), 0);
    cr_assert(itest_raw_closed(fd, 3000), "length < header kept open");
    close(fd);

    /* Nonzero flags. */
    raw_hdr(f, OP_PING, 9, 0);
    f[7] = 1;
    fd = itest_raw_connect(V, 1);
    cr_assert_eq(itest_raw_handshake(V, fd), 0);
    cr_assert_eq(itest_raw_send(fd, f, sizeof(f)), 0);
    cr_assert(itest_raw_closed(fd, 3000), "flags != 0 kept open");
    close(fd);
    assert_still_serving();
}

Test(security, body_with_trailing_bytes_or_short_fields_is_closed)
{
    uint8_t f[128];
    size_t len = raw_lookup(f, 6, "abc", 3);
    int fd = itest_raw_connect(V, 1);

    /* The name length says 3 but the frame carries 5 more bytes. */
    put_le(f, len + 5, 4);
    memset(f + len, 'x', 5);
    cr_assert_eq(itest_raw_handshake(V, fd), 0);
    cr_assert_eq(itest_raw_send(fd, f, len + 5), 0);
    cr_assert(itest_raw_closed(fd, 3000), "trailing bytes accepted");
    close(fd);

    /* The name length runs past the body. */
    len = raw_lookup(f, 7, "abc", 3);
    put_le(f + 32, 200, 2);
    fd = itest_raw_connect(V, 1);
    cr_assert_eq(itest_raw_handshake(V, fd), 0);
    cr_assert_eq(itest_raw_send(fd, f, len), 0);
    cr_assert(itest_raw_closed(fd, 3000), "overlong field accepted");
    close(fd);
    assert_still_serving();
}

Test(security, unknown_opcode_gets_enosys_and_the_link_stays)
{
    uint8_t f[PROTO_HDR_SIZE + 8];
    int fd = itest_raw_connect(V, 1);

    cr_assert_eq(itest_raw_handshake(V, fd), 0);
    raw_hdr(f, 50, 1234, 8); /* 50: no such op */
    memset(f + PROTO_HDR_SIZE, 0, 8);
    expect_error(fd, f, sizeof(f), 1234, ENOSYS, false);
    assert_raw_usable(fd);
    raw_hdr(f, OP__MAX + 100, 1235, 0);
    expect_error(fd, f, PROTO_HDR_SIZE, 1235, ENOSYS, false);
    assert_raw_usable(fd);
    close(fd);
    assert_still_serving();
}

Test(security, bad_names_are_einval_or_close)
{
    struct {
        const char *what;
        const char *name;
        size_t len;
    } bad[] = {
        {"..", "..", 2},
        {".", ".", 1},
        {"a/b", "a/b", 3},
        {"/", "/", 1},
        {"NUL inside", "ab\0cd", 5},
        {"empty", "", 0},
        {"256 bytes", NULL, 256},
    };
    char longname[300];
    int fd = itest_raw_connect(V, 1);

    memset(longname, 'n', sizeof(longname));
    cr_assert_eq(itest_raw_handshake(V, fd), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t f[512];
        const char *name = bad[i].name ? bad[i].name : longname;
        size_t len = raw_lookup(f, 100 + i, name, bad[i].len);

        if (fd < 0) {
            fd = itest_raw_connect(V, 1);
            cr_assert_eq(itest_raw_handshake(V, fd), 0);
        }
        if (expect_error(fd, f, len, 100 + i, EINVAL, true)) {
            assert_raw_usable(fd);
        } else {
            close(fd);
            fd = -1;
        }
        assert_still_serving();
    }
    if (fd >= 0)
        close(fd);
    /* 255 bytes is fine: a real name (ENOENT), not EINVAL. */
    {
        struct brick_conn *bc = itest_connect(V, 1);
        char ok[256];

        memset(ok, 'k', 255);
        ok[255] = '\0';
        IT_RC(it_lookup(bc, &RFS_ROOT_ID, ok, NULL), -ENOENT);
        cr_assert_eq(it_create(bc, &RFS_ROOT_ID, ok, CREATE_EXCL, NULL, NULL),
                     0);
    }
}

Test(security, bad_names_in_every_name_carrying_op)
{
    struct brick_conn *bc = itest_connect(V, 1);
    const struct rfs_id root = RFS_ROOT_ID;
    struct rfs_id f;

    /* The codec refuses these before they leave (-EINVAL from brick_call);
     * the raw test above covers what a hostile client sends. */
    IT_RC(it_mkdir(bc, &root, "..", NULL), -EINVAL);
    IT_RC(it_create(bc, &root, "a/b", 0, NULL, NULL), -EINVAL);
    IT_OK(it_create(bc, &root, "ok", 0, &f, NULL));
    {
        struct rename_req r = {.parent = root, .name = "ok",
                               .newparent = root, .newname = "."};

        IT_RC(brick_call_sync(bc, OP_RENAME, &r, NULL, NULL), -EINVAL);
    }
    /* Names that are valid components but try to escape: none can, since
     * they are single components; the object stays inside the brick. */
    {
        struct stat st;

        cr_assert_eq(stat(itest_brick_path(V, 1, "ok"), &st), 0);
    }
}

/* ---- startup refusals ---- */

Test(security, unstamped_dir_without_init_exits_2)
{
    const char *args[] = {"--brick", "2", "--dir", V->bricks[1].dir,
                          "--foreground", NULL};

    cr_assert_eq(itest_run_daemon(V, NULL, 10000, args), 2);
    {
        struct stat st;
        char p[600];

        snprintf(p, sizeof(p), "%s/.replicafs", V->bricks[1].dir);
        cr_assert_neq(stat(p, &st), 0, "the refused dir was stamped");
    }
}

Test(security, dir_stamped_for_another_brick_exits_2)
{
    const char *args[] = {"--brick", "2", "--dir", V->bricks[0].dir,
                          "--foreground", NULL};

    itest_brick_stop(V, 1); /* brick 1's dir is stamped for brick 1 */
    cr_assert_eq(itest_run_daemon(V, NULL, 10000, args), 2);
}

Test(security, dir_stamped_for_another_volume_exits_2)
{
    char other[600], text[1024], key[600];
    FILE *f;
    const char *args_other[] = {"--brick", "1", "--dir", V->bricks[0].dir,
                                "--foreground", NULL};

    itest_brick_stop(V, 1);
    /* The same brick number and address, another volume name. */
    snprintf(other, sizeof(other), "%s/other.vol", V->tmp);
    snprintf(key, sizeof(key), "%s", V->keyfile);
    snprintf(text, sizeof(text),
             "[volume]\nname = other\nreplica = 1\nsecret-file = %s\n"
             "[brick.1]\naddress = 127.0.0.1:%u\n",
             key, V->bricks[0].port);
    f = fopen(other, "w");
    cr_assert(f);
    fputs(text, f);
    fclose(f);
    cr_assert_eq(itest_run_daemon(V, other, 10000, args_other), 2);
}

Test(security, init_on_a_non_empty_dir_exits_2)
{
    char p[600];
    FILE *f;
    const char *args[] = {"--brick", "2", "--dir", V->bricks[1].dir, "--init",
                          "--foreground", NULL};

    snprintf(p, sizeof(p), "%s/precious.txt", V->bricks[1].dir);
    f = fopen(p, "w");
    cr_assert(f);
    fputs("do not lose me\n", f);
    fclose(f);
    cr_assert_eq(itest_run_daemon(V, NULL, 10000, args), 2);
    {
        struct stat st;

        cr_assert_eq(stat(p, &st), 0, "the existing file is gone");
        snprintf(p, sizeof(p), "%s/.replicafs", V->bricks[1].dir);
        cr_assert_neq(stat(p, &st), 0, "a non-empty dir was stamped");
    }
}

Test(security, a_second_init_of_a_stamped_brick_exits_2)
{
    const char *args[] = {"--brick", "1", "--dir", V->bricks[0].dir, "--init",
                          "--foreground", NULL};

    itest_brick_stop(V, 1);
    cr_assert_eq(itest_run_daemon(V, NULL, 10000, args), 2);
}
