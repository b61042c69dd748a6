/* Request dispatch through the fuzz hook: crafted and garbage frames run
 * through a fake authenticated connection of an in-process brick; every
 * case must come back (no hang, no crash; ASan checks memory). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/fuzzhook.h"
#include "replicafs/proto.h"

static void teardown(void)
{
    daemon_fuzz_fini();
}

TestSuite(dispatch, .fini = teardown);

static size_t enc(uint8_t *buf, size_t cap, uint16_t op, const void *msg)
{
    struct proto_hdr h = {.op = op, .kind = PROTO_REQ, .reqid = 7};
    ssize_t n = proto_encode(buf, cap, &h, 0, msg, NULL);

    cr_assert_gt(n, 0, "op %u encodes", op);
    return (size_t)n;
}

Test(dispatch, every_op_on_seeded_objects_returns)
{
    static uint8_t buf[1 << 16];
    struct rfs_id file = {0, 4}, dir = {0, 2}, link = {0, 5};
    struct getattr_req ga = {.id = file};
    struct read_req rd = {.id = file, .offset = 0, .size = 100};
    struct readdir_req rdd = {.id = dir, .max_bytes = 4096};
    struct readlink_req rl = {.id = link};
    struct xattrop_req xo = {.id = file, .dirty = 1, .npending = 2,
                             .pending = {0, 1}};
    struct inodelk_req lk = {.id = file, .owner = 1, .type = LK_WR};
    struct inodelk_req lk2 = {.id = file, .owner = 2, .type = LK_WR};
    struct rename_req rn = {.parent = dir, .newparent = dir, .name = "f",
                            .newname = "g"};
    struct statfs_req sf = {0};
    struct heal_list_req hl = {.max = 10};
    size_t n = 0;

    cr_assert_eq(daemon_fuzz_one((const uint8_t *)"", 0), 0);
    n += enc(buf + n, sizeof(buf) - n, OP_GETATTR, &ga);
    n += enc(buf + n, sizeof(buf) - n, OP_READ, &rd);
    n += enc(buf + n, sizeof(buf) - n, OP_READDIR, &rdd);
    n += enc(buf + n, sizeof(buf) - n, OP_READLINK, &rl);
    n += enc(buf + n, sizeof(buf) - n, OP_XATTROP, &xo);
    n += enc(buf + n, sizeof(buf) - n, OP_INODELK, &lk);
    n += enc(buf + n, sizeof(buf) - n, OP_INODELK, &lk2); /* blocks */
    n += enc(buf + n, sizeof(buf) - n, OP_RENAME, &rn);
    n += enc(buf + n, sizeof(buf) - n, OP_STATFS, &sf);
    n += enc(buf + n, sizeof(buf) - n, OP_HEAL_LIST, &hl);
    cr_assert_eq(daemon_fuzz_one(buf, n), 0);
    rn.name[0] = 'g';
    rn.newname[0] = 'f';
    n = enc(buf, sizeof(buf), OP_RENAME, &rn);
    cr_assert_eq(daemon_fuzz_one(buf, n), 0);
}

Test(dispatch, garbage_and_truncated_frames_return)
{
    static uint8_t buf[4096];
    struct getattr_req ga = {.id = {0, 4}};

    srand(42);
    for (int round = 0; round < 200; round++) {
        size_t len = (size_t)(rand() % (int)sizeof(buf));

        for (size_t i = 0; i < len; i++)
            buf[i] = (uint8_t)rand();
        cr_assert_eq(daemon_fuzz_one(buf, len), 0);
    }
    /* a valid frame cut short at every length */
    {
        size_t n = enc(buf, sizeof(buf), OP_GETATTR, &ga);

        for (size_t cut = 0; cut <= n; cut++)
            cr_assert_eq(daemon_fuzz_one(buf, cut), 0);
    }
}

/* A connection that closes while its OPEN, OPENX or CREATE_OPEN is still
 * on the store: the pin the late reply adds must not outlive the connection
 * (the fuzzer found 6 pins leaked, with their objects; ASan's leak check
 * in the sanitizer suite is what fails here). */
Test(dispatch, pins_of_a_closing_connection_are_dropped)
{
    static uint8_t buf[4096];
    struct create_req cr = {.parent = {0, 2}, .id = {0, 77}, .mode = 0100644,
                            .flags = CREATE_EXCL | CREATE_OPEN};
    struct open_req op = {.id = {0, 4}, .flags = 0};
    size_t n = 0;

    strcpy(cr.name, "pinned-late");
    n += enc(buf + n, sizeof(buf) - n, OP_CREATE, &cr);
    n += enc(buf + n, sizeof(buf) - n, OP_OPEN, &op);
    n += enc(buf + n, sizeof(buf) - n, OP_OPENX, &op); /* its markers too */
    /* A header whose length is too small: the connection closes at once,
     * before the store has answered either request. */
    memset(buf + n, 0, PROTO_HDR_SIZE);
    n += PROTO_HDR_SIZE;
    cr_assert_eq(daemon_fuzz_one(buf, n), 0);
}

