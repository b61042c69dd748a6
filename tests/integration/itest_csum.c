/*
 * OP_CHECKSUM against a real replicafsd: sums match xxh3-64 of the data,
 * the brick stores them (.replicafs/sums/hh/<hex>) and uses them again,
 * writes and truncates through the daemon void exactly what they touch,
 * edits behind the daemon's back void the whole file (its ctime moved),
 * and CHECKSUM_DEEP re-reads even when the stored sums look valid.
 *
 * The "stored sums are used" checks tamper with a stored sum: a plain
 * CHECKSUM then returns the tampered value (it did not re-read), a deep one
 * returns the truth.  That is exactly the silent-corruption case: data and
 * stored sum disagree while every stamp matches.
 *
 * Repro: build-dir/tests/itest_csum --jobs 1 --verbose
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
#include "common/id.h"
#include "itest_util.h"

#define BS 65536u

static struct itest_vol *V;
static struct brick_conn *BC;
static const struct rfs_id ROOT = {0, 1};

static void setup(void)
{
    V = itest_vol_new("itcsum", 1);
    itest_start_all(V);
    BC = itest_connect(V, 1);
}

static void teardown(void)
{
    itest_vol_free(V);
    V = NULL;
}

TestSuite(csum, .init = setup, .fini = teardown, .timeout = 60);

struct got {
    uint64_t size;
    uint32_t count;
    uint64_t sum[64];
};

static int csum(const struct rfs_id *id, uint64_t off, uint64_t len,
                uint32_t bs, uint32_t flags, struct got *g)
{
    struct checksum_req q = {.id = *id, .offset = off, .length = len,
                             .block_size = bs, .flags = flags};
    struct checksum_rep rep;
    void *frame = NULL;
    int rc = brick_call_sync(BC, OP_CHECKSUM, &q, &rep, &frame);

    if (rc < 0)
        return rc;
    cr_assert_leq(rep.count, 64);
    g->size = rep.size;
    g->count = rep.count;
    for (uint32_t i = 0; i < rep.count; i++) {
        uint64_t v = 0;
        for (int k = 7; k >= 0; k--)
            v = v << 8 | rep.sums.data[8 * i + (unsigned)k];
        g->sum[i] = v;
    }
    free(frame);
    return 0;
}

static const char *sums_rel(const struct rfs_id *id)
{
    static char out[128];
    char hex[RFS_ID_HEX_LEN + 1];

    rfs_id_to_hex(id, hex);
    snprintf(out, sizeof(out), ".replicafs/sums/%.2s/%s", hex, hex);
    return out;
}

/* Local model of the file. */
static uint8_t model[6 * BS];
static size_t model_len;

static void expect_model(const struct got *g, uint32_t first)
{
    cr_assert_eq(g->size, model_len);
    for (uint32_t i = 0; i < g->count; i++) {
        size_t off = (size_t)(first + i) * BS;
        size_t n = model_len - off < BS ? model_len - off : BS;

        cr_assert_eq(g->sum[i], rfs_xxh3(model + off, n),
                     "block %u: wrong sum", first + i);
    }
}

static void make(const char *name, struct rfs_id *id, size_t len)
{
    IT_OK(it_create(BC, &ROOT, name, CREATE_EXCL, id, NULL));
    it_pattern(model, len, 7, 0);
    model_len = len;
    IT_OK(it_write(BC, id, 0, model, (uint32_t)len));
}

/* Overwrite stored sum i of id's sums file (nblocks slots) on disk. */
static void tamper(const struct rfs_id *id, uint32_t nblocks, uint32_t i,
                   uint64_t v)
{
    int fd = open(itest_brick_path(V, 1, sums_rel(id)), O_RDWR);
    size_t bitmap = ((nblocks + 7) / 8 + 7) & ~(size_t)7;
    uint8_t raw[8];

    cr_assert_geq(fd, 0, "open sums file: %s", strerror(errno));
    for (int k = 0; k < 8; k++)
        raw[k] = (uint8_t)(v >> (8 * k));
    cr_assert_eq(pwrite(fd, raw, 8, 128 + (off_t)bitmap + 8 * (off_t)i), 8);
    close(fd);
}

Test(csum, sums_match_xxh3_and_are_stored)
{
    struct rfs_id id;
    struct got g;
    struct stat st;

    make("a", &id, 3 * BS + 100);
    IT_OK(csum(&id, 0, 0, BS, 0, &g));
    cr_assert_eq(g.count, 4);
    expect_model(&g, 0);
    cr_assert_eq(stat(itest_brick_path(V, 1, sums_rel(&id)), &st), 0,
                 "no sums file stored");
    cr_assert_eq(st.st_size, 128 + 8 + 4 * 8);
    /* a range: blocks 1..2 */
    IT_OK(csum(&id, BS, 2 * BS, BS, 0, &g));
    cr_assert_eq(g.count, 2);
    expect_model(&g, 1);
    /* past the end: nothing */
    IT_OK(csum(&id, 8 * BS, 0, BS, 0, &g));
    cr_assert_eq(g.count, 0);
}

Test(csum, stored_sums_are_used_and_deep_rereads)
{
    struct rfs_id id;
    struct got g;

    make("b", &id, 2 * BS);
    IT_OK(csum(&id, 0, 0, BS, 0, &g));
    expect_model(&g, 0);
    tamper(&id, 2, 1, 0x1234);
    IT_OK(csum(&id, 0, 0, BS, 0, &g));
    cr_assert_eq(g.sum[1], 0x1234, "plain CHECKSUM must use the stored sum");
    IT_OK(csum(&id, 0, 0, BS, CHECKSUM_DEEP, &g));
    expect_model(&g, 0);
    /* deep rewrote the store with the truth */
    IT_OK(csum(&id, 0, 0, BS, 0, &g));
    expect_model(&g, 0);
}

Test(csum, write_and_truncate_void_only_what_they_touch)
{
    struct rfs_id id;
    struct setattr_req sa = {0};
    struct attr_rep ar;
    struct got g;
    const char patch[] = "PATCHED";

    make("c", &id, 5 * BS);
    IT_OK(csum(&id, 0, 0, BS, 0, &g));
    /* tamper block 0: if the write below voided it, it would be recomputed */
    tamper(&id, 5, 0, 0x55);
    IT_OK(it_write(BC, &id, 3 * BS + 10, patch, sizeof(patch)));
    memcpy(model + 3 * BS + 10, patch, sizeof(patch));
    IT_OK(csum(&id, 0, 0, BS, 0, &g));
    cr_assert_eq(g.sum[0], 0x55, "a write to block 3 voided block 0");
    model_len = 5 * BS;
    for (uint32_t i = 1; i < 5; i++) {
        struct got one = g;
        one.count = 1;
        one.sum[0] = g.sum[i];
        expect_model(&one, i);
    }
    /* truncate into block 1, then grow again (hole) */
    sa.id = id;
    sa.valid = SETATTR_SIZE;
    sa.size = BS + 5;
    IT_OK(brick_call_sync(BC, OP_SETATTR, &sa, &ar, NULL));
    model_len = BS + 5;
    IT_OK(csum(&id, 0, 0, BS, 0, &g));
    cr_assert_eq(g.count, 2);
    cr_assert_eq(g.sum[0], 0x55);
    cr_assert_eq(g.sum[1], rfs_xxh3(model + BS, 5));
    IT_OK(it_write(BC, &id, 4 * BS, "x", 1)); /* extends: block 1 grows */
    memset(model + BS + 5, 0, 3 * BS - 5);
    model[4 * BS] = 'x';
    model_len = 4 * BS + 1;
    IT_OK(csum(&id, BS, 0, BS, 0, &g));
    cr_assert_eq(g.count, 4);
    expect_model(&g, 1);
}

Test(csum, edit_behind_the_daemon_voids_the_store)
{
    struct rfs_id id;
    struct got g;
    int fd;

    make("d", &id, 2 * BS);
    IT_OK(csum(&id, 0, 0, BS, 0, &g));
    tamper(&id, 2, 0, 0x77); /* would show if the store were still trusted */
    fd = open(itest_brick_path(V, 1, "d"), O_WRONLY);
    cr_assert_geq(fd, 0);
    cr_assert_eq(pwrite(fd, "Z", 1, BS + 1), 1);
    close(fd);
    model[BS + 1] = 'Z';
    IT_OK(csum(&id, 0, 0, BS, 0, &g));
    expect_model(&g, 0); /* ctime moved: everything re-read */
}

Test(csum, stored_sums_survive_a_daemon_restart)
{
    struct rfs_id id;
    struct got g;

    make("e", &id, 2 * BS);
    IT_OK(csum(&id, 0, 0, BS, 0, &g));
    tamper(&id, 2, 1, 0x99);
    itest_brick_stop(V, 1);
    itest_brick_start(V, 1);
    IT_OK(itest_relink(V, BC, 5000));
    IT_OK(csum(&id, 0, 0, BS, 0, &g));
    cr_assert_eq(g.sum[1], 0x99);
}

Test(csum, refusals)
{
    struct rfs_id id;
    struct got g;
    struct rfs_id dir;

    make("f", &id, 10);
    IT_RC(csum(&id, 100, 0, BS, 0, &g), -EINVAL);      /* unaligned */
    IT_RC(csum(&id, 0, 0, BS + 4096, 0, &g), -EINVAL); /* not a power of 2 */
    IT_RC(csum(&id, 0, 0, 1024, 0, &g), -EINVAL);      /* codec refuses */
    IT_OK(it_mkdir(BC, &ROOT, "dir", &dir));
    IT_RC(csum(&dir, 0, 0, BS, 0, &g), -EISDIR);
    IT_OK(csum(&id, 0, 0, 4096, 0, &g)); /* another block size is fine */
    cr_assert_eq(g.count, 1);
    IT_OK(csum(&id, 0, 0, BS, 0, &g));
    cr_assert_eq(g.count, 1);
    expect_model(&g, 0);
    /* empty file */
    IT_OK(it_create(BC, &ROOT, "empty", CREATE_EXCL, &id, NULL));
    IT_OK(csum(&id, 0, 0, BS, 0, &g));
    cr_assert_eq(g.count, 0);
    cr_assert_eq(g.size, 0);
}
