/*
 * Per-file block checksums kept on the brick (.replicafs/sums/hh/<hex>):
 * the file format, its trust rule, and computing missing sums.  Pure file
 * I/O on fds given by the caller, so it runs on pool threads and in unit
 * tests; the daemon glue (OP_CHECKSUM, the write-path hooks) is ops_csum.c.
 * Design block in sums.c; format in docs/brick-layout.md ("sums/: block
 * checksums").
 */
#ifndef RFS_DAEMON_SUMS_H
#define RFS_DAEMON_SUMS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "replicafs/proto.h"

#define SUMS_MAGIC "RFSSUMS1"
#define SUMS_VERSION 1u
#define SUMS_HDR_SIZE 128u
#define SUMS_BOOT_LEN 16
#define SUMS_PATH_LEN 36 /* "hh/" + 32 hex + NUL, like ids/ */

/* What a sums file claims to describe: the data file's identity and change
 * stamps, and the kernel boot it was written in. */
struct sums_stamp {
    uint64_t ino;
    uint64_t size;
    int64_t mtime_sec;
    uint32_t mtime_nsec;
    int64_t ctime_sec;
    uint32_t ctime_nsec;
    uint8_t boot[SUMS_BOOT_LEN];
};

/* In-memory image of one sums file. */
struct sums {
    uint32_t block_size;
    uint32_t nblocks;       /* slots in valid/sum */
    struct sums_stamp stamp;
    uint8_t *valid;         /* owned; (nblocks + 7) / 8 bytes, bit i: sum[i] */
    uint64_t *sum;          /* owned; nblocks */
};

/* Blocks of a file of `size` bytes. */
uint64_t sums_blocks(uint64_t size, uint32_t block_size);
/* Is block_size a power of two in the protocol's range? */
bool sums_block_size_ok(uint32_t block_size);
void sums_stamp_from_stat(struct sums_stamp *out, const struct stat *st,
                          const uint8_t boot[SUMS_BOOT_LEN]);
bool sums_stamp_eq(const struct sums_stamp *a, const struct sums_stamp *b);
/* The running kernel's boot id (/proc/sys/kernel/random/boot_id).  0 or
 * -errno/-EINVAL; out untouched on failure. */
int sums_boot_id(uint8_t out[SUMS_BOOT_LEN]);
/* "hh/<32hex>" for id. */
void sums_path(const struct rfs_id *id, char out[SUMS_PATH_LEN]);

/* An empty image: nblocks slots, none valid.  0 or -ENOMEM. */
int sums_init(struct sums *s, uint32_t block_size, uint32_t nblocks);
void sums_fini(struct sums *s); /* NULL-safe fields; s reusable after */
/* Resize to nblocks slots; new slots are invalid.  0 or -ENOMEM (s as
 * before). */
int sums_resize(struct sums *s, uint32_t nblocks);
bool sums_valid(const struct sums *s, uint32_t i);
void sums_set(struct sums *s, uint32_t i, uint64_t sum);

/*
 * Read a whole sums file from sfd into s (initialised by this call).
 * 0; -EINVAL for a file that is not a sums file of this version (short,
 * bad magic, sizes that do not add up); -ENOMEM; -errno.  s is left empty
 * (fini'd) on failure.
 */
int sums_load(int sfd, struct sums *s);
/* Write s as the whole content of sfd (one pwrite, then ftruncate).
 * 0 or -errno. */
int sums_store(int sfd, const struct sums *s);
/*
 * Clear the valid bits of exactly the blocks that overlap [from, to) (to ==
 * UINT64_MAX: to the end) without reading data (only the bitmap).  0,
 * -EINVAL (not a sums file) or -errno.
 */
int sums_invalidate(int sfd, uint64_t from, uint64_t to);
/* Read only the header's stamp.  0, -EINVAL (not a sums file), -errno. */
int sums_get_stamp(int sfd, struct sums_stamp *st);
/* Rewrite only the header's stamp.  0 or -errno. */
int sums_set_stamp(int sfd, const struct sums_stamp *st);

/*
 * Fill slots [first, first + count) of s from the data file fd (size
 * bytes): a slot that is valid is kept unless deep; others are read
 * (pread, short last block) and summed with xxh3-64.  buf is block_size
 * bytes of scratch.  *computed gets the number of blocks read and
 * *mismatched the number of valid stored sums that disagreed with the data
 * (deep only: silent corruption).  0 or -errno (-EIO for a file shorter
 * than size).  Slots must exist (first + count <= nblocks).
 */
int sums_fill(int fd, uint64_t size, struct sums *s, uint32_t first,
              uint32_t count, bool deep, uint8_t *buf, uint32_t *computed,
              uint32_t *mismatched);

#endif
