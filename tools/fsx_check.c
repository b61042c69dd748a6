/*
 * fsx-check: apply one random sequence of file operations to a directory on
 * a replicafs mount and to a directory on a local filesystem, and stop at
 * the first difference in results or contents (in the spirit of fsx).
 *
 *   fsx-check MOUNTDIR LOCALDIR [--ops N] [--seed S] [--verbose]
 *
 * Both directories should start empty.  Operations: create, write at random
 * offsets (through short-lived and long-held descriptors, so the eager lock
 * sees streams), truncate, read and whole-file compare, rename (files and
 * directories, over existing names too), hard link, unlink, mkdir, rmdir,
 * chmod, stat, readdir, fsync.  Each is applied to both sides with the same
 * parameters; return values (0 or errno), bytes, and listings must match.
 *
 * A descriptor held open on a file whose last name an operation is about to
 * remove is closed first on both sides: replicafs bricks do not keep an
 * unlinked open file yet (see docs/client.md, "Known gaps").
 *
 * Exit: 0 all equal, 1 a difference (op number, op and difference printed),
 * 2 usage or setup error.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NDIRS 4        /* "", d0, d1, d2 */
#define NNAMES 10
#define NHELD 4
#define MAX_OFF (1u << 20)
#define MAX_LEN (128u * 1024)
#define MAX_FILE (MAX_OFF + MAX_LEN + 65536)
#define MAX_LIST 256

enum op {
    OP_WRITE, OP_WRITE_HELD, OP_OPEN_HELD, OP_CLOSE_HELD, OP_TRUNCATE,
    OP_READ, OP_READ_HELD, OP_COMPARE, OP_RENAME, OP_RENAME_DIR, OP_LINK,
    OP_UNLINK, OP_MKDIR, OP_RMDIR, OP_STAT, OP_READDIR, OP_CHMOD, OP_FSYNC,
    OP_CREATE_EXCL, OP__COUNT,
};

static const struct {
    const char *name;
    unsigned weight;
} ops[OP__COUNT] = {
    [OP_WRITE] = {"write", 14},        [OP_WRITE_HELD] = {"write-held", 14},
    [OP_OPEN_HELD] = {"open-held", 4}, [OP_CLOSE_HELD] = {"close-held", 4},
    [OP_TRUNCATE] = {"truncate", 6},   [OP_READ] = {"read", 12},
    [OP_READ_HELD] = {"read-held", 6}, [OP_COMPARE] = {"compare", 5},
    [OP_RENAME] = {"rename", 6},       [OP_RENAME_DIR] = {"rename-dir", 1},
    [OP_LINK] = {"link", 3},           [OP_UNLINK] = {"unlink", 5},
    [OP_MKDIR] = {"mkdir", 2},         [OP_RMDIR] = {"rmdir", 2},
    [OP_STAT] = {"stat", 6},           [OP_READDIR] = {"readdir", 3},
    [OP_CHMOD] = {"chmod", 2},         [OP_FSYNC] = {"fsync", 1},
    [OP_CREATE_EXCL] = {"create-excl", 3},
};

struct side {
    const char *root;
    const char *label;
    int held[NHELD];           /* -1: free; same slot = same file on both */
};

struct fsx {
    struct side s[2];          /* 0: the mount, 1: the local directory */
    uint64_t rng;
    uint64_t opno;
    uint64_t count[OP__COUNT];
    uint64_t bytes_written, bytes_read, errors_equal;
    bool verbose;
    uint8_t *wbuf;             /* the data of one write, shared */
    uint8_t *rbuf[2];          /* what each side read */
    char desc[600];
};

/* ---- randomness (xorshift64*, seeded: the same run every time) ---- */

static uint64_t rnd(struct fsx *f)
{
    f->rng ^= f->rng >> 12;
    f->rng ^= f->rng << 25;
    f->rng ^= f->rng >> 27;
    return f->rng * 0x2545f4914f6cdd1dull;
}

static uint64_t rnd_below(struct fsx *f, uint64_t n)
{
    return n ? rnd(f) % n : 0;
}

static void rnd_path(struct fsx *f, char *out, size_t cap)
{
    unsigned d = (unsigned)rnd_below(f, NDIRS);
    unsigned n = (unsigned)rnd_below(f, NNAMES);

    if (d == 0)
        snprintf(out, cap, "f%u", n);
    else
        snprintf(out, cap, "d%u/f%u", d - 1, n);
}

static void rnd_dir(struct fsx *f, char *out, size_t cap)
{
    snprintf(out, cap, "d%u", (unsigned)rnd_below(f, NDIRS - 1));
}

/* ---- helpers ---- */

static void full(char *out, size_t cap, const struct side *s, const char *rel)
{
    snprintf(out, cap, "%s/%s", s->root, rel);
}

static int res_of(long r)
{
    return r < 0 ? errno : 0;
}

static const char *err_name(int e)
{
    static char buf[64];

    if (e == 0)
        return "ok";
    snprintf(buf, sizeof(buf), "%s", strerror(e));
    return buf;
}

static __attribute__((noreturn)) void differ(struct fsx *f, const char *fmt,
                                             ...)
{
    va_list ap;

    fprintf(stderr, "fsx-check: DIFFERENCE at op %" PRIu64 " (%s)\n  ",
            f->opno, f->desc);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    exit(1);
}

static void same_result(struct fsx *f, int r0, int r1)
{
    if (r0 != r1) {
        char m[64];

        snprintf(m, sizeof(m), "%s", err_name(r0));
        differ(f, "mount: %s; local: %s", m, err_name(r1));
    }
    if (r0)
        f->errors_equal++;
}

static void same_bytes(struct fsx *f, ssize_t n0, ssize_t n1)
{
    ssize_t n = n0 < n1 ? n0 : n1;

    if (n0 != n1)
        differ(f, "mount returned %zd bytes, local %zd", n0, n1);
    for (ssize_t i = 0; i < n; i++)
        if (f->rbuf[0][i] != f->rbuf[1][i])
            differ(f, "first differing byte at %zd: mount 0x%02x, local 0x%02x",
                   i, f->rbuf[0][i], f->rbuf[1][i]);
}

static void fill(struct fsx *f, size_t len)
{
    uint64_t x = f->opno * 0x9e3779b97f4a7c15ull;

    for (size_t i = 0; i < len; i++) {
        if ((i & 7) == 0)
            x = x * 6364136223846793005ull + 1442695040888963407ull;
        f->wbuf[i] = (uint8_t)(x >> (8 * (i & 7)));
    }
}

/* Close, on both sides, held descriptors of the file whose last name rel
 * (local side) is about to lose. */
static void release_doomed(struct fsx *f, const char *rel)
{
    char p[512];
    struct stat st, hs;

    full(p, sizeof(p), &f->s[1], rel);
    if (lstat(p, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink > 1)
        return;
    for (unsigned k = 0; k < NHELD; k++) {
        if (f->s[1].held[k] < 0 || fstat(f->s[1].held[k], &hs) < 0)
            continue;
        if (hs.st_ino == st.st_ino && hs.st_dev == st.st_dev) {
            for (unsigned i = 0; i < 2; i++) {
                if (close(f->s[i].held[k]) < 0)
                    differ(f, "%s: close of held fd before unlink: %s",
                           f->s[i].label, strerror(errno));
                f->s[i].held[k] = -1;
            }
        }
    }
}

static int held_slot(struct fsx *f, bool want_open)
{
    unsigned k = (unsigned)rnd_below(f, NHELD);

    for (unsigned i = 0; i < NHELD; i++, k = (k + 1) % NHELD)
        if ((f->s[0].held[k] >= 0) == want_open)
            return (int)k;
    return -1;
}

/* ---- the operations ---- */

static void op_write(struct fsx *f)
{
    char rel[64], p[512];
    uint64_t off = rnd_below(f, MAX_OFF);
    size_t len = 1 + rnd_below(f, MAX_LEN);
    ssize_t n[2];
    int r[2];

    rnd_path(f, rel, sizeof(rel));
    snprintf(f->desc, sizeof(f->desc), "write %s off %" PRIu64 " len %zu", rel,
             off, len);
    fill(f, len);
    for (unsigned i = 0; i < 2; i++) {
        int fd;

        full(p, sizeof(p), &f->s[i], rel);
        n[i] = 0;
        fd = open(p, O_WRONLY | O_CREAT, 0644);
        r[i] = res_of(fd);
        if (fd < 0)
            continue;
        n[i] = pwrite(fd, f->wbuf, len, (off_t)off);
        r[i] = res_of(n[i]);
        if (close(fd) < 0 && r[i] == 0)
            r[i] = errno;
    }
    same_result(f, r[0], r[1]);
    if (n[0] != n[1])
        differ(f, "wrote %zd on the mount, %zd locally", n[0], n[1]);
    if (r[0] == 0)
        f->bytes_written += len;
}

static void op_open_held(struct fsx *f)
{
    int k = held_slot(f, false);
    char rel[64], p[512];
    int fd[2];

    if (k < 0)
        return;
    rnd_path(f, rel, sizeof(rel));
    snprintf(f->desc, sizeof(f->desc), "open-held %s into slot %d", rel, k);
    for (unsigned i = 0; i < 2; i++) {
        full(p, sizeof(p), &f->s[i], rel);
        fd[i] = open(p, O_RDWR | O_CREAT, 0644);
    }
    if ((fd[0] < 0) != (fd[1] < 0))
        differ(f, "open: mount %s, local %s", fd[0] < 0 ? "failed" : "ok",
               fd[1] < 0 ? "failed" : "ok");
    f->s[0].held[k] = fd[0];
    f->s[1].held[k] = fd[1];
}

static void op_close_held(struct fsx *f)
{
    int k = held_slot(f, true);
    int r[2];

    if (k < 0)
        return;
    snprintf(f->desc, sizeof(f->desc), "close-held slot %d", k);
    for (unsigned i = 0; i < 2; i++) {
        r[i] = res_of(close(f->s[i].held[k]));
        f->s[i].held[k] = -1;
    }
    same_result(f, r[0], r[1]);
}

static void op_write_held(struct fsx *f)
{
    int k = held_slot(f, true);
    uint64_t off = rnd_below(f, MAX_OFF);
    size_t len = 1 + rnd_below(f, MAX_LEN);
    ssize_t n[2];
    int r[2];

    if (k < 0)
        return;
    snprintf(f->desc, sizeof(f->desc),
             "write-held slot %d off %" PRIu64 " len %zu", k, off, len);
    fill(f, len);
    for (unsigned i = 0; i < 2; i++) {
        n[i] = pwrite(f->s[i].held[k], f->wbuf, len, (off_t)off);
        r[i] = res_of(n[i]);
    }
    same_result(f, r[0], r[1]);
    if (n[0] != n[1])
        differ(f, "wrote %zd on the mount, %zd locally", n[0], n[1]);
    if (r[0] == 0)
        f->bytes_written += len;
}

static void op_fsync(struct fsx *f)
{
    int k = held_slot(f, true);
    int r[2];

    if (k < 0)
        return;
    snprintf(f->desc, sizeof(f->desc), "fsync slot %d", k);
    for (unsigned i = 0; i < 2; i++)
        r[i] = res_of(fsync(f->s[i].held[k]));
    same_result(f, r[0], r[1]);
}

static void op_read_held(struct fsx *f)
{
    int k = held_slot(f, true);
    uint64_t off = rnd_below(f, MAX_OFF + MAX_LEN);
    size_t len = 1 + rnd_below(f, MAX_LEN);
    ssize_t n[2];
    int r[2];

    if (k < 0)
        return;
    snprintf(f->desc, sizeof(f->desc),
             "read-held slot %d off %" PRIu64 " len %zu", k, off, len);
    for (unsigned i = 0; i < 2; i++) {
        n[i] = pread(f->s[i].held[k], f->rbuf[i], len, (off_t)off);
        r[i] = res_of(n[i]);
    }
    same_result(f, r[0], r[1]);
    if (r[0] == 0) {
        same_bytes(f, n[0], n[1]);
        f->bytes_read += (uint64_t)n[0];
    }
}

static void op_read(struct fsx *f, bool whole)
{
    char rel[64], p[512];
    uint64_t off = whole ? 0 : rnd_below(f, MAX_OFF + MAX_LEN);
    size_t len = whole ? MAX_FILE : 1 + rnd_below(f, MAX_LEN);
    ssize_t n[2];
    int r[2];

    rnd_path(f, rel, sizeof(rel));
    if (whole)
        snprintf(f->desc, sizeof(f->desc), "compare %s", rel);
    else
        snprintf(f->desc, sizeof(f->desc), "read %s off %" PRIu64 " len %zu",
                 rel, off, len);
    for (unsigned i = 0; i < 2; i++) {
        int fd;
        ssize_t got = 0, m = 0;

        full(p, sizeof(p), &f->s[i], rel);
        n[i] = 0;
        fd = open(p, O_RDONLY);
        r[i] = res_of(fd);
        if (fd < 0)
            continue;
        /* A whole-file read loops like cat: short reads are fine. */
        do {
            m = pread(fd, f->rbuf[i] + got, len - (size_t)got,
                      (off_t)off + got);
            if (m > 0)
                got += m;
        } while (m > 0 && whole && (size_t)got < len);
        r[i] = m < 0 ? errno : 0;
        n[i] = got;
        close(fd);
    }
    same_result(f, r[0], r[1]);
    if (r[0] == 0) {
        same_bytes(f, n[0], n[1]);
        f->bytes_read += (uint64_t)n[0];
    }
}

static void op_truncate(struct fsx *f)
{
    char rel[64], p[512];
    uint64_t size = rnd_below(f, MAX_FILE);
    int r[2];

    rnd_path(f, rel, sizeof(rel));
    snprintf(f->desc, sizeof(f->desc), "truncate %s to %" PRIu64, rel, size);
    for (unsigned i = 0; i < 2; i++) {
        full(p, sizeof(p), &f->s[i], rel);
        r[i] = res_of(truncate(p, (off_t)size));
    }
    same_result(f, r[0], r[1]);
}

static void two_paths(struct fsx *f, const char *what, bool dirs,
                      int (*fn)(const char *, const char *))
{
    char a[64], b[64], pa[512], pb[512];
    int r[2];

    if (dirs) {
        rnd_dir(f, a, sizeof(a));
        rnd_dir(f, b, sizeof(b));
    } else {
        rnd_path(f, a, sizeof(a));
        rnd_path(f, b, sizeof(b));
    }
    snprintf(f->desc, sizeof(f->desc), "%s %s -> %s", what, a, b);
    if (fn == rename && strcmp(a, b) != 0)
        release_doomed(f, b); /* b's file loses a name */
    for (unsigned i = 0; i < 2; i++) {
        full(pa, sizeof(pa), &f->s[i], a);
        full(pb, sizeof(pb), &f->s[i], b);
        r[i] = res_of(fn(pa, pb));
    }
    same_result(f, r[0], r[1]);
}

static void one_path(struct fsx *f, const char *what, bool dir,
                     int (*fn)(const char *, struct fsx *))
{
    char rel[64], p[512];
    int r[2];

    if (dir)
        rnd_dir(f, rel, sizeof(rel));
    else
        rnd_path(f, rel, sizeof(rel));
    snprintf(f->desc, sizeof(f->desc), "%s %s", what, rel);
    if (fn == NULL)
        return;
    for (unsigned i = 0; i < 2; i++) {
        full(p, sizeof(p), &f->s[i], rel);
        r[i] = fn(p, f);
    }
    same_result(f, r[0], r[1]);
}

static int do_unlink(const char *p, struct fsx *f)
{
    (void)f;
    return res_of(unlink(p));
}

static int do_mkdir(const char *p, struct fsx *f)
{
    (void)f;
    return res_of(mkdir(p, 0755));
}

static int do_rmdir(const char *p, struct fsx *f)
{
    (void)f;
    return res_of(rmdir(p));
}

static int do_create_excl(const char *p, struct fsx *f)
{
    int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0644);

    (void)f;
    if (fd < 0)
        return errno;
    return res_of(close(fd));
}

static unsigned chmod_mode;

static int do_chmod(const char *p, struct fsx *f)
{
    (void)f;
    return res_of(chmod(p, chmod_mode));
}

static void op_unlink(struct fsx *f)
{
    char rel[64], p[512];
    int r[2];

    rnd_path(f, rel, sizeof(rel));
    snprintf(f->desc, sizeof(f->desc), "unlink %s", rel);
    release_doomed(f, rel);
    for (unsigned i = 0; i < 2; i++) {
        full(p, sizeof(p), &f->s[i], rel);
        r[i] = do_unlink(p, f);
    }
    same_result(f, r[0], r[1]);
}

static void op_stat(struct fsx *f)
{
    char rel[64], p[512];
    struct stat st[2];
    int r[2];

    rnd_path(f, rel, sizeof(rel));
    snprintf(f->desc, sizeof(f->desc), "stat %s", rel);
    for (unsigned i = 0; i < 2; i++) {
        full(p, sizeof(p), &f->s[i], rel);
        r[i] = res_of(lstat(p, &st[i]));
    }
    same_result(f, r[0], r[1]);
    if (r[0])
        return;
    if (st[0].st_mode != st[1].st_mode)
        differ(f, "mode: mount 0%o, local 0%o", st[0].st_mode, st[1].st_mode);
    if (st[0].st_nlink != st[1].st_nlink)
        differ(f, "nlink: mount %lu, local %lu",
               (unsigned long)st[0].st_nlink, (unsigned long)st[1].st_nlink);
    if (S_ISREG(st[0].st_mode) && st[0].st_size != st[1].st_size)
        differ(f, "size: mount %lld, local %lld", (long long)st[0].st_size,
               (long long)st[1].st_size);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names of dir (without . and ..) into names[]; count or -errno. */
static int list_dir(const char *dir, char names[][64], int cap)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char *ptrs[MAX_LIST];
    char tmp[MAX_LIST][64];
    int n = 0;

    if (!d)
        return -errno;
    while ((de = readdir(d)) && n < cap) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        /* names here are ours (f0, d1...): short; longer ones are cut */
        snprintf(tmp[n], 64, "%.63s", de->d_name);
        ptrs[n] = tmp[n];
        n++;
    }
    closedir(d);
    qsort(ptrs, (size_t)n, sizeof(*ptrs), cmp_str);
    for (int i = 0; i < n; i++)
        snprintf(names[i], 64, "%.63s", ptrs[i]);
    return n;
}

static void op_readdir(struct fsx *f)
{
    static char names[2][MAX_LIST][64];
    char rel[64], p[512];
    int n[2];

    if (rnd_below(f, 2))
        rnd_dir(f, rel, sizeof(rel));
    else
        snprintf(rel, sizeof(rel), ".");
    snprintf(f->desc, sizeof(f->desc), "readdir %s", rel);
    for (unsigned i = 0; i < 2; i++) {
        full(p, sizeof(p), &f->s[i], rel);
        n[i] = list_dir(p, names[i], MAX_LIST);
    }
    same_result(f, n[0] < 0 ? -n[0] : 0, n[1] < 0 ? -n[1] : 0);
    if (n[0] != n[1])
        differ(f, "mount lists %d names, local %d", n[0], n[1]);
    for (int i = 0; i < n[0]; i++)
        if (strcmp(names[0][i], names[1][i]))
            differ(f, "name %d: mount '%s', local '%s'", i, names[0][i],
                   names[1][i]);
}

/* Whole-file compare of one name at the end (no randomness used). */
static void final_compare(struct fsx *f, const char *rel)
{
    ssize_t got[2];
    char p[512];
    int r[2];

    snprintf(f->desc, sizeof(f->desc), "final compare %s", rel);
    for (unsigned i = 0; i < 2; i++) {
        ssize_t m = 0;
        int fd;

        full(p, sizeof(p), &f->s[i], rel);
        got[i] = 0;
        fd = open(p, O_RDONLY);
        r[i] = res_of(fd);
        if (fd < 0)
            continue;
        while ((m = read(fd, f->rbuf[i] + got[i],
                         MAX_FILE - (size_t)got[i])) > 0)
            got[i] += m;
        r[i] = m < 0 ? errno : 0;
        close(fd);
    }
    same_result(f, r[0], r[1]);
    if (r[0] == 0)
        same_bytes(f, got[0], got[1]);
}

static enum op pick_op(struct fsx *f)
{
    unsigned total = 0, x;

    for (unsigned i = 0; i < OP__COUNT; i++)
        total += ops[i].weight;
    x = (unsigned)rnd_below(f, total);
    for (unsigned i = 0; i < OP__COUNT; i++) {
        if (x < ops[i].weight)
            return (enum op)i;
        x -= ops[i].weight;
    }
    return OP_STAT;
}

static void step(struct fsx *f)
{
    enum op op = pick_op(f);

    f->count[op]++;
    switch (op) {
    case OP_WRITE: op_write(f); break;
    case OP_WRITE_HELD: op_write_held(f); break;
    case OP_OPEN_HELD: op_open_held(f); break;
    case OP_CLOSE_HELD: op_close_held(f); break;
    case OP_TRUNCATE: op_truncate(f); break;
    case OP_READ: op_read(f, false); break;
    case OP_READ_HELD: op_read_held(f); break;
    case OP_COMPARE: op_read(f, true); break;
    case OP_RENAME: two_paths(f, "rename", false, rename); break;
    case OP_RENAME_DIR: two_paths(f, "rename-dir", true, rename); break;
    case OP_LINK: two_paths(f, "link", false, link); break;
    case OP_UNLINK: op_unlink(f); break;
    case OP_MKDIR: one_path(f, "mkdir", true, do_mkdir); break;
    case OP_RMDIR: one_path(f, "rmdir", true, do_rmdir); break;
    case OP_STAT: op_stat(f); break;
    case OP_READDIR: op_readdir(f); break;
    case OP_CHMOD:
        chmod_mode = 0600 | (unsigned)rnd_below(f, 0100);
        one_path(f, "chmod", false, do_chmod);
        break;
    case OP_FSYNC: op_fsync(f); break;
    case OP_CREATE_EXCL:
        one_path(f, "create-excl", false, do_create_excl);
        break;
    case OP__COUNT: break;
    }
    if (f->verbose)
        fprintf(stderr, "%" PRIu64 ": %s\n", f->opno, f->desc);
}

static void usage(void)
{
    fprintf(stderr, "usage: fsx-check MOUNTDIR LOCALDIR [--ops N] "
                    "[--seed S] [--verbose]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static struct fsx f;
    uint64_t nops = 100000, seed = (uint64_t)time(NULL);
    const char *dirs[2] = {NULL, NULL};
    unsigned ndirs = 0;
    struct timespec t0, t1;
    double secs;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--ops") && i + 1 < argc)
            nops = strtoull(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "--verbose"))
            f.verbose = true;
        else if (argv[i][0] != '-' && ndirs < 2)
            dirs[ndirs++] = argv[i];
        else
            usage();
    }
    if (ndirs != 2)
        usage();
    f.s[0] = (struct side){.root = dirs[0], .label = "mount"};
    f.s[1] = (struct side){.root = dirs[1], .label = "local"};
    for (unsigned i = 0; i < 2; i++)
        for (unsigned k = 0; k < NHELD; k++)
            f.s[i].held[k] = -1;
    f.rng = seed * 0x9e3779b97f4a7c15ull + 1;
    f.wbuf = malloc(MAX_LEN);
    f.rbuf[0] = malloc(MAX_FILE);
    f.rbuf[1] = malloc(MAX_FILE);
    if (!f.wbuf || !f.rbuf[0] || !f.rbuf[1]) {
        fprintf(stderr, "fsx-check: out of memory\n");
        return 2;
    }
    printf("fsx-check: %" PRIu64 " ops, seed %" PRIu64 "\n", nops, seed);
    fflush(stdout);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (f.opno = 1; f.opno <= nops; f.opno++)
        step(&f);
    /* Close what is held and compare every file a last time. */
    for (unsigned k = 0; k < NHELD; k++)
        for (unsigned i = 0; i < 2; i++)
            if (f.s[i].held[k] >= 0 && close(f.s[i].held[k]) < 0)
                differ(&f, "%s: close: %s", f.s[i].label, strerror(errno));
    for (unsigned d = 0; d < NDIRS; d++) {
        for (unsigned n = 0; n < NNAMES; n++) {
            char rel[64];

            if (d == 0)
                snprintf(rel, sizeof(rel), "f%u", n);
            else
                snprintf(rel, sizeof(rel), "d%u/f%u", d - 1, n);
            final_compare(&f, rel);
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    secs = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("fsx-check: %" PRIu64 " ops equal in %.1f s (%.0f ops/s), seed %"
           PRIu64 "\n", nops, secs, (double)nops / secs, seed);
    printf("  %.1f MiB written, %.1f MiB read and compared, %" PRIu64
           " errors returned alike\n ",
           (double)f.bytes_written / 1048576, (double)f.bytes_read / 1048576,
           f.errors_equal);
    for (unsigned i = 0; i < OP__COUNT; i++)
        printf(" %s=%" PRIu64, ops[i].name, f.count[i]);
    printf("\n");
    return 0;
}
