/*
 * bench-portal: the portal-shaped workload of issue #6, run against any
 * directory (a local disk, a GlusterFS mount, a replicafs mount).
 *
 *   bench-portal [OPTIONS] DIR [DIR_B]
 *
 * DIR_B, when given, is another mount of the same volume as DIR (web2 to
 * DIR's web1); the cross-node phases write on DIR and poll DIR_B.
 *
 * Phases, in the order they run (each prints one line
 * `phase=NAME ops=N secs=S rate=R unit=U ...`):
 *
 *   create         THREADS threads create FILES new files (70% 16 KiB,
 *                  25% 256 KiB, 5% 2 MiB, chosen by SEED) in 2-level hashed
 *                  folders files/ab/cd/ (mkdir on demand), write, close
 *   stat_warm      stat() every file by full path, after one untimed pass
 *   stat_cold      the same after sync + drop_caches
 *   read_warm      open/read whole/close every file and check its bytes,
 *                  after one untimed pass
 *   read_cold      the same after sync + drop_caches
 *   readdir        `ls -l` of every folder: opendir/readdir/fstatat each entry
 *   readdir_cold   the same after sync + drop_caches
 *   big_write      one BIG_MB file written with 1 MiB writes, fsync, close
 *   big_read_cold  that file read back with 1 MiB reads after drop_caches
 *   xnode_create   (DIR_B only) create a 16 KiB file on DIR, poll DIR_B until
 *                  it reads with the right bytes: median latency over TRIALS
 *   xnode_update   (DIR_B only) overwrite a 16 KiB file on DIR, poll DIR_B
 *                  until it reads the new bytes: median latency over TRIALS
 *   delete         unlink every file and rmdir every folder of the tree
 *
 * Invariants:
 *  1. A file's path, size and bytes are pure functions of (seed, file index,
 *     version), so any process can check any file without a manifest.
 *     Every 4 KiB page starts with a 16-byte header (id tag, version, page
 *     number) and the rest comes from one 2 MiB random base block; checking
 *     is a memcmp against that block, cheap enough to sit inside the timed
 *     loop of a read phase without dominating it.
 *  2. A timed section contains only the workload's own syscalls and that
 *     check; syncs, cache drops and warm-up passes sit between timers.
 *  3. A "cold" phase is cold only when drop_caches was written (root); it
 *     says cold=0 otherwise, and the caches of a FUSE server process (its
 *     own metadata/io caches) are never dropped by it: cold here means the
 *     kernel's caches on this machine, which include the bricks' disks.
 *  4. Cross-node latency is measured from the moment the writer's close()
 *     returned (median_ms), and also from the writer's open()
 *     (median_from_open_ms).  The reader reopens the file for every poll,
 *     as a new PHP request would, and had read the old state just before
 *     the change so that any cache it keeps is warm with stale data.
 *
 * Exit status: 0 all phases ran clean, 1 some operation failed or some bytes
 * were wrong (the phase line says errors=N), 2 usage.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define KiB (1024u)
#define MiB (1024u * 1024u)

#define PAGE 4096u
#define HDR 16u
#define BASE_SIZE (2u * MiB)         /* the biggest small file */
#define IO_CHUNK (1u * MiB)          /* write()/read() size */
#define BUF_SIZE (BASE_SIZE + PAGE)  /* a read that fills it was too long */
#define XNODE_SIZE (16u * KiB)
#define MAX_WATCH 32
#define MAX_ERR_MSGS 10
/* Room left in a PATH_MAX buffer for what follows the tree's root. */
#define ROOT_MAX (PATH_MAX - 512)

/* Object ids of the files outside the hashed tree (the tree uses 0..N-1). */
#define ID_BIG UINT64_C(0xB1600000000)
#define ID_XCREATE UINT64_C(0xC0000000000)
#define ID_XUPDATE UINT64_C(0xD0000000000)

enum phase {
    PH_CREATE,
    PH_STAT_WARM,
    PH_STAT_COLD,
    PH_READ_WARM,
    PH_READ_COLD,
    PH_READDIR,
    PH_READDIR_COLD,
    PH_BIG_WRITE,
    PH_BIG_READ_COLD,
    PH_XNODE_CREATE,
    PH_XNODE_UPDATE,
    PH_DELETE,
    PH_COUNT
};

static const char *const phase_names[PH_COUNT] = {
    "create",       "stat_warm",    "stat_cold",     "read_warm",
    "read_cold",    "readdir",      "readdir_cold",  "big_write",
    "big_read_cold", "xnode_create", "xnode_update", "delete",
};

#define BIT(p) (1u << (p))
/* --only accepts the phase names above and these groups. */
static const struct {
    const char *name;
    unsigned mask;
} phase_groups[] = {
    {"stat", BIT(PH_STAT_WARM) | BIT(PH_STAT_COLD)},
    {"read", BIT(PH_READ_WARM) | BIT(PH_READ_COLD)},
    {"readdir", BIT(PH_READDIR) | BIT(PH_READDIR_COLD)},
    {"big", BIT(PH_BIG_WRITE) | BIT(PH_BIG_READ_COLD)},
    {"xnode", BIT(PH_XNODE_CREATE) | BIT(PH_XNODE_UPDATE)},
    {"warm", BIT(PH_STAT_WARM) | BIT(PH_READ_WARM) | BIT(PH_READDIR)},
    {"cold", BIT(PH_STAT_COLD) | BIT(PH_READ_COLD) | BIT(PH_READDIR_COLD) |
                 BIT(PH_BIG_READ_COLD)},
    {"all", BIT(PH_COUNT) - 1},
};

struct opts {
    const char *dir_a;      /* borrowed from argv */
    const char *dir_b;      /* borrowed from argv; NULL: no cross-node */
    const char *subdir;     /* borrowed; the tree lives in DIR/subdir */
    const char *json_path;  /* borrowed; NULL: no JSON */
    const char *label;      /* borrowed; names the run in the JSON */
    unsigned files;
    unsigned threads;
    unsigned fanout;        /* folders per level */
    unsigned trials;        /* cross-node trials */
    unsigned big_mb;
    unsigned poll_us;       /* sleep between cross-node polls */
    unsigned xnode_timeout_ms;
    uint64_t seed;
    unsigned phases;        /* BIT(enum phase) set */
    bool warmup;            /* an untimed pass before each warm phase */
    bool empty;             /* every file 0 bytes (an inode-count run) */
    bool drop;              /* try drop_caches for cold phases */
    pid_t watch[MAX_WATCH];
    char watch_label[MAX_WATCH][32]; /* "" or the NAME of PID=NAME */
    unsigned nwatch;
};

struct result {
    enum phase ph;
    bool ran;
    uint64_t ops;
    uint64_t bytes;
    uint64_t errors;
    double secs;
    double rate;
    const char *unit;       /* static string */
    int cold;               /* -1: not a cold phase, 0: caches kept, 1: dropped */
    /* cross-node phases only */
    double median_ms, p90_ms, max_ms, median_open_ms;
    uint64_t timeouts;
    uint64_t stale_reads;   /* polls that read the file but not the new bytes */
};

struct watch_stat {
    pid_t pid;
    char label[32];                /* from --watch-pid PID=NAME, or "" */
    char comm[32];
    _Atomic uint64_t rss_peak_kb;  /* max VmRSS seen by the sampler */
    uint64_t rss_end_kb;
    uint64_t hwm_kb;               /* VmHWM at the end: the process's life */
    bool gone;
};

struct bench;

struct worker {
    struct bench *b;        /* borrowed */
    pthread_t tid;
    uint8_t *buf;           /* owned; BUF_SIZE bytes; freed in bench_fini() */
    uint64_t ops, bytes, errors;
};

typedef int (*item_fn)(struct worker *w, uint64_t idx);

struct bench {
    struct opts o;
    char root_a[ROOT_MAX];  /* DIR_A/subdir */
    char root_b[ROOT_MAX];  /* DIR_B/subdir, "" without DIR_B */
    uint64_t seed_tag;      /* mixed into every page header */
    uint8_t *base;          /* owned; BASE_SIZE random bytes */
    struct worker *workers; /* owned; o.threads of them */
    /* parallel-for state, valid during run_items() */
    item_fn fn;
    uint64_t nitems;
    _Atomic uint64_t next;
    pthread_mutex_t err_lock;
    unsigned err_msgs;      /* protected by err_lock */
    bool drop_warned;
    struct result res[PH_COUNT];
    struct watch_stat watch[MAX_WATCH];
    char load_start[64];    /* /proc/loadavg's first three fields */
    char load_end[64];
    _Atomic bool sampler_stop;
    pthread_t sampler;
    bool sampler_running;
};

/* ---- small helpers ---- */

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_us(unsigned us)
{
    struct timespec ts = {.tv_sec = us / 1000000,
                          .tv_nsec = (long)(us % 1000000) * 1000};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static uint64_t mix64(uint64_t x)
{
    /* splitmix64's finaliser: every input bit reaches every output bit */
    x += UINT64_C(0x9e3779b97f4a7c15);
    x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
    return x ^ (x >> 31);
}

static void report_err(struct bench *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void report_err(struct bench *b, const char *fmt, ...)
{
    va_list ap;

    pthread_mutex_lock(&b->err_lock);
    /* a broken mount fails every file: print a few, count the rest */
    if (b->err_msgs++ < MAX_ERR_MSGS) {
        va_start(ap, fmt);
        fputs("bench-portal: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
    }
    pthread_mutex_unlock(&b->err_lock);
}

/* ---- the deterministic content (invariant 1) ---- */

static uint32_t file_size(const struct bench *b, uint64_t id)
{
    unsigned r = (unsigned)(mix64(b->o.seed ^ mix64(id)) % 100);

    if (b->o.empty)
        return 0;
    if (r < 70)
        return 16 * KiB;
    if (r < 95)
        return 256 * KiB;
    return 2 * MiB;
}

static void page_header(const struct bench *b, uint64_t id, uint32_t ver,
                        uint64_t page, uint8_t out[HDR])
{
    uint64_t tag = id ^ b->seed_tag;
    uint64_t vp = ((uint64_t)ver << 32) | (uint32_t)page;

    memcpy(out, &tag, 8);
    memcpy(out + 8, &vp, 8);
}

/* Bytes [off, off+len) of object id at version ver; off is page aligned and
 * the range stays within one base block. */
static void content_fill(const struct bench *b, uint8_t *buf, uint64_t id,
                         uint32_t ver, uint64_t off, size_t len)
{
    size_t boff = (size_t)(off % BASE_SIZE);
    uint8_t hdr[HDR];

    for (size_t at = 0; at < len; at += PAGE) {
        size_t n = len - at < PAGE ? len - at : PAGE;

        memcpy(buf + at, b->base + boff + at, n);
        page_header(b, id, ver, (off + at) / PAGE, hdr);
        memcpy(buf + at, hdr, n < HDR ? n : HDR);
    }
}

/*
 * Check that buf[0..len) is bytes [off, off+len) of object id at one
 * version, and tell which in *ver.  Returns 0, or -EBADMSG (torn, foreign
 * or corrupt bytes; *ver untouched).
 */
static int content_match(const struct bench *b, const uint8_t *buf,
                         size_t len, uint64_t id, uint64_t off, uint32_t *ver)
{
    size_t boff = (size_t)(off % BASE_SIZE);
    uint8_t hdr[HDR];
    uint64_t vp;
    uint32_t v;

    if (len < HDR)
        return -EBADMSG;
    memcpy(&vp, buf + 8, 8);
    v = (uint32_t)(vp >> 32);
    for (size_t at = 0; at < len; at += PAGE) {
        size_t n = len - at < PAGE ? len - at : PAGE;

        page_header(b, id, v, (off + at) / PAGE, hdr);
        if (memcmp(buf + at, hdr, n < HDR ? n : HDR) != 0)
            return -EBADMSG;
        if (n > HDR && memcmp(buf + at + HDR, b->base + boff + at + HDR,
                              n - HDR) != 0)
            return -EBADMSG;
    }
    *ver = v;
    return 0;
}

/* ---- paths ---- */

static void file_dirs(const struct bench *b, uint64_t i, unsigned *l1,
                      unsigned *l2)
{
    uint64_t h = mix64(mix64(i) ^ ~b->o.seed);

    *l1 = (unsigned)(h % b->o.fanout);
    *l2 = (unsigned)((h >> 32) % b->o.fanout);
}

static int file_path(const struct bench *b, const char *root, uint64_t i,
                     char *out, size_t outlen)
{
    unsigned l1, l2;
    int n;

    file_dirs(b, i, &l1, &l2);
    n = snprintf(out, outlen, "%s/files/%02x/%02x/f%07" PRIu64, root, l1, l2,
                 i);
    return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
}

/* Directory k of the tree, in the order readdir/delete walk it:
 * 0 .. fanout^2-1 the leaves, then the fanout level-1 dirs, then files/. */
static uint64_t tree_ndirs(const struct bench *b)
{
    return (uint64_t)b->o.fanout * b->o.fanout + b->o.fanout + 1;
}

static int dir_path(const struct bench *b, uint64_t k, char *out,
                    size_t outlen)
{
    uint64_t leaves = (uint64_t)b->o.fanout * b->o.fanout;
    int n;

    if (k < leaves)
        n = snprintf(out, outlen, "%s/files/%02x/%02x", b->root_a,
                     (unsigned)(k / b->o.fanout), (unsigned)(k % b->o.fanout));
    else if (k < leaves + b->o.fanout)
        n = snprintf(out, outlen, "%s/files/%02x", b->root_a,
                     (unsigned)(k - leaves));
    else
        n = snprintf(out, outlen, "%s/files", b->root_a);
    return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
}

/* ---- whole-file I/O ---- */

static int write_all(int fd, const uint8_t *buf, size_t len)
{
    while (len > 0) {
        size_t n = len < IO_CHUNK ? len : IO_CHUNK;
        ssize_t w = write(fd, buf, n);

        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (w == 0)
            return -EIO;
        buf += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Read until EOF or cap bytes; *len gets the count.  0 or -errno. */
static int read_all(int fd, uint8_t *buf, size_t cap, size_t *len)
{
    size_t got = 0;

    while (got < cap) {
        size_t n = cap - got < IO_CHUNK ? cap - got : IO_CHUNK;
        ssize_t r = read(fd, buf + got, n);

        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    *len = got;
    return 0;
}

/* Write a whole small file: open with flags, write, close.  0 or -errno. */
static int put_file(const char *path, int flags, const uint8_t *buf,
                    size_t len)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC | flags, 0644);
    int rc;

    if (fd < 0)
        return -errno;
    rc = write_all(fd, buf, len);
    /* close() can be where a network filesystem reports the write */
    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    return rc;
}

/* Read a whole file into buf (BUF_SIZE).  0 or -errno. */
static int get_file(const char *path, uint8_t *buf, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int rc;

    if (fd < 0)
        return -errno;
    rc = read_all(fd, buf, BUF_SIZE, len);
    close(fd);
    return rc;
}

static int mkdir_ok(const char *path)
{
    if (mkdir(path, 0755) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

/* ---- the parallel-for ---- */

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct bench *b = w->b;

    for (;;) {
        uint64_t i = atomic_fetch_add(&b->next, 1);

        if (i >= b->nitems)
            break;
        if (b->fn(w, i) < 0)
            w->errors++;
    }
    return NULL;
}

/* Run fn over items 0..n-1 on o.threads threads; sum their counters into
 * r (if non-NULL) and return the wall time in seconds, or -1 if a thread
 * could not start (then nothing ran past the threads that did). */
static double run_items(struct bench *b, item_fn fn, uint64_t n,
                        struct result *r)
{
    unsigned started = 0;
    double t0, t1;

    b->fn = fn;
    b->nitems = n;
    atomic_store(&b->next, 0);
    for (unsigned t = 0; t < b->o.threads; t++)
        b->workers[t].ops = b->workers[t].bytes = b->workers[t].errors = 0;
    t0 = now_s();
    for (unsigned t = 0; t < b->o.threads; t++) {
        int rc = pthread_create(&b->workers[t].tid, NULL, worker_main,
                                &b->workers[t]);
        if (rc != 0) {
            fprintf(stderr, "bench-portal: pthread_create: %s\n",
                    strerror(rc));
            atomic_store(&b->next, n); /* the started ones stop soon */
            break;
        }
        started++;
    }
    for (unsigned t = 0; t < started; t++)
        pthread_join(b->workers[t].tid, NULL);
    t1 = now_s();
    if (r) {
        for (unsigned t = 0; t < started; t++) {
            r->ops += b->workers[t].ops;
            r->bytes += b->workers[t].bytes;
            r->errors += b->workers[t].errors;
        }
    }
    return started == b->o.threads ? t1 - t0 : -1;
}

/* ---- per-item operations ---- */

static int item_create(struct worker *w, uint64_t i)
{
    struct bench *b = w->b;
    char path[PATH_MAX];
    uint32_t size = file_size(b, i);
    unsigned l1, l2;
    int rc;

    rc = file_path(b, b->root_a, i, path, sizeof(path));
    if (rc < 0)
        return rc;
    content_fill(b, w->buf, i, 0, 0, size);
    rc = put_file(path, O_CREAT | O_EXCL, w->buf, size);
    if (rc == -ENOENT) {
        /* first file of its folder: mkdir -p, as the portal does */
        char d[PATH_MAX];

        file_dirs(b, i, &l1, &l2);
        snprintf(d, sizeof(d), "%s/files/%02x", b->root_a, l1);
        rc = mkdir_ok(d);
        if (rc == 0) {
            snprintf(d, sizeof(d), "%s/files/%02x/%02x", b->root_a, l1, l2);
            rc = mkdir_ok(d);
        }
        if (rc == 0)
            rc = put_file(path, O_CREAT | O_EXCL, w->buf, size);
    }
    if (rc < 0) {
        report_err(b, "create %s: %s", path, strerror(-rc));
        return rc;
    }
    w->ops++;
    w->bytes += size;
    return 0;
}

static int item_stat(struct worker *w, uint64_t i)
{
    struct bench *b = w->b;
    char path[PATH_MAX];
    struct stat st;
    int rc;

    rc = file_path(b, b->root_a, i, path, sizeof(path));
    if (rc < 0)
        return rc;
    if (stat(path, &st) < 0) {
        rc = -errno;
        report_err(b, "stat %s: %s", path, strerror(-rc));
        return rc;
    }
    if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != file_size(b, i)) {
        report_err(b, "stat %s: size %lld, expected %u", path,
                   (long long)st.st_size, file_size(b, i));
        return -EBADMSG;
    }
    w->ops++;
    return 0;
}

static int item_read(struct worker *w, uint64_t i)
{
    struct bench *b = w->b;
    char path[PATH_MAX];
    size_t len = 0;
    uint32_t ver = 0;
    int rc;

    rc = file_path(b, b->root_a, i, path, sizeof(path));
    if (rc < 0)
        return rc;
    rc = get_file(path, w->buf, &len);
    if (rc < 0) {
        report_err(b, "read %s: %s", path, strerror(-rc));
        return rc;
    }
    if (len != file_size(b, i) ||
        content_match(b, w->buf, len, i, 0, &ver) < 0 || ver != 0) {
        report_err(b, "read %s: wrong bytes (%zu read, %u expected)", path,
                   len, file_size(b, i));
        return -EBADMSG;
    }
    w->ops++;
    w->bytes += len;
    return 0;
}

/* ls -l of tree directory k; ops counts entries, bytes counts files seen. */
static int item_readdir(struct worker *w, uint64_t k)
{
    struct bench *b = w->b;
    char path[PATH_MAX];
    struct dirent *de;
    struct stat st;
    DIR *d;
    int rc = 0;

    if (dir_path(b, k, path, sizeof(path)) < 0)
        return -ENAMETOOLONG;
    d = opendir(path);
    if (!d) {
        if (errno == ENOENT) /* few files: not every folder exists */
            return 0;
        rc = -errno;
        report_err(b, "opendir %s: %s", path, strerror(-rc));
        return rc;
    }
    errno = 0;
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            rc = -errno;
            report_err(b, "fstatat %s/%s: %s", path, de->d_name,
                       strerror(-rc));
            break;
        }
        w->ops++;
        if (S_ISREG(st.st_mode))
            w->bytes++; /* a file count here, checked by the caller */
        errno = 0;
    }
    if (!de && errno != 0 && rc == 0) {
        rc = -errno;
        report_err(b, "readdir %s: %s", path, strerror(-rc));
    }
    closedir(d);
    return rc;
}

static int item_unlink(struct worker *w, uint64_t i)
{
    struct bench *b = w->b;
    char path[PATH_MAX];
    int rc;

    rc = file_path(b, b->root_a, i, path, sizeof(path));
    if (rc < 0)
        return rc;
    if (unlink(path) < 0) {
        rc = -errno;
        report_err(b, "unlink %s: %s", path, strerror(-rc));
        return rc;
    }
    w->ops++;
    return 0;
}

/* rmdir of tree directory k; run in three rounds (leaves, level 1, top). */
static int item_rmdir(struct worker *w, uint64_t k)
{
    struct bench *b = w->b;
    char path[PATH_MAX];
    int rc;

    if (dir_path(b, k, path, sizeof(path)) < 0)
        return -ENAMETOOLONG;
    if (rmdir(path) < 0) {
        if (errno == ENOENT)
            return 0;
        rc = -errno;
        report_err(b, "rmdir %s: %s", path, strerror(-rc));
        return rc;
    }
    return 0;
}

static int item_rmdir_leaf(struct worker *w, uint64_t k)
{
    return item_rmdir(w, k);
}

static int item_rmdir_l1(struct worker *w, uint64_t k)
{
    return item_rmdir(w, (uint64_t)w->b->o.fanout * w->b->o.fanout + k);
}

/* ---- caches ---- */

/* sync, then drop the kernel's caches.  Returns 1 if dropped, 0 if not
 * (not root, or --no-drop); warns once. */
static int drop_caches(struct bench *b)
{
    int fd;

    sync();
    if (!b->o.drop)
        return 0;
    fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
    if (fd >= 0 && write(fd, "3\n", 2) == 2) {
        close(fd);
        return 1;
    }
    if (!b->drop_warned) {
        fprintf(stderr,
                "bench-portal: warning: cannot drop caches (%s); cold "
                "phases run warm and say cold=0 (run as root)\n",
                strerror(errno));
        b->drop_warned = true;
    }
    if (fd >= 0)
        close(fd);
    return 0;
}

/* ---- memory watch ---- */

/* VmRSS and VmHWM of pid in KiB.  0 or -errno (-ENOENT: gone). */
static int proc_mem(pid_t pid, uint64_t *rss, uint64_t *hwm)
{
    char path[64], line[256];
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    f = fopen(path, "re");
    if (!f)
        return -errno;
    *rss = *hwm = 0;
    while (fgets(line, sizeof(line), f)) {
        unsigned long long v;

        if (sscanf(line, "VmRSS: %llu", &v) == 1)
            *rss = v;
        else if (sscanf(line, "VmHWM: %llu", &v) == 1)
            *hwm = v;
    }
    fclose(f);
    return 0;
}

static void *sampler_main(void *arg)
{
    struct bench *b = arg;

    while (!atomic_load(&b->sampler_stop)) {
        for (unsigned i = 0; i < b->o.nwatch; i++) {
            uint64_t rss, hwm;

            if (proc_mem(b->watch[i].pid, &rss, &hwm) == 0 &&
                rss > atomic_load(&b->watch[i].rss_peak_kb))
                atomic_store(&b->watch[i].rss_peak_kb, rss);
        }
        sleep_us(50 * 1000);
    }
    return NULL;
}

static void watch_start(struct bench *b)
{
    for (unsigned i = 0; i < b->o.nwatch; i++) {
        char path[64];
        FILE *f;

        b->watch[i].pid = b->o.watch[i];
        memcpy(b->watch[i].label, b->o.watch_label[i],
               sizeof(b->watch[i].label));
        snprintf(b->watch[i].comm, sizeof(b->watch[i].comm), "?");
        snprintf(path, sizeof(path), "/proc/%d/comm", (int)b->o.watch[i]);
        f = fopen(path, "re");
        if (f) {
            if (fgets(b->watch[i].comm, sizeof(b->watch[i].comm), f))
                b->watch[i].comm[strcspn(b->watch[i].comm, "\n")] = '\0';
            fclose(f);
        } else {
            fprintf(stderr, "bench-portal: warning: --watch-pid %d: %s\n",
                    (int)b->o.watch[i], strerror(errno));
        }
    }
    if (b->o.nwatch == 0)
        return;
    atomic_store(&b->sampler_stop, false);
    if (pthread_create(&b->sampler, NULL, sampler_main, b) == 0)
        b->sampler_running = true;
    else
        fprintf(stderr, "bench-portal: warning: no memory sampler thread\n");
}

static void watch_stop(struct bench *b)
{
    if (b->sampler_running) {
        atomic_store(&b->sampler_stop, true);
        pthread_join(b->sampler, NULL);
        b->sampler_running = false;
    }
    for (unsigned i = 0; i < b->o.nwatch; i++) {
        struct watch_stat *ws = &b->watch[i];
        uint64_t rss, hwm;

        if (proc_mem(ws->pid, &rss, &hwm) < 0) {
            ws->gone = true;
            continue;
        }
        ws->rss_end_kb = rss;
        ws->hwm_kb = hwm;
        if (rss > atomic_load(&ws->rss_peak_kb))
            atomic_store(&ws->rss_peak_kb, rss);
    }
}

/* The 1, 5 and 15 minute load averages as text, or "?": a busy machine is
 * the first suspect when two runs disagree. */
static void load_avg(char *out, size_t outlen)
{
    FILE *f = fopen("/proc/loadavg", "re");
    double l1, l5, l15;

    snprintf(out, outlen, "?");
    if (!f)
        return;
    if (fscanf(f, "%lf %lf %lf", &l1, &l5, &l15) == 3)
        snprintf(out, outlen, "%.2f %.2f %.2f", l1, l5, l15);
    fclose(f);
}

/* ---- phases ---- */

static struct result *res_begin(struct bench *b, enum phase ph,
                                const char *unit, int cold)
{
    struct result *r = &b->res[ph];

    memset(r, 0, sizeof(*r));
    r->ph = ph;
    r->ran = true;
    r->unit = unit;
    r->cold = cold;
    return r;
}

static void res_print(const struct result *r)
{
    printf("phase=%s ops=%" PRIu64 " secs=%.3f rate=%.6g unit=%s errors=%" PRIu64,
           phase_names[r->ph], r->ops, r->secs, r->rate, r->unit, r->errors);
    if (r->bytes && strcmp(r->unit, "entries/s") != 0)
        printf(" bytes=%" PRIu64 " mb_s=%.1f", r->bytes,
               r->secs > 0 ? (double)r->bytes / MiB / r->secs : 0.0);
    if (r->cold >= 0)
        printf(" cold=%d", r->cold);
    if (r->ph == PH_XNODE_CREATE || r->ph == PH_XNODE_UPDATE)
        printf(" median_ms=%.3f p90_ms=%.3f max_ms=%.3f "
               "median_from_open_ms=%.3f timeouts=%" PRIu64
               " stale_reads=%" PRIu64,
               r->median_ms, r->p90_ms, r->max_ms, r->median_open_ms,
               r->timeouts, r->stale_reads);
    putchar('\n');
    fflush(stdout);
}

/* Set secs (negative: the threads did not all start) and the ops rate. */
static void res_time(struct result *r, double secs)
{
    if (secs < 0) {
        r->errors++;
        secs = 0;
    }
    r->secs = secs;
    r->rate = secs > 0 ? (double)r->ops / secs : 0;
}

static bool want(const struct bench *b, enum phase ph)
{
    return (b->o.phases & BIT(ph)) != 0;
}

static int phase_create(struct bench *b)
{
    struct result *r = res_begin(b, PH_CREATE, "files/s", -1);
    char files[PATH_MAX];
    double t0, t1;

    snprintf(files, sizeof(files), "%s/files", b->root_a);
    /* start with no dirty pages of someone else's writing back under us:
     * without it local create varied 4,000..23,000 files/s run to run */
    sync();
    t0 = now_s();
    if (mkdir(files, 0755) < 0) {
        fprintf(stderr, "bench-portal: mkdir %s: %s (left by an earlier "
                "run? remove it, or leave create out of --only)\n",
                files, strerror(errno));
        r->errors++;
        res_print(r);
        return -1;
    }
    t1 = run_items(b, item_create, b->o.files, r);
    res_time(r, t1 < 0 ? t1 : now_s() - t0);
    res_print(r);
    return 0;
}

static void phase_files(struct bench *b, enum phase ph, item_fn fn,
                        const char *unit, bool cold)
{
    struct result *r;
    int dropped = -1;

    sync(); /* the previous phase's writeback does not land in this one */
    if (cold)
        dropped = drop_caches(b);
    else if (b->o.warmup)
        run_items(b, fn, b->o.files, NULL);
    r = res_begin(b, ph, unit, dropped);
    res_time(r, run_items(b, fn, b->o.files, r));
    res_print(r);
}

static void phase_readdir(struct bench *b, enum phase ph, bool cold)
{
    struct result *r;
    int dropped = -1;
    uint64_t ndirs = tree_ndirs(b);

    sync();
    if (cold)
        dropped = drop_caches(b);
    else if (b->o.warmup)
        run_items(b, item_readdir, ndirs, NULL);
    r = res_begin(b, ph, "entries/s", dropped);
    res_time(r, run_items(b, item_readdir, ndirs, r));
    /* every created file must have been listed exactly once */
    if (r->bytes != b->o.files) {
        fprintf(stderr, "bench-portal: %s: listed %" PRIu64 " files, "
                "expected %u\n", phase_names[ph], r->bytes, b->o.files);
        r->errors++;
    }
    r->bytes = 0; /* it counted files, not bytes */
    res_print(r);
}

static void big_path(const struct bench *b, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/big.bin", b->root_a);
}

static void phase_big_write(struct bench *b)
{
    struct result *r;
    uint8_t *buf = b->workers[0].buf;
    uint64_t total = (uint64_t)b->o.big_mb * MiB;
    char path[PATH_MAX];
    double t0;
    int fd, rc = 0;

    sync();
    r = res_begin(b, PH_BIG_WRITE, "MB/s", -1);
    big_path(b, path, sizeof(path));
    t0 = now_s();
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = -errno;
    } else {
        for (uint64_t off = 0; off < total && rc == 0; off += IO_CHUNK) {
            content_fill(b, buf, ID_BIG, 0, off, IO_CHUNK);
            rc = write_all(fd, buf, IO_CHUNK);
            r->bytes += rc == 0 ? IO_CHUNK : 0;
        }
        if (rc == 0 && fsync(fd) < 0)
            rc = -errno;
        if (close(fd) < 0 && rc == 0)
            rc = -errno;
    }
    r->secs = now_s() - t0;
    if (rc < 0) {
        fprintf(stderr, "bench-portal: big write %s: %s\n", path,
                strerror(-rc));
        r->errors++;
    }
    r->ops = r->bytes / IO_CHUNK;
    /* the rate of a byte-stream phase is MB/s */
    r->rate = r->secs > 0 ? (double)r->bytes / MiB / r->secs : 0;
    res_print(r);
}

static void phase_big_read(struct bench *b)
{
    struct result *r;
    uint8_t *buf = b->workers[0].buf;
    uint64_t total = (uint64_t)b->o.big_mb * MiB, off = 0;
    char path[PATH_MAX];
    double t0;
    int fd, dropped, rc = 0;

    dropped = drop_caches(b);
    r = res_begin(b, PH_BIG_READ_COLD, "MB/s", dropped);
    big_path(b, path, sizeof(path));
    t0 = now_s();
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
    } else {
        for (;;) {
            size_t len = 0;
            uint32_t ver = 0;

            rc = read_all(fd, buf, IO_CHUNK, &len);
            if (rc < 0 || len == 0)
                break;
            if (off + len > total ||
                content_match(b, buf, len, ID_BIG, off, &ver) < 0 ||
                ver != 0) {
                rc = -EBADMSG;
                break;
            }
            off += len;
        }
        close(fd);
    }
    r->secs = now_s() - t0;
    if (rc == 0 && off != total)
        rc = -EBADMSG;
    if (rc < 0) {
        fprintf(stderr, "bench-portal: big read %s: %s at offset %" PRIu64
                "\n", path, strerror(-rc), off);
        r->errors++;
    }
    r->bytes = off;
    r->ops = off / IO_CHUNK;
    r->rate = r->secs > 0 ? (double)off / MiB / r->secs : 0;
    res_print(r);
    unlink(path); /* delete everything: the big file is not in the tree */
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static double pct(const double *v, unsigned n, unsigned p)
{
    unsigned i;

    if (n == 0)
        return 0;
    i = (unsigned)(((uint64_t)(n - 1) * p + 50) / 100);
    return v[i];
}

/*
 * Poll path (on mount B) until it holds object id at version ver, or the
 * timeout.  Returns 0 when seen, -ETIMEDOUT, or -errno of an unexpected
 * failure; counts polls that read other bytes in *stale.
 */
static int poll_until(struct bench *b, const char *path, uint64_t id,
                      uint32_t ver, uint8_t *buf, uint64_t *stale)
{
    double deadline = now_s() + b->o.xnode_timeout_ms / 1000.0;

    for (;;) {
        size_t len = 0;
        uint32_t got = 0;
        int rc = get_file(path, buf, &len);

        if (rc == 0 && len == XNODE_SIZE &&
            content_match(b, buf, len, id, 0, &got) == 0 && got == ver)
            return 0;
        if (rc == 0)
            (*stale)++;
        else if (rc != -ENOENT && rc != -ESTALE)
            return rc;
        if (now_s() > deadline)
            return -ETIMEDOUT;
        sleep_us(b->o.poll_us);
    }
}

/* One cross-node trial: change on A, see it on B.  Fills lat (since A's
 * close returned) and lat_open (since A's open), both in ms. */
static int xnode_trial(struct bench *b, struct result *r, bool create,
                       unsigned t, double *lat, double *lat_open)
{
    uint8_t *buf = b->workers[0].buf, *rbuf = b->workers[1 % b->o.threads].buf;
    uint64_t id = create ? ID_XCREATE + t : ID_XUPDATE;
    uint32_t ver = create ? 0 : t + 1;
    char pa[PATH_MAX], pb[PATH_MAX];
    double t0, t1, t2;
    size_t len;
    int rc;

    if (create) {
        snprintf(pa, sizeof(pa), "%s/xnode/c%u", b->root_a, t);
        snprintf(pb, sizeof(pb), "%s/xnode/c%u", b->root_b, t);
    } else {
        snprintf(pa, sizeof(pa), "%s/xnode/u", b->root_a);
        snprintf(pb, sizeof(pb), "%s/xnode/u", b->root_b);
    }
    /* B looks first, so whatever B caches is the old state (invariant 4) */
    (void)get_file(pb, rbuf, &len);
    content_fill(b, buf, id, ver, 0, XNODE_SIZE);
    t0 = now_s();
    rc = put_file(pa, create ? O_CREAT | O_EXCL : O_TRUNC, buf, XNODE_SIZE);
    t1 = now_s();
    if (rc < 0) {
        fprintf(stderr, "bench-portal: xnode write %s: %s\n", pa,
                strerror(-rc));
        return rc;
    }
    rc = poll_until(b, pb, id, ver, rbuf, &r->stale_reads);
    t2 = now_s();
    if (rc == -ETIMEDOUT)
        r->timeouts++;
    else if (rc < 0)
        fprintf(stderr, "bench-portal: xnode read %s: %s\n", pb,
                strerror(-rc));
    *lat = (t2 - t1) * 1000;
    *lat_open = (t2 - t0) * 1000;
    return rc;
}

static void phase_xnode(struct bench *b, bool create)
{
    enum phase ph = create ? PH_XNODE_CREATE : PH_XNODE_UPDATE;
    struct result *r = res_begin(b, ph, "ms_median", -1);
    unsigned n = b->o.trials;
    double *lat = calloc(n ? n : 1, sizeof(double));
    double *lat_open = calloc(n ? n : 1, sizeof(double));
    char xa[PATH_MAX];
    double t0 = 0;
    uint64_t setup_stale = 0;

    if (!lat || !lat_open) {
        r->errors++;
        goto out_free;
    }
    snprintf(xa, sizeof(xa), "%s/xnode", b->root_a);
    if (mkdir_ok(xa) < 0) {
        fprintf(stderr, "bench-portal: mkdir %s: %s\n", xa, strerror(errno));
        r->errors++;
        goto out_free;
    }
    if (!create) {
        /* the file to update exists on both sides before the clock runs */
        char pa[PATH_MAX], pb[PATH_MAX];
        uint8_t *buf = b->workers[0].buf;

        snprintf(pa, sizeof(pa), "%s/xnode/u", b->root_a);
        snprintf(pb, sizeof(pb), "%s/xnode/u", b->root_b);
        content_fill(b, buf, ID_XUPDATE, 0, 0, XNODE_SIZE);
        if (put_file(pa, O_CREAT | O_TRUNC, buf, XNODE_SIZE) < 0 ||
            poll_until(b, pb, ID_XUPDATE, 0, buf, &setup_stale) < 0) {
            fprintf(stderr, "bench-portal: xnode: %s never showed on B\n", pa);
            r->errors++;
            goto out_free;
        }
    }
    t0 = now_s();
    for (unsigned t = 0; t < n; t++) {
        if (xnode_trial(b, r, create, t, &lat[r->ops], &lat_open[r->ops]) < 0)
            r->errors++;
        r->ops++;
    }
    r->secs = now_s() - t0;
    qsort(lat, r->ops, sizeof(double), cmp_double);
    qsort(lat_open, r->ops, sizeof(double), cmp_double);
    r->median_ms = pct(lat, (unsigned)r->ops, 50);
    r->p90_ms = pct(lat, (unsigned)r->ops, 90);
    r->max_ms = r->ops ? lat[r->ops - 1] : 0;
    r->median_open_ms = pct(lat_open, (unsigned)r->ops, 50);
out_free:
    r->rate = r->median_ms;
    res_print(r);
    free(lat);
    free(lat_open);
}

static void xnode_cleanup(struct bench *b)
{
    char p[PATH_MAX];

    for (unsigned t = 0; t < b->o.trials; t++) {
        snprintf(p, sizeof(p), "%s/xnode/c%u", b->root_a, t);
        unlink(p);
    }
    snprintf(p, sizeof(p), "%s/xnode/u", b->root_a);
    unlink(p);
    snprintf(p, sizeof(p), "%s/xnode", b->root_a);
    rmdir(p);
}

static void phase_delete(struct bench *b)
{
    struct result *r;
    uint64_t leaves = (uint64_t)b->o.fanout * b->o.fanout;
    struct result dirs = {0};
    double t0, t;

    sync();
    r = res_begin(b, PH_DELETE, "files/s", -1);
    t0 = now_s();
    t = run_items(b, item_unlink, b->o.files, r);
    /* then the folders, deepest first, like rm -rf */
    if (t >= 0)
        t = run_items(b, item_rmdir_leaf, leaves, &dirs);
    if (t >= 0)
        t = run_items(b, item_rmdir_l1, b->o.fanout, &dirs);
    if (t >= 0) {
        struct worker *w = &b->workers[0];

        if (item_rmdir(w, leaves + b->o.fanout) < 0)
            dirs.errors++;
    }
    r->errors += dirs.errors;
    res_time(r, t < 0 ? t : now_s() - t0);
    res_print(r);
}

/* ---- JSON ---- */

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;

        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static int write_json(const struct bench *b, const char *path)
{
    FILE *f = fopen(path, "we");
    bool first = true;

    if (!f)
        return -errno;
    fprintf(f, "{\n  \"tool\": \"bench-portal\",\n  \"label\": ");
    json_str(f, b->o.label ? b->o.label : "");
    fprintf(f, ",\n  \"dir\": ");
    json_str(f, b->o.dir_a);
    fprintf(f, ",\n  \"dir_b\": ");
    json_str(f, b->o.dir_b ? b->o.dir_b : "");
    fprintf(f, ",\n  \"loadavg_start\": \"%s\",\n  \"loadavg_end\": \"%s\"",
            b->load_start, b->load_end);
    fprintf(f, ",\n  \"config\": {\"files\": %u, \"threads\": %u, "
            "\"fanout\": %u, \"seed\": %" PRIu64 ", \"big_mb\": %u, "
            "\"trials\": %u, \"warmup\": %s, \"empty\": %s},\n"
            "  \"phases\": [",
            b->o.files, b->o.threads, b->o.fanout, b->o.seed, b->o.big_mb,
            b->o.trials, b->o.warmup ? "true" : "false",
            b->o.empty ? "true" : "false");
    for (int p = 0; p < PH_COUNT; p++) {
        const struct result *r = &b->res[p];

        if (!r->ran)
            continue;
        fprintf(f, "%s\n    {\"phase\": \"%s\", \"ops\": %" PRIu64
                ", \"secs\": %.6f, \"rate\": %.6g, \"unit\": \"%s\", "
                "\"errors\": %" PRIu64 ", \"bytes\": %" PRIu64,
                first ? "" : ",", phase_names[p], r->ops, r->secs, r->rate,
                r->unit, r->errors, r->bytes);
        if (r->cold >= 0)
            fprintf(f, ", \"cold\": %s", r->cold ? "true" : "false");
        if (p == PH_XNODE_CREATE || p == PH_XNODE_UPDATE)
            fprintf(f, ", \"median_ms\": %.3f, \"p90_ms\": %.3f, "
                    "\"max_ms\": %.3f, \"median_from_open_ms\": %.3f, "
                    "\"timeouts\": %" PRIu64 ", \"stale_reads\": %" PRIu64,
                    r->median_ms, r->p90_ms, r->max_ms, r->median_open_ms,
                    r->timeouts, r->stale_reads);
        fputc('}', f);
        first = false;
    }
    fprintf(f, "\n  ],\n  \"memory\": [");
    for (unsigned i = 0; i < b->o.nwatch; i++) {
        const struct watch_stat *ws = &b->watch[i];

        fprintf(f, "%s\n    {\"pid\": %d, \"comm\": ", i ? "," : "",
                (int)ws->pid);
        json_str(f, ws->comm);
        fprintf(f, ", \"label\": ");
        json_str(f, ws->label);
        fprintf(f, ", \"rss_peak_kb\": %" PRIu64 ", \"rss_end_kb\": %" PRIu64
                ", \"vmhwm_kb\": %" PRIu64 ", \"gone\": %s}",
                (uint64_t)atomic_load(&ws->rss_peak_kb), ws->rss_end_kb,
                ws->hwm_kb, ws->gone ? "true" : "false");
    }
    fprintf(f, "\n  ]\n}\n");
    if (fclose(f) == EOF)
        return -errno;
    return 0;
}

/* ---- options ---- */

static void usage(FILE *f)
{
    fprintf(f,
        "usage: bench-portal [OPTIONS] DIR [DIR_B]\n"
        "Runs the portal workload of issue #6 in DIR/bench-portal (made by\n"
        "create, removed by delete).  DIR_B: another mount of the same\n"
        "volume, for the cross-node phases (skipped without it).\n"
        "  --files N          files in the tree (20000)\n"
        "  --threads N        worker threads (4)\n"
        "  --fanout N         folders per level of files/ab/cd/ (16)\n"
        "  --seed N           content and layout seed (1)\n"
        "  --big-mb N         size of the big file in MiB (1024)\n"
        "  --trials N         cross-node trials (20)\n"
        "  --poll-us N        sleep between cross-node polls (200)\n"
        "  --xnode-timeout-ms N  give up on one trial after (10000)\n"
        "  --only LIST        phases or groups, comma separated: create,\n"
        "                     stat, read, readdir, big, xnode, delete, warm,\n"
        "                     cold, all, or exact names (stat_cold ...)\n"
        "  --subdir NAME      tree directory inside DIR (bench-portal)\n"
        "  --no-warmup        no untimed pass before warm phases\n"
        "  --no-drop          never drop caches (cold phases say cold=0)\n"
        "  --empty            every file 0 bytes (to measure what many\n"
        "                     cached inodes cost a mount)\n"
        "  --watch-pid P[=NAME][,...]  report peak RSS (VmRSS sampled every\n"
        "                     50 ms, and VmHWM) of these processes\n"
        "  --json FILE        also write the results as JSON\n"
        "  --label NAME       run name in the JSON\n"
        "Output: one line per phase: phase= ops= secs= rate= unit= errors=\n"
        "Exit: 0 clean, 1 errors or wrong bytes, 2 usage.\n");
}

static int parse_uint(const char *s, unsigned long long max,
                      unsigned long long *out)
{
    char *end;
    unsigned long long v;

    errno = 0;
    v = strtoull(s, &end, 0);
    if (errno || end == s || *end || s[0] == '-' || v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

static int parse_phases(const char *list, unsigned *mask)
{
    char buf[512], *save = NULL, *tok;
    unsigned m = 0;

    if (strlen(list) >= sizeof(buf))
        return -EINVAL;
    strcpy(buf, list);
    for (tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        bool found = false;

        for (size_t g = 0; g < sizeof(phase_groups) / sizeof(phase_groups[0]);
             g++) {
            if (!strcmp(tok, phase_groups[g].name)) {
                m |= phase_groups[g].mask;
                found = true;
            }
        }
        for (int p = 0; p < PH_COUNT && !found; p++) {
            if (!strcmp(tok, phase_names[p])) {
                m |= BIT(p);
                found = true;
            }
        }
        if (!found) {
            fprintf(stderr, "bench-portal: unknown phase '%s'\n", tok);
            return -EINVAL;
        }
    }
    *mask = m;
    return 0;
}

static int parse_pids(struct opts *o, const char *list)
{
    char buf[512], *save = NULL, *tok;

    if (strlen(list) >= sizeof(buf))
        return -EINVAL;
    strcpy(buf, list);
    for (tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        char *name = strchr(tok, '=');
        unsigned long long v;

        if (name)
            *name++ = '\0';
        if (parse_uint(tok, INT_MAX, &v) < 0 || v == 0 ||
            o->nwatch >= MAX_WATCH ||
            (name && strlen(name) >= sizeof(o->watch_label[0])))
            return -EINVAL;
        snprintf(o->watch_label[o->nwatch], sizeof(o->watch_label[0]), "%s",
                 name ? name : "");
        o->watch[o->nwatch++] = (pid_t)v;
    }
    return 0;
}

enum {
    OPT_FILES = 256, OPT_THREADS, OPT_FANOUT, OPT_SEED, OPT_BIG, OPT_TRIALS,
    OPT_POLL, OPT_XTIMEOUT, OPT_ONLY, OPT_SUBDIR, OPT_NOWARM, OPT_NODROP,
    OPT_WATCH, OPT_JSON, OPT_LABEL, OPT_EMPTY,
};

static int parse_args(int argc, char **argv, struct opts *o)
{
    static const struct option longopts[] = {
        {"files", required_argument, NULL, OPT_FILES},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"fanout", required_argument, NULL, OPT_FANOUT},
        {"seed", required_argument, NULL, OPT_SEED},
        {"big-mb", required_argument, NULL, OPT_BIG},
        {"trials", required_argument, NULL, OPT_TRIALS},
        {"poll-us", required_argument, NULL, OPT_POLL},
        {"xnode-timeout-ms", required_argument, NULL, OPT_XTIMEOUT},
        {"only", required_argument, NULL, OPT_ONLY},
        {"subdir", required_argument, NULL, OPT_SUBDIR},
        {"no-warmup", no_argument, NULL, OPT_NOWARM},
        {"no-drop", no_argument, NULL, OPT_NODROP},
        {"empty", no_argument, NULL, OPT_EMPTY},
        {"watch-pid", required_argument, NULL, OPT_WATCH},
        {"json", required_argument, NULL, OPT_JSON},
        {"label", required_argument, NULL, OPT_LABEL},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;

    *o = (struct opts){
        .subdir = "bench-portal", .files = 20000, .threads = 4, .fanout = 16,
        .trials = 20, .big_mb = 1024, .poll_us = 200,
        .xnode_timeout_ms = 10000, .seed = 1, .phases = BIT(PH_COUNT) - 1,
        .warmup = true, .drop = true,
    };
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        unsigned long long v = 0;
        int rc = 0;

        switch (c) {
        case OPT_FILES:
            rc = parse_uint(optarg, 100000000, &v);
            o->files = (unsigned)v;
            break;
        case OPT_THREADS:
            rc = parse_uint(optarg, 256, &v);
            rc = rc ? rc : v == 0 ? -EINVAL : 0;
            o->threads = (unsigned)v;
            break;
        case OPT_FANOUT:
            rc = parse_uint(optarg, 256, &v);
            rc = rc ? rc : v == 0 ? -EINVAL : 0;
            o->fanout = (unsigned)v;
            break;
        case OPT_SEED:
            rc = parse_uint(optarg, UINT64_MAX, &v);
            o->seed = v;
            break;
        case OPT_BIG:
            rc = parse_uint(optarg, 1u << 20, &v);
            o->big_mb = (unsigned)v;
            break;
        case OPT_TRIALS:
            rc = parse_uint(optarg, 100000, &v);
            o->trials = (unsigned)v;
            break;
        case OPT_POLL:
            rc = parse_uint(optarg, 10000000, &v);
            o->poll_us = (unsigned)v;
            break;
        case OPT_XTIMEOUT:
            rc = parse_uint(optarg, 3600000, &v);
            rc = rc ? rc : v == 0 ? -EINVAL : 0;
            o->xnode_timeout_ms = (unsigned)v;
            break;
        case OPT_ONLY:
            rc = parse_phases(optarg, &o->phases);
            break;
        case OPT_SUBDIR:
            o->subdir = optarg;
            rc = !*optarg || strchr(optarg, '/') ? -EINVAL : 0;
            break;
        case OPT_NOWARM:
            o->warmup = false;
            break;
        case OPT_NODROP:
            o->drop = false;
            break;
        case OPT_EMPTY:
            o->empty = true;
            break;
        case OPT_WATCH:
            rc = parse_pids(o, optarg);
            break;
        case OPT_JSON:
            o->json_path = optarg;
            break;
        case OPT_LABEL:
            o->label = optarg;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            return -EINVAL;
        }
        if (rc < 0) {
            fprintf(stderr, "bench-portal: bad value '%s'\n",
                    optarg ? optarg : "");
            return -EINVAL;
        }
    }
    if (optind >= argc || argc - optind > 2) {
        usage(stderr);
        return -EINVAL;
    }
    o->dir_a = argv[optind];
    o->dir_b = argc - optind == 2 ? argv[optind + 1] : NULL;
    return 0;
}

/* ---- setup ---- */

static int bench_init(struct bench *b, const struct opts *o)
{
    uint64_t x;
    int n;

    memset(b, 0, sizeof(*b));
    b->o = *o;
    n = snprintf(b->root_a, sizeof(b->root_a), "%s/%s", o->dir_a, o->subdir);
    if (n < 0 || (size_t)n >= sizeof(b->root_a))
        return -ENAMETOOLONG;
    if (o->dir_b) {
        n = snprintf(b->root_b, sizeof(b->root_b), "%s/%s", o->dir_b,
                     o->subdir);
        if (n < 0 || (size_t)n >= sizeof(b->root_b))
            return -ENAMETOOLONG;
    }
    b->seed_tag = mix64(o->seed ^ UINT64_C(0x7265706c69636166)); /* "replicaf" */
    pthread_mutex_init(&b->err_lock, NULL);
    b->base = malloc(BASE_SIZE);
    b->workers = calloc(o->threads < 2 ? 2 : o->threads, sizeof(*b->workers));
    if (!b->base || !b->workers)
        return -ENOMEM;
    for (unsigned t = 0; t < (o->threads < 2 ? 2u : o->threads); t++) {
        b->workers[t].b = b;
        b->workers[t].buf = malloc(BUF_SIZE);
        if (!b->workers[t].buf)
            return -ENOMEM;
    }
    x = o->seed;
    for (size_t i = 0; i < BASE_SIZE; i += 8) {
        uint64_t v = mix64(x++);

        memcpy(b->base + i, &v, 8);
    }
    return 0;
}

/* NULL-safe on the fields; frees what bench_init() made, even half-made. */
static void bench_fini(struct bench *b)
{
    if (b->workers) {
        for (unsigned t = 0; t < (b->o.threads < 2 ? 2u : b->o.threads); t++)
            free(b->workers[t].buf);
    }
    free(b->workers);
    free(b->base);
    pthread_mutex_destroy(&b->err_lock);
}

int main(int argc, char **argv)
{
    static struct bench bench; /* big: keep it off the stack */
    struct bench *b = &bench;
    struct opts o;
    uint64_t errors = 0;
    int rc;

    if (parse_args(argc, argv, &o) < 0)
        return 2;
    rc = bench_init(b, &o);
    if (rc < 0) {
        fprintf(stderr, "bench-portal: %s\n", strerror(-rc));
        bench_fini(b);
        return 1;
    }
    if (mkdir(b->root_a, 0755) < 0 && errno != EEXIST) {
        fprintf(stderr, "bench-portal: mkdir %s: %s\n", b->root_a,
                strerror(errno));
        bench_fini(b);
        return 1;
    }
    printf("# bench-portal dir=%s dir_b=%s files=%u threads=%u fanout=%u "
           "seed=%" PRIu64 " big_mb=%u trials=%u euid=%d\n",
           o.dir_a, o.dir_b ? o.dir_b : "-", o.files, o.threads, o.fanout,
           o.seed, o.big_mb, o.trials, (int)geteuid());
    load_avg(b->load_start, sizeof(b->load_start));
    printf("# loadavg start=%s\n", b->load_start);
    fflush(stdout);
    watch_start(b);

    if (want(b, PH_CREATE) && phase_create(b) < 0)
        b->o.phases = 0; /* the tree is someone else's: touch nothing */
    if (want(b, PH_STAT_WARM))
        phase_files(b, PH_STAT_WARM, item_stat, "stats/s", false);
    if (want(b, PH_STAT_COLD))
        phase_files(b, PH_STAT_COLD, item_stat, "stats/s", true);
    if (want(b, PH_READ_WARM))
        phase_files(b, PH_READ_WARM, item_read, "files/s", false);
    if (want(b, PH_READ_COLD))
        phase_files(b, PH_READ_COLD, item_read, "files/s", true);
    if (want(b, PH_READDIR))
        phase_readdir(b, PH_READDIR, false);
    if (want(b, PH_READDIR_COLD))
        phase_readdir(b, PH_READDIR_COLD, true);
    if (want(b, PH_BIG_WRITE) && o.big_mb > 0)
        phase_big_write(b);
    if (want(b, PH_BIG_READ_COLD) && o.big_mb > 0)
        phase_big_read(b);
    if (o.dir_b && want(b, PH_XNODE_CREATE))
        phase_xnode(b, true);
    if (o.dir_b && want(b, PH_XNODE_UPDATE))
        phase_xnode(b, false);
    if (!o.dir_b && (b->o.phases & (BIT(PH_XNODE_CREATE) |
                                    BIT(PH_XNODE_UPDATE))))
        printf("# xnode phases skipped: no DIR_B\n");
    if (want(b, PH_DELETE)) {
        xnode_cleanup(b);
        phase_delete(b);
        if (rmdir(b->root_a) < 0 && errno != ENOENT)
            fprintf(stderr, "bench-portal: warning: rmdir %s: %s\n",
                    b->root_a, strerror(errno));
    }

    watch_stop(b);
    load_avg(b->load_end, sizeof(b->load_end));
    printf("# loadavg end=%s\n", b->load_end);
    for (unsigned i = 0; i < o.nwatch; i++) {
        const struct watch_stat *ws = &b->watch[i];

        printf("memory pid=%d label=%s comm=%s rss_peak_kb=%" PRIu64
               " rss_end_kb=%" PRIu64 " vmhwm_kb=%" PRIu64 "%s\n",
               (int)ws->pid, ws->label[0] ? ws->label : "-", ws->comm,
               (uint64_t)atomic_load(&ws->rss_peak_kb),
               ws->rss_end_kb, ws->hwm_kb, ws->gone ? " gone=1" : "");
    }
    for (int p = 0; p < PH_COUNT; p++)
        errors += b->res[p].errors;
    if (o.json_path) {
        rc = write_json(b, o.json_path);
        if (rc < 0) {
            fprintf(stderr, "bench-portal: %s: %s\n", o.json_path,
                    strerror(-rc));
            errors++;
        }
    }
    bench_fini(b);
    return errors ? 1 : 0;
}
