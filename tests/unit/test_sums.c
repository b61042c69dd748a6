/*
 * sums.c: the on-disk block sums format, its invalidation and filling.
 * Files live in a fresh temp dir per test.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/checksum.h"
#include "daemon/sums.h"

#define BS 4096u

static char dir[] = "/tmp/test_sums.XXXXXX";
static int sfd = -1, dfd = -1;

static void setup(void)
{
    char p[128];

    cr_assert_not_null(mkdtemp(dir));
    snprintf(p, sizeof(p), "%s/sums", dir);
    sfd = open(p, O_RDWR | O_CREAT, 0600);
    snprintf(p, sizeof(p), "%s/data", dir);
    dfd = open(p, O_RDWR | O_CREAT, 0600);
    cr_assert(sfd >= 0 && dfd >= 0);
}

static void teardown(void)
{
    char cmd[160];

    close(sfd);
    close(dfd);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
    strcpy(dir, "/tmp/test_sums.XXXXXX");
}

TestSuite(sums, .init = setup, .fini = teardown);

static void full(struct sums *s, uint32_t n)
{
    cr_assert_eq(sums_init(s, BS, n), 0);
    for (uint32_t i = 0; i < n; i++)
        sums_set(s, i, 1000 + i);
    s->stamp.ino = 42;
    s->stamp.size = (uint64_t)n * BS;
    s->stamp.mtime_sec = -5;
    s->stamp.ctime_nsec = 999999999;
    memset(s->stamp.boot, 0xab, SUMS_BOOT_LEN);
}

Test(sums, store_then_load_round_trips)
{
    struct sums s, t;

    full(&s, 21);
    cr_assert_eq(sums_store(sfd, &s), 0);
    cr_assert_eq(sums_load(sfd, &t), 0);
    cr_assert_eq(t.block_size, BS);
    cr_assert_eq(t.nblocks, 21);
    cr_assert(sums_stamp_eq(&s.stamp, &t.stamp));
    for (uint32_t i = 0; i < 21; i++) {
        cr_assert(sums_valid(&t, i));
        cr_assert_eq(t.sum[i], 1000 + i);
    }
    cr_assert(!sums_valid(&t, 21));
    /* a smaller image rewrites the file to its own size */
    sums_fini(&t);
    cr_assert_eq(sums_resize(&s, 3), 0);
    cr_assert_eq(sums_store(sfd, &s), 0);
    cr_assert_eq(sums_load(sfd, &t), 0);
    cr_assert_eq(t.nblocks, 3);
    sums_fini(&t);
    sums_fini(&s);
}

Test(sums, torn_or_foreign_files_are_refused)
{
    struct sums s, t;

    cr_assert_eq(sums_load(sfd, &t), -EINVAL); /* empty */
    full(&s, 9);
    cr_assert_eq(sums_store(sfd, &s), 0);
    cr_assert_eq(ftruncate(sfd, 128 + 8 + 8 * 8), 0); /* last sum cut off */
    cr_assert_eq(sums_load(sfd, &t), -EINVAL);
    cr_assert_null(t.sum);
    cr_assert_eq(sums_store(sfd, &s), 0);
    cr_assert_eq(pwrite(sfd, "X", 1, 0), 1); /* magic */
    cr_assert_eq(sums_load(sfd, &t), -EINVAL);
    cr_assert_eq(sums_invalidate(sfd, 0, 1), -EINVAL);
    cr_assert_eq(sums_store(sfd, &s), 0);
    cr_assert_eq(pwrite(sfd, "\x02", 1, 8), 1); /* version */
    cr_assert_eq(sums_load(sfd, &t), -EINVAL);
    sums_fini(&s);
}

static void expect_valid(const char *pattern)
{
    struct sums t;

    cr_assert_eq(sums_load(sfd, &t), 0);
    for (uint32_t i = 0; i < t.nblocks; i++)
        cr_assert_eq(sums_valid(&t, i), pattern[i] == '1', "block %u: %s", i,
                     pattern);
    sums_fini(&t);
}

Test(sums, invalidate_clears_exactly_the_touched_blocks)
{
    struct sums s;

    full(&s, 21);
    cr_assert_eq(sums_store(sfd, &s), 0);
    cr_assert_eq(sums_invalidate(sfd, 3 * BS + 1, 3 * BS + 2), 0);
    expect_valid("111011111111111111111");
    cr_assert_eq(sums_invalidate(sfd, 6 * BS, 18 * BS), 0); /* 6..17 */
    expect_valid("111011000000000000111");
    cr_assert_eq(sums_invalidate(sfd, 20 * BS - 1, 20 * BS), 0);
    expect_valid("111011000000000000101");
    cr_assert_eq(sums_invalidate(sfd, 100 * BS, UINT64_MAX), 0); /* past */
    expect_valid("111011000000000000101");
    cr_assert_eq(sums_invalidate(sfd, 5, 5), 0); /* empty range */
    expect_valid("111011000000000000101");
    cr_assert_eq(sums_invalidate(sfd, 1 * BS, UINT64_MAX), 0);
    expect_valid("100000000000000000000");
    sums_fini(&s);
}

Test(sums, stamp_rewrite_keeps_the_rest)
{
    struct sums s, t;
    struct sums_stamp st = {.ino = 7, .size = 9, .mtime_sec = 1};

    full(&s, 5);
    cr_assert_eq(sums_store(sfd, &s), 0);
    cr_assert_eq(sums_set_stamp(sfd, &st), 0);
    cr_assert_eq(sums_load(sfd, &t), 0);
    cr_assert(sums_stamp_eq(&t.stamp, &st));
    cr_assert(!sums_stamp_eq(&t.stamp, &s.stamp));
    cr_assert_eq(t.sum[4], 1004);
    struct sums_stamp got;
    cr_assert_eq(sums_get_stamp(sfd, &got), 0);
    cr_assert(sums_stamp_eq(&got, &st));
    sums_fini(&t);
    sums_fini(&s);
}

Test(sums, fill_reads_only_invalid_blocks_unless_deep)
{
    uint8_t data[3 * BS + 10], buf[BS];
    struct sums s;
    uint32_t computed, mismatched;

    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(i * 7 + 3);
    cr_assert_eq(pwrite(dfd, data, sizeof(data), 0), (ssize_t)sizeof(data));
    cr_assert_eq(sums_init(&s, BS, 4), 0);
    sums_set(&s, 1, 0xdead); /* a wrong but "valid" stored sum */
    cr_assert_eq(sums_fill(dfd, sizeof(data), &s, 0, 4, false, buf, &computed,
                           &mismatched), 0);
    cr_assert_eq(computed, 3);
    cr_assert_eq(mismatched, 0);
    cr_assert_eq(s.sum[0], rfs_xxh3(data, BS));
    cr_assert_eq(s.sum[1], 0xdead);
    cr_assert_eq(s.sum[3], rfs_xxh3(data + 3 * BS, 10)); /* short last */
    cr_assert_eq(sums_fill(dfd, sizeof(data), &s, 0, 4, true, buf, &computed,
                           &mismatched), 0);
    cr_assert_eq(computed, 4);
    cr_assert_eq(mismatched, 1);
    cr_assert_eq(s.sum[1], rfs_xxh3(data + BS, BS));
    /* the file shrank under us: -EIO, not a sum of garbage */
    cr_assert_eq(ftruncate(dfd, 10), 0);
    cr_assert_eq(sums_fill(dfd, sizeof(data), &s, 0, 4, true, buf, &computed,
                           &mismatched), -EIO);
    sums_fini(&s);
}

Test(sums, sizes_and_limits)
{
    struct sums s;

    cr_assert_eq(sums_blocks(0, BS), 0);
    cr_assert_eq(sums_blocks(1, BS), 1);
    cr_assert_eq(sums_blocks(BS, BS), 1);
    cr_assert_eq(sums_blocks(BS + 1, BS), 2);
    cr_assert(sums_block_size_ok(4096));
    cr_assert(sums_block_size_ok(1u << 20));
    cr_assert(!sums_block_size_ok(2048));
    cr_assert(!sums_block_size_ok(4096 + 4096 * 2));
    cr_assert(!sums_block_size_ok(2u << 20));
    cr_assert_eq(sums_init(&s, BS, 10), 0);
    sums_set(&s, 9, 1);
    cr_assert_eq(sums_resize(&s, 20), 0);
    cr_assert(sums_valid(&s, 9));
    cr_assert(!sums_valid(&s, 10));
    cr_assert_eq(sums_resize(&s, 0), 0);
    cr_assert(!sums_valid(&s, 0));
    cr_assert_eq(sums_store(sfd, &s), 0); /* an empty file's image */
    sums_fini(&s);
    cr_assert_eq(sums_load(sfd, &s), 0);
    cr_assert_eq(s.nblocks, 0);
    sums_fini(&s);
}

Test(sums, boot_id_is_read)
{
    uint8_t a[SUMS_BOOT_LEN], b[SUMS_BOOT_LEN], zero[SUMS_BOOT_LEN] = {0};

    cr_assert_eq(sums_boot_id(a), 0);
    cr_assert_eq(sums_boot_id(b), 0);
    cr_assert_eq(memcmp(a, b, SUMS_BOOT_LEN), 0);
    cr_assert_neq(memcmp(a, zero, SUMS_BOOT_LEN), 0);
}
