/*
 * Block sums on disk: .replicafs/sums/hh/<hex>, one file per data file.
 *
 * Design.  Verify and data heal compare xxh3-64 sums of fixed blocks across
 * bricks.  Re-reading a whole upload tree for every verify is what the
 * stored sums avoid: a sum is computed once and kept until the block
 * changes.  The danger is trusting a stored sum for data that changed since,
 * so the format and its users keep these invariants:
 *
 *  1. A sums file is trusted only if its header stamp equals the data
 *     file's current (inode, size, mtime, ctime) and the running kernel's
 *     boot id.  Anything else (a crash of the machine: page cache lost; an
 *     edit that bypassed the daemon: ctime moved; a copy or restore: inode
 *     changed) makes every stored sum void.
 *  2. A change through the daemon (WRITE, truncating SETATTR) clears the
 *     valid bits of the blocks it touches *before* the data changes, and
 *     sets the stamp to the file's new state *after*; so at any instant a
 *     valid bit under a matching stamp describes the data in the page cache
 *     (ops_csum.c: csum_write_begin/csum_write_end).  A daemon crash between
 *     the two leaves an old stamp: invariant 1 voids the file.
 *  3. Valid bits are only ever set by a whole-file rewrite (sums_store) made
 *     on the loop thread when no change ran during the computation
 *     (ops_csum.c checks the object's change generation).
 *  4. Invalidation never reads data: it clears bits in the bitmap (a
 *     read-modify-write of at most two bitmap bytes, zeroes in between).
 *
 * What stays invisible without CHECKSUM_DEEP: a block that changed on disk
 * with no inode change at all (bit rot, a bad controller, a write to the
 * raw device) and an edit behind the daemon's back that lands in the same
 * timestamp tick as a daemon write (coarse ctime).  Deep reads everything.
 *
 * Layout (all little-endian):
 *   0   8  magic "RFSSUMS1"
 *   8   4  version (1)
 *   12  4  block_size
 *   16  4  nblocks (slots; blocks >= nblocks are invalid by definition)
 *   20  4  reserved 0
 *   24  8  ino          32  8  size
 *   40  8  mtime sec    48  4  mtime nsec   52 4 reserved
 *   56  8  ctime sec    64  4  ctime nsec   68 4 reserved
 *   72 16  boot id      88 40  reserved 0
 *   128    valid bitmap, (nblocks + 7) / 8 bytes, padded to 8
 *   ...    nblocks * u64 sums
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/checksum.h"
#include "common/id.h"
#include "sums.h"

#define OFF_NBLOCKS 16
#define OFF_STAMP 24
#define STAMP_END 88

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
    uint32_t v = 0;

    for (int i = 3; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static size_t bitmap_bytes(uint32_t nblocks)
{
    return ((size_t)nblocks + 7) / 8;
}

static size_t sums_off(uint32_t nblocks)
{
    return SUMS_HDR_SIZE + ((bitmap_bytes(nblocks) + 7) & ~(size_t)7);
}

static size_t file_size(uint32_t nblocks)
{
    return sums_off(nblocks) + (size_t)nblocks * 8;
}

uint64_t sums_blocks(uint64_t size, uint32_t block_size)
{
    return (size + block_size - 1) / block_size;
}

bool sums_block_size_ok(uint32_t bs)
{
    return bs >= PROTO_CSUM_BLOCK_MIN && bs <= PROTO_CSUM_BLOCK_MAX &&
           (bs & (bs - 1)) == 0;
}

void sums_stamp_from_stat(struct sums_stamp *out, const struct stat *st,
                          const uint8_t boot[SUMS_BOOT_LEN])
{
    memset(out, 0, sizeof(*out));
    out->ino = (uint64_t)st->st_ino;
    out->size = (uint64_t)st->st_size;
    out->mtime_sec = st->st_mtim.tv_sec;
    out->mtime_nsec = (uint32_t)st->st_mtim.tv_nsec;
    out->ctime_sec = st->st_ctim.tv_sec;
    out->ctime_nsec = (uint32_t)st->st_ctim.tv_nsec;
    memcpy(out->boot, boot, SUMS_BOOT_LEN);
}

bool sums_stamp_eq(const struct sums_stamp *a, const struct sums_stamp *b)
{
    return a->ino == b->ino && a->size == b->size &&
           a->mtime_sec == b->mtime_sec && a->mtime_nsec == b->mtime_nsec &&
           a->ctime_sec == b->ctime_sec && a->ctime_nsec == b->ctime_nsec &&
           memcmp(a->boot, b->boot, SUMS_BOOT_LEN) == 0;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int sums_boot_id(uint8_t out[SUMS_BOOT_LEN])
{
    uint8_t id[SUMS_BOOT_LEN];
    char text[64];
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");
    size_t n = 0;

    if (!f)
        return -errno;
    if (!fgets(text, sizeof(text), f)) {
        fclose(f);
        return -EINVAL;
    }
    fclose(f);
    for (const char *p = text; *p && *p != '\n' && n < 2 * SUMS_BOOT_LEN; p++) {
        int v = hexval(*p);

        if (*p == '-')
            continue;
        if (v < 0)
            return -EINVAL;
        if (n % 2 == 0)
            id[n / 2] = (uint8_t)(v << 4);
        else
            id[n / 2] |= (uint8_t)v;
        n++;
    }
    if (n != 2 * SUMS_BOOT_LEN)
        return -EINVAL;
    memcpy(out, id, SUMS_BOOT_LEN);
    return 0;
}

void sums_path(const struct rfs_id *id, char out[SUMS_PATH_LEN])
{
    char hex[RFS_ID_HEX_LEN + 1];

    rfs_id_to_hex(id, hex);
    snprintf(out, SUMS_PATH_LEN, "%.2s/%s", hex, hex);
}

/* ---- the in-memory image ---- */

int sums_init(struct sums *s, uint32_t block_size, uint32_t nblocks)
{
    memset(s, 0, sizeof(*s));
    s->block_size = block_size;
    return sums_resize(s, nblocks);
}

void sums_fini(struct sums *s)
{
    free(s->valid);
    free(s->sum);
    s->valid = NULL;
    s->sum = NULL;
    s->nblocks = 0;
}

int sums_resize(struct sums *s, uint32_t nblocks)
{
    size_t nb = bitmap_bytes(nblocks) + 1; /* never a 0-byte malloc */
    uint8_t *valid = calloc(1, nb);
    uint64_t *sum = calloc((size_t)nblocks + 1, sizeof(*sum));
    uint32_t keep = nblocks < s->nblocks ? nblocks : s->nblocks;

    if (!valid || !sum) {
        free(valid);
        free(sum);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < keep; i++) {
        sum[i] = s->sum[i];
        if (sums_valid(s, i))
            valid[i / 8] |= (uint8_t)(1u << (i % 8));
    }
    free(s->valid);
    free(s->sum);
    s->valid = valid;
    s->sum = sum;
    s->nblocks = nblocks;
    return 0;
}

bool sums_valid(const struct sums *s, uint32_t i)
{
    return i < s->nblocks && (s->valid[i / 8] >> (i % 8) & 1);
}

void sums_set(struct sums *s, uint32_t i, uint64_t sum)
{
    s->sum[i] = sum;
    s->valid[i / 8] |= (uint8_t)(1u << (i % 8));
}

/* ---- the file ---- */

static void encode_stamp(uint8_t *h, const struct sums_stamp *st)
{
    memset(h + OFF_STAMP, 0, STAMP_END - OFF_STAMP);
    put64(h + 24, st->ino);
    put64(h + 32, st->size);
    put64(h + 40, (uint64_t)st->mtime_sec);
    put32(h + 48, st->mtime_nsec);
    put64(h + 56, (uint64_t)st->ctime_sec);
    put32(h + 64, st->ctime_nsec);
    memcpy(h + 72, st->boot, SUMS_BOOT_LEN);
}

static void decode_stamp(const uint8_t *h, struct sums_stamp *st)
{
    memset(st, 0, sizeof(*st));
    st->ino = get64(h + 24);
    st->size = get64(h + 32);
    st->mtime_sec = (int64_t)get64(h + 40);
    st->mtime_nsec = get32(h + 48);
    st->ctime_sec = (int64_t)get64(h + 56);
    st->ctime_nsec = get32(h + 64);
    memcpy(st->boot, h + 72, SUMS_BOOT_LEN);
}

static ssize_t pread_full(int fd, void *buf, size_t len, uint64_t off)
{
    size_t got = 0;

    while (got < len) {
        ssize_t n = pread(fd, (uint8_t *)buf + got, len - got,
                          (off_t)(off + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

static int pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
    size_t done = 0;

    while (done < len) {
        ssize_t n = pwrite(fd, (const uint8_t *)buf + done, len - done,
                           (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -EIO;
        done += (size_t)n;
    }
    return 0;
}

/* Header check shared by load and invalidate: 0 with *nblocks and *bs. */
static int read_header(int sfd, uint8_t h[SUMS_HDR_SIZE], uint32_t *nblocks)
{
    ssize_t n = pread_full(sfd, h, SUMS_HDR_SIZE, 0);

    if (n < 0)
        return (int)n;
    if ((size_t)n < SUMS_HDR_SIZE || memcmp(h, SUMS_MAGIC, 8) != 0 ||
        get32(h + 8) != SUMS_VERSION || !sums_block_size_ok(get32(h + 12)))
        return -EINVAL;
    *nblocks = get32(h + OFF_NBLOCKS);
    return 0;
}

int sums_load(int sfd, struct sums *s)
{
    uint8_t h[SUMS_HDR_SIZE];
    uint32_t nblocks;
    struct stat st;
    ssize_t n;
    int rc;

    memset(s, 0, sizeof(*s));
    rc = read_header(sfd, h, &nblocks);
    if (rc < 0)
        return rc;
    if (fstat(sfd, &st) < 0)
        return -errno;
    if ((uint64_t)st.st_size != file_size(nblocks))
        return -EINVAL; /* torn or foreign: never trusted */
    rc = sums_init(s, get32(h + 12), nblocks);
    if (rc < 0)
        return rc;
    decode_stamp(h, &s->stamp);
    n = pread_full(sfd, s->valid, bitmap_bytes(nblocks), SUMS_HDR_SIZE);
    if (n >= 0 && (size_t)n == bitmap_bytes(nblocks)) {
        uint8_t *raw = (uint8_t *)s->sum; /* decode in place, back to front */

        n = pread_full(sfd, raw, (size_t)nblocks * 8, sums_off(nblocks));
        if (n >= 0 && (size_t)n == (size_t)nblocks * 8) {
            for (uint32_t i = 0; i < nblocks; i++)
                s->sum[i] = get64(raw + 8 * (size_t)i);
            return 0;
        }
    }
    sums_fini(s);
    return n < 0 ? (int)n : -EINVAL;
}

int sums_store(int sfd, const struct sums *s)
{
    size_t len = file_size(s->nblocks);
    uint8_t *buf = calloc(1, len);
    int rc;

    if (!buf)
        return -ENOMEM;
    memcpy(buf, SUMS_MAGIC, 8);
    put32(buf + 8, SUMS_VERSION);
    put32(buf + 12, s->block_size);
    put32(buf + OFF_NBLOCKS, s->nblocks);
    encode_stamp(buf, &s->stamp);
    memcpy(buf + SUMS_HDR_SIZE, s->valid, bitmap_bytes(s->nblocks));
    for (uint32_t i = 0; i < s->nblocks; i++)
        put64(buf + sums_off(s->nblocks) + 8 * (size_t)i, s->sum[i]);
    rc = pwrite_full(sfd, buf, len, 0);
    free(buf);
    if (rc == 0 && ftruncate(sfd, (off_t)len) < 0)
        rc = -errno;
    return rc;
}

/* Clear bits [first, last] within bitmap byte b (read-modify-write). */
static int clear_bits(int sfd, uint64_t b, uint64_t first, uint64_t last)
{
    uint8_t byte;
    ssize_t n = pread_full(sfd, &byte, 1, SUMS_HDR_SIZE + b);

    if (n < 0)
        return (int)n;
    if (n != 1)
        return -EINVAL;
    for (uint64_t i = first; i <= last; i++)
        if (i / 8 == b)
            byte &= (uint8_t)~(1u << (i % 8));
    return pwrite_full(sfd, &byte, 1, SUMS_HDR_SIZE + b);
}

int sums_invalidate(int sfd, uint64_t from, uint64_t to)
{
    uint8_t h[SUMS_HDR_SIZE], zero[512];
    uint64_t bs, first, last, b0, b1;
    uint32_t nblocks;
    int rc = read_header(sfd, h, &nblocks);

    if (rc < 0)
        return rc;
    if (to <= from || nblocks == 0)
        return 0;
    bs = get32(h + 12);
    first = from / bs;
    last = to == UINT64_MAX ? UINT64_MAX : (to - 1) / bs;
    if (first >= nblocks)
        return 0; /* past the slots: invalid by definition */
    if (last >= nblocks)
        last = nblocks - 1;
    b0 = first / 8;
    b1 = last / 8;
    /* Edge bytes bit by bit (neighbouring blocks keep their sums), whole
     * bytes in between. */
    rc = clear_bits(sfd, b0, first, last);
    if (rc == 0 && b1 != b0)
        rc = clear_bits(sfd, b1, first, last);
    memset(zero, 0, sizeof(zero));
    for (uint64_t b = b0 + 1; rc == 0 && b < b1; b += sizeof(zero)) {
        size_t n = b1 - b < sizeof(zero) ? (size_t)(b1 - b) : sizeof(zero);

        rc = pwrite_full(sfd, zero, n, SUMS_HDR_SIZE + b);
    }
    return rc;
}

int sums_get_stamp(int sfd, struct sums_stamp *st)
{
    uint8_t h[SUMS_HDR_SIZE];
    uint32_t nblocks;
    int rc = read_header(sfd, h, &nblocks);

    if (rc == 0)
        decode_stamp(h, st);
    return rc;
}

int sums_set_stamp(int sfd, const struct sums_stamp *st)
{
    uint8_t h[SUMS_HDR_SIZE];

    encode_stamp(h, st);
    return pwrite_full(sfd, h + OFF_STAMP, STAMP_END - OFF_STAMP, OFF_STAMP);
}

int sums_fill(int fd, uint64_t size, struct sums *s, uint32_t first,
              uint32_t count, bool deep, uint8_t *buf, uint32_t *computed,
              uint32_t *mismatched)
{
    uint64_t bs = s->block_size;

    *computed = *mismatched = 0;
    for (uint32_t i = first; i < first + count; i++) {
        uint64_t off = (uint64_t)i * bs;
        size_t want = size - off < bs ? (size_t)(size - off) : (size_t)bs;
        ssize_t n;
        uint64_t sum;

        if (!deep && sums_valid(s, i))
            continue;
        n = pread_full(fd, buf, want, off);
        if (n < 0)
            return (int)n;
        if ((size_t)n != want)
            return -EIO; /* shorter than it was a moment ago */
        sum = rfs_xxh3(buf, want);
        if (deep && sums_valid(s, i) && s->sum[i] != sum)
            (*mismatched)++;
        sums_set(s, i, sum);
        (*computed)++;
    }
    return 0;
}
