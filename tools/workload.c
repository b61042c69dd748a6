/*
 * workload: a portal-like load over one or more mounts of a volume, and the
 * checker that proves nothing acknowledged was lost (issue #5, item 1).
 *
 *   workload run --mount DIR [--mount DIR ...] --log FILE --threads N
 *                (--seconds S | --ops N) --seed X [--fsync-ratio F]
 *                [--strict] [--tag T] [--thumb-set NAME] [--max-size BYTES]
 *                [--no-read-check]
 *   workload verify --log FILE [--log FILE ...] --mount DIR [--mount DIR ...]
 *                   [--brick DIR ...]
 *   workload gen --seed X --path P --recipe R [--bytes N] [--hash]
 *                the content a log line describes (or "size=N h=H"), for
 *                tests and for looking at a damaged file by hand
 *
 * Nothing here knows replicafs: `run` and `verify` work on any directories,
 * so the tool is tested on local directories (tests/integration/
 * workload_selftest.sh) and then pointed at FUSE mounts and brick dirs by the
 * failover scenarios.
 *
 * ---------------------------------------------------------------------------
 * What `run` does
 * ---------------------------------------------------------------------------
 * N threads; thread t works through mount t % nmounts (one in five of its
 * changes goes through another mount, as when web2 edits what web1 uploaded;
 * read checks always go through another mount when there is one).  Each
 * operation is one of (weights in op_weights[]):
 *
 *   upload    write .tmp-<tag>-<t>-<n> (in the target dir or in tmp/), fsync
 *             it (fsync-ratio of the time) or just close it, then rename it
 *             to a new final name in a hashed folder, creating the folders
 *   replace   the same, renamed over an existing final name
 *   rewrite   open(final, O_WRONLY|O_TRUNC), write, [fsync], close
 *   append    open(final, O_WRONLY|O_APPEND), write, [fsync], close
 *   truncate  truncate(final, shorter, or longer with a hole)
 *   unlink    unlink(final); a deleted name is never used again
 *   thumb     O_CREAT|O_EXCL of a shared resize_cache name, write, close:
 *             every thread of every process tries the same names in the same
 *             100 ms time slot, so creators race across mounts; exactly one
 *             may win, the others must get EEXIST
 *   read      read back one of the thread's own files through another mount
 *             and compare with what was acknowledged (cross-node coherence)
 *
 * Naming (why no two writers ever write the same final name, invariant 1):
 *   final:  <module>/<hh>/<hh>/<tag>-<t>-<n>.<ext>  module in iblock, main,
 *           disk; hh from the xxh3 of the base name; <tag> is unique per run
 *           process (--tag, default 8 random hex digits), <t> the thread,
 *           <n> a per-thread counter.  Only thread t of that process ever
 *           touches it.
 *   temp:   <dir of final>/.tmp-<tag>-<t>-<n> or tmp/.tmp-<tag>-<t>-<n>.
 *   thumbs: resize_cache/<set>/<hh>/<slot>_<j>.jpg, slot = wall-clock ms /
 *           100, j < 4, set = --thumb-set (default "shared"): the one name
 *           space shared by every thread and process, written only through
 *           O_EXCL and never changed or deleted afterwards.
 *   Folders are shared and created on demand (mkdir; EEXIST is fine), so
 *   mkdir races across mounts too.
 *
 * Content (so the verifier can re-derive every byte):
 *   A file's content is a recipe: a list of pieces <ver>:<len>.  Piece
 *   <ver>:<len> is bytes [0, len) of the stream S(seed, key, ver), where key
 *   = xxh3 of the file's final path, and 64-bit word i of the stream is
 *   splitmix64(stream_base(seed, key, ver) + i), little-endian; ver 0 is a
 *   run of zero bytes (a hole made by an extending truncate).  Every change
 *   of a file takes a fresh ver (the file's previous ver + 1); a thumbnail's
 *   ver names its creator (tag hash and thread), so the loser's bytes can
 *   never pass for the winner's.  upload/replace/rewrite make a one-piece
 *   recipe, append adds a piece, truncate cuts or adds a zero piece.
 *
 * ---------------------------------------------------------------------------
 * Acknowledgement semantics (numbered invariants; the verifier enforces them)
 * ---------------------------------------------------------------------------
 *  1. One writer per final name: only its owning thread changes a final
 *     name, one operation at a time; the only exception is the thumbnail
 *     O_EXCL race, where only the creator that won writes.
 *  2. An operation is acknowledged when every syscall in it returned
 *     success: for written bytes that is close() (or fsync(), which makes
 *     them acknowledged even if close() then fails); for a rename, rename()
 *     returning 0; for unlink and truncate, their return.
 *  3. The expected state of a final path is the state left by its last
 *     acknowledged operation (no file, or exactly the recipe's bytes).
 *  4. An operation that failed, or whose outcome is unknown (no outcome
 *     line: the process died mid-operation), leaves the path uncertain; the
 *     verifier accepts exactly these states and nothing else:
 *        upload/replace: failed before rename: old only;
 *                        rename failed or unknown: old or new
 *        rewrite:        open failed: old or empty; failed after open (the
 *                        O_TRUNC was acknowledged): any prefix of new at least
 *                        acked bytes long; unknown: old or any prefix of new
 *        append:         open failed: old; failed later or unknown: old plus
 *                        any prefix of the appended bytes (at least acked)
 *        truncate:       old or new        unlink: old or no file
 *        thumb:          see invariant 6
 *     "acked" in an F line is the length fsync() made durable (0 without).
 *     In-place writes are not atomic in any POSIX filesystem, so a prefix of
 *     the new bytes is a legitimate result of a failed one; a rename-based
 *     upload must never show a partial file.
 *  5. After a failure the writer touches that path only with replace or
 *     unlink (which set a known state again), never with an in-place change
 *     or a read check; this keeps every path's candidate set small.
 *  6. Thumbnails: at most one creator per name may see O_EXCL succeed; the
 *     file then holds that creator's bytes (a prefix of at least acked bytes
 *     if its write failed).  If nobody is known to have won, it may be absent
 *     (unless someone got EEXIST) or hold what an uncertain creator wrote.
 *     EEXIST for everyone with no possible creator is a violation.
 *
 * ---------------------------------------------------------------------------
 * Log format (text, one record per line, fields separated by one space)
 * ---------------------------------------------------------------------------
 * Each line is written with a single write(2) on an O_APPEND fd, so lines of
 * concurrent threads never interleave and a line survives kill -9 of the
 * process; the log is fdatasync'ed every second and at the end.  Several
 * runs may append to one log (each starts with its own H line); a torn last
 * line without '\n' is ignored.
 *
 *   # free text                                      comment
 *   H 1 seed=<u64> tag=<tag> thumbset=<set> threads=<n> mounts=<n>
 *       pid=<pid> time=<unix s>                      a run starts (format 1)
 *   B <opid> <op> <path> [tmp=<path>] m=<mount index> [fsync=0|1] [add=<n>]
 *       [size=<n> h=<xxh3 16 hex>] r=<recipe>        operation begins
 *   A <opid> [won|lost|enoent]                       acknowledged
 *   F <opid> stage=<stage> err=<ERRNO> acked=<n>     failed
 *   R <opid> <path> m=<i> ok | mismatch size=<n> h=<hex> want_size=<n>
 *       want_h=<hex> | error stage=<stage> err=<ERRNO>   read check
 *   E ops=<n> acked=<n> failed=<n> reads_bad=<n> status=<word>   run ended
 *
 *   <opid> = <thread>.<seq>; a thread has at most one operation open, and the
 *   A or F line for it comes before its next B.  <path> is relative to the
 *   mount root.  <recipe> = "-" (no file: unlink), "e" (empty file) or
 *   <ver hex>:<len>[,<ver hex>:<len>...].  size and h describe the state
 *   the operation leaves when acknowledged (for append: the whole file, and
 *   add= is the appended length).  stage is mkdir, open, write, fsync,
 *   close, rename, truncate, unlink or read.  A thumb B line ends in
 *   "A <opid> won", "A <opid> lost" (EEXIST) or an F line.  "A <opid>
 *   enoent" is an unlink that found the path already gone, logged only when
 *   an earlier failed op left "no file" among its possible states (else
 *   ENOENT is an F line: an existing file vanished).
 *
 * ---------------------------------------------------------------------------
 * What `verify` checks
 * ---------------------------------------------------------------------------
 * It replays every log into a candidate set per final path (invariants 3, 4
 * and 6), walks the tree through the mount (reading and hashing every file),
 * and prints one line per problem:
 *   MISSING      an acknowledged file is absent
 *   WRONG        a file holds bytes no candidate allows (or is unreadable)
 *   PARTIAL      a final name holds a strict prefix of a version
 *   RESURRECTED  a file whose deletion was acknowledged is back
 *   UNEXPECTED   a non-temp file no logged operation wrote
 *   EXCL         two creators won one O_EXCL name, or EEXIST with no creator
 *   STALE-READ   a read check in the log saw bytes other than acknowledged
 *   LOG          one final name written by two writers (tag reused?)
 *   REPLICA      a brick's tree differs from the mount's (name set, type,
 *                size or bytes); `.replicafs/` at a brick's root is skipped
 *   MOUNT        a further --mount (another node's view) differs from the
 *                first (stale caches); the first --mount is the reference
 * and temp files (.tmp-*) left over are counted as information only.  The
 * exit status is 0 when there is no problem, 1 when there is any, 2 on a
 * usage error or an unreadable log or tree root.
 */
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#define MAX_MOUNTS 16
#define MAX_BRICKS 16
#define MAX_LOGS 64
#define MAX_THREADS 1024
#define MAX_PIECES 8
#define REL_MAX 256             /* our relative paths are far shorter */
#define RECIPE_STR (MAX_PIECES * 40)
#define OPID_MAX 32
#define GEN_CHUNK (128u * 1024) /* largest write chunk, and hashing buffer */
#define THUMB_SLOT_MS 100
#define THUMBS_PER_SLOT 4
#define TMP_PREFIX ".tmp-"
#define LINE_MAX_LEN 2048

enum op_kind {
    OP_UPLOAD = 0,
    OP_REPLACE,
    OP_REWRITE,
    OP_APPEND,
    OP_TRUNCATE,
    OP_UNLINK,
    OP_THUMB,
    OP_READ,
    OP__N,
};

static const char *const op_names[OP__N] = {
    "upload", "replace", "rewrite", "append", "truncate", "unlink", "thumb", "read",
};
/* Out of 100.  Uploads outnumber deletes, as on a portal. */
static const unsigned op_weights[OP__N] = {28, 10, 8, 8, 6, 10, 14, 16};
static const char *const modules[] = {"iblock", "main", "disk"};
static const char *const exts[] = {"jpg", "png", "pdf", "docx", "txt"};

/* The only global: set from signal handlers, polled by the run loop. */
static volatile sig_atomic_t g_signalled;

/* ======================================================================== */
/* Content: streams, recipes, hashing                                        */
/* ======================================================================== */

struct piece {
    uint64_t ver; /* 0: zero bytes */
    uint64_t len;
};

struct recipe {
    unsigned n;
    struct piece p[MAX_PIECES];
};

/* Scratch for generating and hashing content; one per thread. */
struct gen {
    unsigned char *buf; /* owned, GEN_CHUNK bytes; freed in gen_fini() */
    XXH3_state_t *xs;   /* owned; freed in gen_fini() */
};

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static uint64_t path_key(const char *path)
{
    return XXH3_64bits(path, strlen(path));
}

static uint64_t stream_base(uint64_t seed, uint64_t key, uint64_t ver)
{
    return splitmix64(seed ^ splitmix64(key ^ splitmix64(ver)));
}

/* Bytes [off, off + len) of the stream starting at base. */
static void stream_fill(uint64_t base, uint64_t off, unsigned char *buf, size_t len)
{
    while (len > 0) {
        uint64_t w = splitmix64(base + off / 8);
        unsigned skip = (unsigned)(off % 8);
        size_t take = 8 - skip;

        if (take > len)
            take = len;
        for (size_t i = 0; i < take; i++)
            buf[i] = (unsigned char)(w >> (8 * (skip + i)));
        buf += take;
        off += take;
        len -= take;
    }
}

static uint64_t recipe_size(const struct recipe *r)
{
    uint64_t size = 0;

    for (unsigned i = 0; i < r->n; i++)
        size += r->p[i].len;
    return size;
}

/* Bytes [off, off + len) of the content; the range must lie in the recipe. */
static void recipe_fill(uint64_t seed, uint64_t key, const struct recipe *r,
                        uint64_t off, unsigned char *buf, size_t len)
{
    uint64_t start = 0;

    for (unsigned i = 0; i < r->n && len > 0; i++) {
        const struct piece *p = &r->p[i];
        uint64_t end = start + p->len;

        if (off < end) {
            size_t take = end - off < len ? (size_t)(end - off) : len;

            if (p->ver == 0)
                memset(buf, 0, take);
            else
                stream_fill(stream_base(seed, key, p->ver), off - start, buf, take);
            buf += take;
            off += take;
            len -= take;
        }
        start = end;
    }
    assert(len == 0);
}

static int gen_init(struct gen *g)
{
    g->buf = malloc(GEN_CHUNK);
    if (!g->buf)
        return -ENOMEM;
    g->xs = XXH3_createState();
    if (!g->xs)
        goto err_free_buf;
    return 0;
err_free_buf:
    free(g->buf);
    g->buf = NULL;
    return -ENOMEM;
}

static void gen_fini(struct gen *g)
{
    if (g->xs)
        XXH3_freeState(g->xs);
    free(g->buf);
    g->xs = NULL;
    g->buf = NULL;
}

/* xxh3-64 of the first len bytes of the content (len <= recipe_size). */
static uint64_t recipe_hash(struct gen *g, uint64_t seed, uint64_t key,
                            const struct recipe *r, uint64_t len)
{
    XXH3_64bits_reset(g->xs);
    for (uint64_t off = 0; off < len;) {
        size_t n = len - off < GEN_CHUNK ? (size_t)(len - off) : GEN_CHUNK;

        recipe_fill(seed, key, r, off, g->buf, n);
        XXH3_64bits_update(g->xs, g->buf, n);
        off += n;
    }
    return XXH3_64bits_digest(g->xs);
}

/* Append a piece (merging zero runs).  0 or -E2BIG (r unchanged). */
static int recipe_push(struct recipe *r, uint64_t ver, uint64_t len)
{
    if (len == 0)
        return 0;
    if (ver == 0 && r->n > 0 && r->p[r->n - 1].ver == 0) {
        r->p[r->n - 1].len += len;
        return 0;
    }
    if (r->n == MAX_PIECES)
        return -E2BIG;
    r->p[r->n].ver = ver;
    r->p[r->n].len = len;
    r->n++;
    return 0;
}

/* What truncate(newlen) does to the content.  0 or -E2BIG (r unchanged). */
static int recipe_resize(struct recipe *r, uint64_t newlen)
{
    uint64_t size = recipe_size(r), start = 0;

    if (newlen >= size)
        return recipe_push(r, 0, newlen - size);
    for (unsigned i = 0; i < r->n; i++) {
        if (start + r->p[i].len >= newlen) {
            r->p[i].len = newlen - start;
            r->n = r->p[i].len ? i + 1 : i;
            return 0;
        }
        start += r->p[i].len;
    }
    return 0;
}

static void recipe_format(const struct recipe *r, char *out, size_t cap)
{
    size_t used = 0;

    if (r->n == 0) {
        snprintf(out, cap, "e");
        return;
    }
    out[0] = '\0';
    for (unsigned i = 0; i < r->n && used < cap; i++)
        used += (size_t)snprintf(out + used, cap - used, "%s%" PRIx64 ":%" PRIu64,
                                 i ? "," : "", r->p[i].ver, r->p[i].len);
}

static int parse_u64(const char *s, int base, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (!*s || *s == '-' || *s == '+')
        return -EINVAL;
    errno = 0;
    v = strtoull(s, &end, base);
    if (errno || *end)
        return -EINVAL;
    *out = v;
    return 0;
}

/* Parse "e" or "ver:len,...".  0 or -EINVAL (out untouched). */
static int recipe_parse(const char *s, struct recipe *out)
{
    struct recipe r = {0};
    char buf[RECIPE_STR + 1], *save = NULL, *tok;

    if (strcmp(s, "e") == 0) {
        *out = r;
        return 0;
    }
    if (strlen(s) > RECIPE_STR)
        return -EINVAL;
    strcpy(buf, s);
    for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(tok, ':');
        uint64_t ver, len;

        if (!colon || r.n == MAX_PIECES)
            return -EINVAL;
        *colon = '\0';
        if (parse_u64(tok, 16, &ver) < 0 || parse_u64(colon + 1, 10, &len) < 0)
            return -EINVAL;
        r.p[r.n].ver = ver;
        r.p[r.n].len = len;
        r.n++;
    }
    if (r.n == 0)
        return -EINVAL;
    *out = r;
    return 0;
}

static const char *errname(int err)
{
    const char *name = strerrorname_np(err);

    return name ? name : "E?";
}

static bool is_temp_name(const char *path)
{
    const char *base = strrchr(path, '/');

    return strncmp(base ? base + 1 : path, TMP_PREFIX, strlen(TMP_PREFIX)) == 0;
}

static double now_mono(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ======================================================================== */
/* run: the load                                                              */
/* ======================================================================== */

struct rng {
    uint64_t s;
};

static uint64_t rng_next(struct rng *r)
{
    return splitmix64(r->s++);
}

static uint64_t rng_below(struct rng *r, uint64_t n)
{
    return n ? rng_next(r) % n : 0;
}

static bool rng_chance(struct rng *r, double p)
{
    return (double)(rng_next(r) >> 11) * 0x1.0p-53 < p;
}

struct run_opts {
    const char *mounts[MAX_MOUNTS]; /* borrowed from argv */
    unsigned nmounts;
    const char *log_path; /* borrowed from argv */
    unsigned threads;
    double seconds; /* 0: use ops */
    uint64_t ops;
    uint64_t seed;
    double fsync_ratio;
    bool strict;
    bool read_check;
    char tag[33];
    const char *thumb_set; /* borrowed from argv or a literal */
    uint64_t max_size;
};

struct run {
    const struct run_opts *o; /* borrowed */
    int log_fd;               /* owned by run_main() */
    uint64_t tag_hash;
    atomic_bool stop;
    atomic_uint_fast64_t tickets; /* operations handed out (--ops) */
    atomic_uint running;          /* workers still in their loop */
    atomic_uint_fast64_t tried[OP__N];
    atomic_uint_fast64_t acked[OP__N];
    atomic_uint_fast64_t failed[OP__N];
    atomic_uint_fast64_t thumbs_won, thumbs_lost, reads_bad;
    atomic_bool strict_tripped; /* --strict saw an error */
    atomic_bool log_broken;     /* a log write failed: nothing is provable */
};

/* A final name owned by one worker, and what it must hold. */
struct wfile {
    char path[REL_MAX];
    struct recipe r; /* valid unless uncertain */
    uint64_t size, hash;
    uint64_t ver;    /* last ver used for this path (monotonic) */
    bool uncertain;  /* a failed op left it "old or new" (invariant 5) */
    bool may_be_absent; /* uncertain, and "no file" is one of the states */
};

struct worker {
    struct run *run; /* borrowed */
    unsigned tid;
    pthread_t thread;
    struct rng rng;
    struct gen gen;      /* owned; gen_fini() in worker_fini() */
    struct wfile *files; /* owned; freed in worker_fini() */
    size_t nfiles, cap;
    uint64_t seq;    /* next opid sequence */
    uint64_t name_n; /* next final-name counter */
    uint64_t tmp_n;  /* next temp-name counter */
    uint64_t thumb_slot;
    unsigned thumb_next;
    int rc; /* 0, or -errno of an internal failure that stopped it */
};

/* What one operation came to (invariant 2). */
struct outcome {
    const char *stage; /* NULL: acknowledged */
    int err;           /* positive errno when stage != NULL */
    uint64_t acked;    /* bytes made durable by fsync before a failure */
    const char *note;  /* "won", "lost", "enoent" or NULL */
};

static void fail_at(struct outcome *out, const char *stage, int err)
{
    out->stage = stage;
    out->err = err;
}

/* One record, one write(2): O_APPEND keeps concurrent lines whole. */
static void __attribute__((format(printf, 2, 3))) log_line(struct run *run, const char *fmt, ...)
{
    char line[LINE_MAX_LEN];
    va_list ap;
    int n;
    ssize_t w;

    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
    va_end(ap);
    /* Records are bounded (REL_MAX paths, RECIPE_STR recipes); only a free
     * text comment could be cut, never overrun. */
    if (n < 0)
        n = 0;
    if ((size_t)n > sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    do
        w = write(run->log_fd, line, (size_t)n);
    while (w < 0 && errno == EINTR);
    if (w != n) {
        /* An operation we cannot record cannot be verified: stop. */
        if (!atomic_exchange(&run->log_broken, true))
            fprintf(stderr, "workload: writing the log failed: %s\n",
                    w < 0 ? strerror(errno) : "short write");
        atomic_store(&run->stop, true);
    }
}

static void new_opid(struct worker *w, char opid[OPID_MAX])
{
    snprintf(opid, OPID_MAX, "%u.%" PRIu64, w->tid, w->seq++);
}

/* Log the outcome line and count it; --strict stops the run on an error. */
static void finish(struct worker *w, enum op_kind k, const char *opid,
                   const char *path, const struct outcome *out)
{
    struct run *run = w->run;

    if (!out->stage) {
        log_line(run, "A %s%s%s", opid, out->note ? " " : "", out->note ? out->note : "");
        atomic_fetch_add(&run->acked[k], 1);
        return;
    }
    log_line(run, "F %s stage=%s err=%s acked=%" PRIu64, opid, out->stage,
             errname(out->err), out->acked);
    atomic_fetch_add(&run->failed[k], 1);
    if (run->o->strict) {
        fprintf(stderr, "workload: --strict: %s %s (op %s) failed at %s: %s\n",
                op_names[k], path, opid, out->stage, strerror(out->err));
        atomic_store(&run->strict_tripped, true);
        atomic_store(&run->stop, true);
    }
}

static unsigned home_mount(const struct worker *w)
{
    return w->tid % w->run->o->nmounts;
}

/* Changes go through the home mount, one in five through another one. */
static unsigned pick_write_mount(struct worker *w)
{
    unsigned n = w->run->o->nmounts;

    if (n > 1 && rng_below(&w->rng, 5) == 0)
        return (home_mount(w) + 1 + (unsigned)rng_below(&w->rng, n - 1)) % n;
    return home_mount(w);
}

static int full_path(const struct worker *w, unsigned mi, const char *rel, char out[PATH_MAX])
{
    int n = snprintf(out, PATH_MAX, "%s/%s", w->run->o->mounts[mi], rel);

    return n < 0 || n >= PATH_MAX ? -ENAMETOOLONG : 0;
}

/* mkdir -p of the directory part of full, below the first base_len bytes
 * (the mount).  Tries the deepest folder first: one call when the parents
 * exist.  0 or -errno. */
static int mkdir_parents(char *full, size_t base_len)
{
    char *slash = strrchr(full, '/');
    int rc = 0;

    if (!slash || (size_t)(slash - full) <= base_len)
        return 0;
    *slash = '\0';
    if (mkdir(full, 0755) < 0 && errno != EEXIST) {
        rc = -errno;
        if (rc == -ENOENT) {
            rc = mkdir_parents(full, base_len);
            if (rc == 0 && mkdir(full, 0755) < 0 && errno != EEXIST)
                rc = -errno;
        }
    }
    *slash = '/';
    return rc;
}

static int write_all(int fd, const unsigned char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -EIO;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Write bytes [0, len) of stream (seed, key, ver) to fd in the chunk sizes
 * PHP and nginx use.  0 or -errno. */
static int write_stream(struct worker *w, int fd, uint64_t key, uint64_t ver, uint64_t len)
{
    static const size_t chunks[] = {4096, 8192, 65536, 131072};
    uint64_t base = stream_base(w->run->o->seed, key, ver);

    for (uint64_t off = 0; off < len;) {
        size_t n = chunks[rng_below(&w->rng, 4)];
        int rc;

        if (n > len - off)
            n = (size_t)(len - off);
        stream_fill(base, off, w->gen.buf, n);
        rc = write_all(fd, w->gen.buf, n);
        if (rc < 0)
            return rc;
        off += n;
    }
    return 0;
}

/* Write, optionally fsync, close: the tail every writing op shares.  Sets
 * out on failure; out->acked = full when fsync succeeded.  Closes fd. */
static void write_fsync_close(struct worker *w, int fd, uint64_t key, uint64_t ver,
                              uint64_t len, bool do_fsync, uint64_t full,
                              struct outcome *out)
{
    int rc = write_stream(w, fd, key, ver, len);

    if (rc < 0) {
        fail_at(out, "write", -rc);
        close(fd);
        return;
    }
    if (do_fsync) {
        if (fsync(fd) < 0) {
            fail_at(out, "fsync", errno);
            close(fd);
            return;
        }
        out->acked = full;
    }
    if (close(fd) < 0)
        fail_at(out, "close", errno);
}

static uint64_t pick_size(struct worker *w)
{
    uint64_t max = w->run->o->max_size, r = rng_below(&w->rng, 100), cap;

    if (r < 2)
        return 0;
    if (r < 62)
        cap = 16384;
    else if (r < 92)
        cap = 262144;
    else
        cap = max;
    if (cap > max)
        cap = max;
    return 1 + rng_below(&w->rng, cap);
}

static int files_add(struct worker *w, const struct wfile *f)
{
    if (w->nfiles == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 64;
        struct wfile *v = realloc(w->files, cap * sizeof(*v));

        if (!v)
            return -ENOMEM;
        w->files = v;
        w->cap = cap;
    }
    w->files[w->nfiles++] = *f;
    return 0;
}

static void files_remove(struct worker *w, struct wfile *f)
{
    *f = w->files[--w->nfiles];
}

/* A random file of this worker; certain_only skips uncertain ones.  NULL if
 * a few tries find none. */
static struct wfile *pick_file(struct worker *w, bool certain_only)
{
    for (int i = 0; i < 4 && w->nfiles > 0; i++) {
        struct wfile *f = &w->files[rng_below(&w->rng, w->nfiles)];

        if (!certain_only || !f->uncertain)
            return f;
    }
    return NULL;
}

/* upload (f == NULL: a new final name) or replace (f): temp file, then
 * rename over the final name.  0, or -errno of an internal failure. */
static int op_upload(struct worker *w, struct wfile *f)
{
    struct run *run = w->run;
    enum op_kind k = f ? OP_REPLACE : OP_UPLOAD;
    struct wfile nf = {0};
    struct outcome out = {0};
    char opid[OPID_MAX], rstr[RECIPE_STR], tmp[REL_MAX];
    char ffull[PATH_MAX], tfull[PATH_MAX];
    unsigned mi = f ? pick_write_mount(w) : home_mount(w);
    bool do_fsync = rng_chance(&w->rng, run->o->fsync_ratio);
    bool opened = false;
    uint64_t key;
    int fd, rc;

    if (f) {
        nf = *f;
    } else {
        char base[96];
        uint64_t h;

        snprintf(base, sizeof(base), "%s-%u-%" PRIu64 ".%s", run->o->tag, w->tid,
                 w->name_n++, exts[rng_below(&w->rng, 5)]);
        h = XXH3_64bits(base, strlen(base));
        snprintf(nf.path, sizeof(nf.path), "%s/%02x/%02x/%s",
                 modules[rng_below(&w->rng, 3)], (unsigned)(h & 0x1f),
                 (unsigned)((h >> 8) & 0x0f), base);
    }
    key = path_key(nf.path);
    nf.ver++;
    nf.r.n = 0;
    recipe_push(&nf.r, nf.ver, pick_size(w));
    nf.size = recipe_size(&nf.r);
    nf.hash = recipe_hash(&w->gen, run->o->seed, key, &nf.r, nf.size);
    recipe_format(&nf.r, rstr, sizeof(rstr));
    if (rng_below(&w->rng, 2)) {
        const char *slash = strrchr(nf.path, '/');

        snprintf(tmp, sizeof(tmp), "%.*s/" TMP_PREFIX "%s-%u-%" PRIu64,
                 (int)(slash - nf.path), nf.path, run->o->tag, w->tid, w->tmp_n++);
    } else {
        snprintf(tmp, sizeof(tmp), "tmp/" TMP_PREFIX "%s-%u-%" PRIu64, run->o->tag,
                 w->tid, w->tmp_n++);
    }
    if (full_path(w, mi, nf.path, ffull) < 0 || full_path(w, mi, tmp, tfull) < 0)
        return -ENAMETOOLONG;

    new_opid(w, opid);
    atomic_fetch_add(&run->tried[k], 1);
    log_line(run, "B %s %s %s tmp=%s m=%u fsync=%d size=%" PRIu64 " h=%016" PRIx64 " r=%s",
             opid, op_names[k], nf.path, tmp, mi, do_fsync, nf.size, nf.hash, rstr);

    rc = mkdir_parents(ffull, strlen(run->o->mounts[mi]));
    if (rc == 0)
        rc = mkdir_parents(tfull, strlen(run->o->mounts[mi]));
    if (rc < 0) {
        fail_at(&out, "mkdir", -rc);
        goto done;
    }
    fd = open(tfull, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        fail_at(&out, "open", errno);
        goto done;
    }
    opened = true;
    write_fsync_close(w, fd, key, nf.ver, nf.size, do_fsync, 0, &out);
    if (out.stage)
        goto done;
    if (rename(tfull, ffull) < 0)
        fail_at(&out, "rename", errno);
done:
    finish(w, k, opid, nf.path, &out);
    if (out.stage && opened)
        unlink(tfull); /* best effort; a leftover temp is only information */
    if (!out.stage) {
        nf.uncertain = false;
        nf.may_be_absent = false;
        if (f) {
            *f = nf;
            return 0;
        }
        return files_add(w, &nf);
    }
    if (strcmp(out.stage, "rename") != 0) {
        if (f)
            f->ver = nf.ver; /* final name untouched; ver stays unique */
        return 0;
    }
    nf.uncertain = true; /* old or new (invariant 4) */
    if (!f)
        nf.may_be_absent = true; /* old was "no file" */
    if (f) {
        *f = nf;
        return 0;
    }
    return files_add(w, &nf);
}

/* rewrite in place (O_TRUNC) or append (O_APPEND) to a certain file. */
static int op_inplace(struct worker *w, struct wfile *f, bool append)
{
    struct run *run = w->run;
    enum op_kind k = append ? OP_APPEND : OP_REWRITE;
    struct wfile nf = *f;
    struct outcome out = {0};
    char opid[OPID_MAX], rstr[RECIPE_STR], full[PATH_MAX], add[32] = "";
    unsigned mi = pick_write_mount(w);
    bool do_fsync = rng_chance(&w->rng, run->o->fsync_ratio);
    uint64_t key = path_key(f->path), len;
    int fd;

    nf.ver++;
    if (append) {
        len = 1 + rng_below(&w->rng, 65536);
        if (recipe_push(&nf.r, nf.ver, len) < 0)
            return 0; /* caller checked room; nothing was done */
        snprintf(add, sizeof(add), " add=%" PRIu64, len);
    } else {
        len = pick_size(w);
        nf.r.n = 0;
        recipe_push(&nf.r, nf.ver, len);
    }
    nf.size = recipe_size(&nf.r);
    nf.hash = recipe_hash(&w->gen, run->o->seed, key, &nf.r, nf.size);
    recipe_format(&nf.r, rstr, sizeof(rstr));
    if (full_path(w, mi, f->path, full) < 0)
        return -ENAMETOOLONG;

    new_opid(w, opid);
    atomic_fetch_add(&run->tried[k], 1);
    log_line(run, "B %s %s %s m=%u fsync=%d%s size=%" PRIu64 " h=%016" PRIx64 " r=%s", opid,
             op_names[k], f->path, mi, do_fsync, add, nf.size, nf.hash, rstr);
    fd = open(full, O_WRONLY | O_CLOEXEC | (append ? O_APPEND : O_TRUNC));
    if (fd < 0)
        fail_at(&out, "open", errno);
    else
        write_fsync_close(w, fd, key, nf.ver, len, do_fsync, nf.size, &out);
    finish(w, k, opid, f->path, &out);
    if (out.stage && append && strcmp(out.stage, "open") == 0) {
        f->ver = nf.ver; /* open(O_APPEND) changed nothing: still certain */
        return 0;
    }
    /* Any other failure: a failed O_TRUNC open may or may not have
     * truncated, a failed write left some prefix (invariant 4). */
    nf.uncertain = out.stage != NULL;
    *f = nf;
    return 0;
}

static int op_truncate(struct worker *w, struct wfile *f)
{
    struct run *run = w->run;
    struct wfile nf = *f;
    struct outcome out = {0};
    char opid[OPID_MAX], rstr[RECIPE_STR], full[PATH_MAX];
    unsigned mi = pick_write_mount(w);
    uint64_t newlen;

    nf.ver++;
    if (rng_below(&w->rng, 10) < 7 || nf.r.n + 1 >= MAX_PIECES)
        newlen = rng_below(&w->rng, f->size + 1);
    else
        newlen = f->size + 1 + rng_below(&w->rng, 65536);
    if (recipe_resize(&nf.r, newlen) < 0)
        return 0;
    nf.size = recipe_size(&nf.r);
    nf.hash = recipe_hash(&w->gen, run->o->seed, path_key(f->path), &nf.r, nf.size);
    recipe_format(&nf.r, rstr, sizeof(rstr));
    if (full_path(w, mi, f->path, full) < 0)
        return -ENAMETOOLONG;

    new_opid(w, opid);
    atomic_fetch_add(&run->tried[OP_TRUNCATE], 1);
    log_line(run, "B %s truncate %s m=%u size=%" PRIu64 " h=%016" PRIx64 " r=%s", opid,
             f->path, mi, nf.size, nf.hash, rstr);
    if (truncate(full, (off_t)newlen) < 0)
        fail_at(&out, "truncate", errno);
    finish(w, OP_TRUNCATE, opid, f->path, &out);
    nf.uncertain = out.stage != NULL;
    *f = nf;
    return 0;
}

static int op_unlink(struct worker *w, struct wfile *f)
{
    struct run *run = w->run;
    struct outcome out = {0};
    char opid[OPID_MAX], full[PATH_MAX];
    unsigned mi = pick_write_mount(w);

    if (full_path(w, mi, f->path, full) < 0)
        return -ENAMETOOLONG;
    new_opid(w, opid);
    atomic_fetch_add(&run->tried[OP_UNLINK], 1);
    log_line(run, "B %s unlink %s m=%u r=-", opid, f->path, mi);
    if (unlink(full) < 0) {
        /* Gone already is fine only when an earlier failed op may have left
         * no file; otherwise ENOENT means an existing file vanished. */
        if (errno == ENOENT && f->may_be_absent)
            out.note = "enoent";
        else
            fail_at(&out, "unlink", errno);
    }
    finish(w, OP_UNLINK, opid, f->path, &out);
    if (out.stage) {
        f->uncertain = true;
        f->may_be_absent = true;
        return 0;
    }
    files_remove(w, f); /* names are never reused after a delete */
    return 0;
}

/* Try to be the one creator of a shared thumbnail name (invariant 6).
 * Returns 1 when this slot's names are used up (caller does something else). */
static int op_thumb(struct worker *w)
{
    struct run *run = w->run;
    struct outcome out = {0};
    struct recipe r = {0};
    char opid[OPID_MAX], rstr[RECIPE_STR], rel[REL_MAX], full[PATH_MAX];
    unsigned mi = home_mount(w);
    bool do_fsync = rng_chance(&w->rng, run->o->fsync_ratio);
    struct timespec ts;
    uint64_t slot, key, ver, size, hash;
    unsigned j;
    int fd, rc;

    clock_gettime(CLOCK_REALTIME, &ts);
    slot = ((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000) / THUMB_SLOT_MS;
    if (slot != w->thumb_slot) {
        w->thumb_slot = slot;
        w->thumb_next = 0;
    }
    if (w->thumb_next >= THUMBS_PER_SLOT)
        return 1;
    j = w->thumb_next++;
    snprintf(rel, sizeof(rel), "resize_cache/%s/%02x/%" PRIu64 "_%u.jpg", run->o->thumb_set,
             (unsigned)(slot % 64), slot, j);
    key = path_key(rel);
    /* The creator's identity is in ver: a loser's bytes differ from the winner's. */
    ver = (run->tag_hash & ~(uint64_t)0xffff) | ((w->tid + 1) & 0xffff);
    recipe_push(&r, ver, 2048 + rng_below(&w->rng, 38 * 1024));
    size = recipe_size(&r);
    hash = recipe_hash(&w->gen, run->o->seed, key, &r, size);
    recipe_format(&r, rstr, sizeof(rstr));
    if (full_path(w, mi, rel, full) < 0)
        return -ENAMETOOLONG;

    new_opid(w, opid);
    atomic_fetch_add(&run->tried[OP_THUMB], 1);
    log_line(run, "B %s thumb %s m=%u fsync=%d size=%" PRIu64 " h=%016" PRIx64 " r=%s", opid,
             rel, mi, do_fsync, size, hash, rstr);
    rc = mkdir_parents(full, strlen(run->o->mounts[mi]));
    if (rc < 0) {
        fail_at(&out, "mkdir", -rc);
        goto done;
    }
    fd = open(full, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0 && errno == EEXIST) {
        out.note = "lost";
        atomic_fetch_add(&run->thumbs_lost, 1);
        goto done;
    }
    if (fd < 0) {
        fail_at(&out, "open", errno);
        goto done;
    }
    write_fsync_close(w, fd, key, ver, size, do_fsync, size, &out);
    if (!out.stage) {
        out.note = "won";
        atomic_fetch_add(&run->thumbs_won, 1);
    }
done:
    finish(w, OP_THUMB, opid, rel, &out);
    return 0;
}

static int hash_fd(int fd, struct gen *g, uint64_t *size, uint64_t *hash);

/* Read one of our certain files back through another mount. */
static int op_read(struct worker *w, struct wfile *f)
{
    struct run *run = w->run;
    unsigned n = run->o->nmounts, mi = n > 1 ? (home_mount(w) + 1) % n : 0;
    char opid[OPID_MAX], full[PATH_MAX];
    uint64_t size = 0, hash = 0;
    const char *stage = "open";
    int fd, rc;

    if (full_path(w, mi, f->path, full) < 0)
        return -ENAMETOOLONG;
    new_opid(w, opid);
    atomic_fetch_add(&run->tried[OP_READ], 1);
    fd = open(full, O_RDONLY | O_CLOEXEC);
    rc = fd < 0 ? -errno : 0;
    if (fd >= 0) {
        stage = "read";
        rc = hash_fd(fd, &w->gen, &size, &hash);
        close(fd);
    }
    if (rc < 0) {
        log_line(run, "R %s %s m=%u error stage=%s err=%s", opid, f->path, mi, stage,
                 errname(-rc));
        atomic_fetch_add(&run->failed[OP_READ], 1);
        if (run->o->strict) {
            fprintf(stderr, "workload: --strict: read %s failed at %s: %s\n", f->path, stage,
                    strerror(-rc));
            atomic_store(&run->strict_tripped, true);
            atomic_store(&run->stop, true);
        }
        return 0;
    }
    if (size == f->size && hash == f->hash) {
        log_line(run, "R %s %s m=%u ok", opid, f->path, mi);
        atomic_fetch_add(&run->acked[OP_READ], 1);
        return 0;
    }
    log_line(run,
             "R %s %s m=%u mismatch size=%" PRIu64 " h=%016" PRIx64 " want_size=%" PRIu64
             " want_h=%016" PRIx64,
             opid, f->path, mi, size, hash, f->size, f->hash);
    fprintf(stderr, "workload: read of %s through mount %u saw size %" PRIu64
            ", acknowledged size %" PRIu64 " (hash %s)\n",
            f->path, mi, size, f->size, hash == f->hash ? "equal" : "differs");
    atomic_fetch_add(&run->reads_bad, 1);
    if (run->o->strict)
        atomic_store(&run->stop, true);
    return 0;
}

static enum op_kind pick_op(struct worker *w)
{
    unsigned r = (unsigned)rng_below(&w->rng, 100), acc = 0;

    for (int k = 0; k < OP__N; k++) {
        acc += op_weights[k];
        if (r < acc)
            return (enum op_kind)k;
    }
    return OP_UPLOAD;
}

/* One operation; ops that find no eligible file become uploads. */
static int worker_step(struct worker *w)
{
    enum op_kind k = pick_op(w);
    struct wfile *f = NULL;

    switch (k) {
    case OP_REPLACE:
    case OP_UNLINK:
        f = pick_file(w, false);
        break;
    case OP_REWRITE:
    case OP_APPEND:
    case OP_TRUNCATE:
        f = pick_file(w, true);
        break;
    case OP_READ:
        f = w->run->o->read_check ? pick_file(w, true) : NULL;
        break;
    case OP_THUMB: {
        int rc = op_thumb(w);

        if (rc <= 0)
            return rc;
        break;
    }
    default:
        break;
    }
    if (!f)
        return op_upload(w, NULL);
    switch (k) {
    case OP_REPLACE:
        return op_upload(w, f);
    case OP_REWRITE:
        return op_inplace(w, f, false);
    case OP_APPEND:
        return op_inplace(w, f, f->r.n + 1 < MAX_PIECES);
    case OP_TRUNCATE:
        return op_truncate(w, f);
    case OP_UNLINK:
        return op_unlink(w, f);
    case OP_READ:
        return op_read(w, f);
    default:
        return op_upload(w, NULL);
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct run *run = w->run;

    while (!atomic_load(&run->stop)) {
        if (run->o->ops && atomic_fetch_add(&run->tickets, 1) >= run->o->ops)
            break;
        w->rc = worker_step(w);
        if (w->rc < 0) {
            fprintf(stderr, "workload: thread %u: %s\n", w->tid, strerror(-w->rc));
            atomic_store(&run->stop, true);
            break;
        }
    }
    atomic_fetch_sub(&run->running, 1);
    return NULL;
}

static void on_signal(int sig)
{
    (void)sig;
    g_signalled = 1;
}

static void usage(void)
{
    fputs("usage: workload run --mount DIR [--mount DIR ...] --log FILE --threads N\n"
          "                    (--seconds S | --ops N) --seed X [--fsync-ratio F]\n"
          "                    [--strict] [--tag T] [--thumb-set NAME]\n"
          "                    [--max-size BYTES] [--no-read-check]\n"
          "       workload verify --log FILE [--log FILE ...] --mount DIR [--mount DIR ...]\n"
          "                       [--brick DIR ...]\n"
          "       workload gen --seed X --path P --recipe R [--bytes N] [--hash]\n"
          "The log format and the checks are described at the top of tools/workload.c\n"
          "and in docs/reliability.md.\n",
          stderr);
}

static int parse_double(const char *s, double *out)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || *end)
        return -EINVAL;
    *out = v;
    return 0;
}

static bool is_dir(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool tag_ok(const char *t)
{
    size_t n = strlen(t);

    if (n == 0 || n > 32)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(t[i] >= 'a' && t[i] <= 'z') && !(t[i] >= '0' && t[i] <= '9'))
            return false;
    return true;
}

/* 0, or -EINVAL after printing why. */
static int run_parse(int argc, char **argv, struct run_opts *o)
{
    bool have_seed = false;
    uint64_t u = 0;

    *o = (struct run_opts){.fsync_ratio = 0.3, .read_check = true, .thumb_set = "shared",
                           .max_size = 1024 * 1024, .threads = 4};
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool ok = true;

        if (strcmp(a, "--strict") == 0) {
            o->strict = true;
            continue;
        }
        if (strcmp(a, "--no-read-check") == 0) {
            o->read_check = false;
            continue;
        }
        if (!v) {
            fprintf(stderr, "workload: %s needs a value\n", a);
            return -EINVAL;
        }
        i++;
        if (strcmp(a, "--mount") == 0) {
            ok = o->nmounts < MAX_MOUNTS && is_dir(v);
            if (ok)
                o->mounts[o->nmounts++] = v;
        } else if (strcmp(a, "--log") == 0) {
            o->log_path = v;
        } else if (strcmp(a, "--threads") == 0) {
            ok = parse_u64(v, 10, &u) == 0 && u >= 1 && u <= MAX_THREADS;
            o->threads = (unsigned)u;
        } else if (strcmp(a, "--seconds") == 0) {
            ok = parse_double(v, &o->seconds) == 0 && o->seconds > 0;
        } else if (strcmp(a, "--ops") == 0) {
            ok = parse_u64(v, 10, &o->ops) == 0 && o->ops > 0;
        } else if (strcmp(a, "--seed") == 0) {
            ok = parse_u64(v, 0, &o->seed) == 0;
            have_seed = true;
        } else if (strcmp(a, "--fsync-ratio") == 0) {
            ok = parse_double(v, &o->fsync_ratio) == 0 && o->fsync_ratio >= 0 &&
                 o->fsync_ratio <= 1;
        } else if (strcmp(a, "--tag") == 0) {
            ok = tag_ok(v);
            if (ok)
                snprintf(o->tag, sizeof(o->tag), "%s", v);
        } else if (strcmp(a, "--thumb-set") == 0) {
            ok = tag_ok(v);
            o->thumb_set = v;
        } else if (strcmp(a, "--max-size") == 0) {
            ok = parse_u64(v, 0, &o->max_size) == 0 && o->max_size >= 1 &&
                 o->max_size <= (1ull << 32);
        } else {
            fprintf(stderr, "workload: unknown option %s\n", a);
            return -EINVAL;
        }
        if (!ok) {
            fprintf(stderr, "workload: bad value for %s: %s\n", a, v);
            return -EINVAL;
        }
    }
    if (o->nmounts == 0 || !o->log_path || !have_seed || (o->seconds > 0) == (o->ops > 0)) {
        fprintf(stderr, "workload run: --mount, --log, --seed and one of --seconds or "
                        "--ops are required\n");
        return -EINVAL;
    }
    if (!o->tag[0]) {
        uint32_t t;

        if (getrandom(&t, sizeof(t), 0) != sizeof(t))
            t = (uint32_t)getpid() ^ (uint32_t)time(NULL);
        snprintf(o->tag, sizeof(o->tag), "%08" PRIx32, t);
    }
    return 0;
}

static void run_summary(struct run *run, const char *status)
{
    uint64_t tried = 0, acked = 0, failed = 0;

    printf("workload run: tag %s, seed %" PRIu64 "\n", run->o->tag, run->o->seed);
    printf("  %-9s %10s %10s %10s\n", "op", "tried", "acked", "failed");
    for (int k = 0; k < OP__N; k++) {
        uint64_t t = atomic_load(&run->tried[k]), a = atomic_load(&run->acked[k]),
                 f = atomic_load(&run->failed[k]);

        printf("  %-9s %10" PRIu64 " %10" PRIu64 " %10" PRIu64 "\n", op_names[k], t, a, f);
        tried += t;
        acked += a;
        failed += f;
    }
    printf("  thumbs won %" PRIu64 ", lost (EEXIST) %" PRIu64 "; stale reads %" PRIu64 "\n",
           (uint64_t)atomic_load(&run->thumbs_won), (uint64_t)atomic_load(&run->thumbs_lost),
           (uint64_t)atomic_load(&run->reads_bad));
    printf("  total: %" PRIu64 " ops, %" PRIu64 " acknowledged, %" PRIu64 " failed; %s\n",
           tried, acked, failed, status);
    log_line(run,
             "E ops=%" PRIu64 " acked=%" PRIu64 " failed=%" PRIu64 " reads_bad=%" PRIu64
             " status=%s",
             tried, acked, failed, (uint64_t)atomic_load(&run->reads_bad), status);
}

static void worker_fini(struct worker *w)
{
    gen_fini(&w->gen);
    free(w->files);
    w->files = NULL;
}

/* Start the workers, watch the clock, sync the log, stop, report.
 * Exit status: 0 done (errors counted, not fatal), 1 --strict error or a
 * stale read, 2 setup failure. */
static int run_start(struct run *run, struct worker *ws)
{
    const struct run_opts *o = run->o;
    double start = now_mono(), last_sync = start;
    unsigned started = 0;
    struct sigaction sa = {.sa_handler = on_signal};

    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    atomic_store(&run->running, o->threads);
    for (; started < o->threads; started++) {
        int rc = pthread_create(&ws[started].thread, NULL, worker_main, &ws[started]);

        if (rc != 0) {
            fprintf(stderr, "workload: pthread_create: %s\n", strerror(rc));
            atomic_store(&run->stop, true);
            atomic_fetch_sub(&run->running, o->threads - started);
            break;
        }
    }
    while (atomic_load(&run->running) > 0) {
        struct timespec nap = {0, 50 * 1000 * 1000};
        double now;

        nanosleep(&nap, NULL);
        now = now_mono();
        if (g_signalled || (o->seconds > 0 && now - start >= o->seconds))
            atomic_store(&run->stop, true);
        if (now - last_sync >= 1.0) {
            fdatasync(run->log_fd); /* bounds what a crash of this host loses */
            last_sync = now;
        }
    }
    for (unsigned i = 0; i < started; i++)
        pthread_join(ws[i].thread, NULL);
    return started == o->threads ? 0 : -EAGAIN;
}

static int run_main(int argc, char **argv)
{
    struct run_opts o;
    struct run run = {0};
    struct worker *ws;
    const char *status;
    unsigned inited = 0;
    int rc, ret = 2;

    if (run_parse(argc, argv, &o) < 0) {
        usage();
        return 2;
    }
    run.o = &o;
    run.tag_hash = XXH3_64bits(o.tag, strlen(o.tag));
    run.log_fd = open(o.log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (run.log_fd < 0) {
        fprintf(stderr, "workload: %s: %s\n", o.log_path, strerror(errno));
        return 2;
    }
    ws = calloc(o.threads, sizeof(*ws));
    if (!ws) {
        fprintf(stderr, "workload: out of memory\n");
        goto err_close_log;
    }
    for (; inited < o.threads; inited++) {
        struct worker *w = &ws[inited];

        w->run = &run;
        w->tid = inited;
        w->rng.s = splitmix64(o.seed) ^ splitmix64(0x5eed0000ull + inited);
        w->thumb_slot = UINT64_MAX;
        if (gen_init(&w->gen) < 0) {
            fprintf(stderr, "workload: out of memory\n");
            goto err_fini_workers;
        }
    }
    log_line(&run, "# replicafs workload log, format 1: see tools/workload.c");
    for (unsigned i = 0; i < o.nmounts; i++)
        log_line(&run, "# mount %u = %.1900s", i, o.mounts[i]);
    log_line(&run,
             "H 1 seed=%" PRIu64 " tag=%s thumbset=%s threads=%u mounts=%u pid=%d time=%lld",
             o.seed, o.tag, o.thumb_set, o.threads, o.nmounts, (int)getpid(),
             (long long)time(NULL));

    rc = run_start(&run, ws);
    if (atomic_load(&run.log_broken) || rc < 0)
        status = "aborted";
    else if (atomic_load(&run.strict_tripped))
        status = "strict-error";
    else if (atomic_load(&run.reads_bad))
        status = "stale-read";
    else if (g_signalled)
        status = "interrupted";
    else
        status = "done";
    for (unsigned i = 0; i < o.threads; i++)
        if (ws[i].rc < 0)
            status = "aborted";
    run_summary(&run, status);
    if (fdatasync(run.log_fd) < 0)
        status = "aborted";
    if (strcmp(status, "aborted") == 0)
        ret = 2;
    else if (strcmp(status, "strict-error") == 0 || strcmp(status, "stale-read") == 0)
        ret = 1;
    else
        ret = 0;
err_fini_workers:
    for (unsigned i = 0; i < inited; i++)
        worker_fini(&ws[i]);
    free(ws);
err_close_log:
    close(run.log_fd);
    return ret;
}

/* ======================================================================== */
/* verify: trees                                                              */
/* ======================================================================== */

struct entry {
    char *path; /* owned; relative to the tree root */
    char type;  /* 'f' file, 'd' dir, 'l' symlink, 'o' other */
    int err;    /* positive errno if it could not be read */
    uint64_t size, hash;
};

struct tree {
    struct entry *v; /* owned; sorted by path after tree_load() */
    size_t n, cap;
};

/* xxh3 and size of everything readable from fd.  0 or -errno. */
static int hash_fd(int fd, struct gen *g, uint64_t *size, uint64_t *hash)
{
    uint64_t total = 0;

    XXH3_64bits_reset(g->xs);
    for (;;) {
        ssize_t n = read(fd, g->buf, GEN_CHUNK);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        XXH3_64bits_update(g->xs, g->buf, (size_t)n);
        total += (uint64_t)n;
    }
    *size = total;
    *hash = XXH3_64bits_digest(g->xs);
    return 0;
}

static int tree_add(struct tree *t, const char *path, char type, int err, uint64_t size,
                    uint64_t hash)
{
    char *p;

    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 1024;
        struct entry *v = realloc(t->v, cap * sizeof(*v));

        if (!v)
            return -ENOMEM;
        t->v = v;
        t->cap = cap;
    }
    p = strdup(path);
    if (!p)
        return -ENOMEM;
    t->v[t->n++] = (struct entry){.path = p, .type = type, .err = err, .size = size, .hash = hash};
    return 0;
}

static void tree_free(struct tree *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->v[i].path);
    free(t->v);
    *t = (struct tree){0};
}

static int add_nondir(int dfd, const char *name, const char *rel, const struct stat *st,
                      struct tree *t, struct gen *g)
{
    uint64_t size = 0, hash = 0;
    int fd, rc = 0;

    if (S_ISREG(st->st_mode)) {
        fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        rc = fd < 0 ? -errno : hash_fd(fd, g, &size, &hash);
        if (fd >= 0)
            close(fd);
        return tree_add(t, rel, 'f', -rc, size, hash);
    }
    if (S_ISLNK(st->st_mode)) {
        char target[PATH_MAX];
        ssize_t n = readlinkat(dfd, name, target, sizeof(target));

        if (n < 0)
            rc = -errno;
        else
            hash = XXH3_64bits(target, (size_t)n), size = (uint64_t)n;
        return tree_add(t, rel, 'l', -rc, size, hash);
    }
    return tree_add(t, rel, 'o', 0, 0, 0);
}

/* Walk the directory dfd (consumed) whose relative path is rel[0..rel_len);
 * self is its entry index (or -1 for the root).  Unreadable entries are
 * recorded with their errno; returns 0, or -errno when the root itself cannot
 * be read or memory runs out. */
static int walk_dir(int dfd, char *rel, size_t rel_len, ssize_t self, bool skip_meta,
                    struct tree *t, struct gen *g)
{
    DIR *d = fdopendir(dfd);
    struct dirent *de;
    int rc = 0;

    if (!d) {
        rc = -errno;
        close(dfd);
        goto record;
    }
    for (;;) {
        const char *name;
        struct stat st;
        size_t len;

        errno = 0;
        de = readdir(d);
        if (!de) {
            rc = -errno;
            break;
        }
        name = de->d_name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
            continue;
        /* The brick's own metadata is not part of the namespace. */
        if (skip_meta && rel_len == 0 && strcmp(name, ".replicafs") == 0)
            continue;
        len = strlen(name);
        if (rel_len + 1 + len >= PATH_MAX) {
            rc = -ENAMETOOLONG;
            break;
        }
        if (rel_len)
            rel[rel_len] = '/';
        memcpy(rel + rel_len + (rel_len ? 1 : 0), name, len + 1);
        if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            rc = tree_add(t, rel, '?', errno, 0, 0);
        } else if (S_ISDIR(st.st_mode)) {
            ssize_t idx = (ssize_t)t->n;
            int cfd;

            rc = tree_add(t, rel, 'd', 0, 0, 0);
            if (rc == 0) {
                cfd = openat(dirfd(d), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (cfd < 0)
                    t->v[idx].err = errno;
                else
                    rc = walk_dir(cfd, rel, rel_len + (rel_len ? 1 : 0) + len, idx, skip_meta,
                                  t, g);
            }
        } else {
            rc = add_nondir(dirfd(d), name, rel, &st, t, g);
        }
        rel[rel_len] = '\0';
        if (rc < 0)
            break;
    }
    closedir(d);
record:
    if (rc < 0 && rc != -ENOMEM && self >= 0) {
        t->v[self].err = -rc; /* reported as a difference, not fatal */
        rc = 0;
    }
    return rc;
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const struct entry *)a)->path, ((const struct entry *)b)->path);
}

/* Read the whole tree under root into t (sorted).  0 or -errno (t freed). */
static int tree_load(const char *root, bool skip_meta, struct tree *t, struct gen *g)
{
    char rel[PATH_MAX] = "";
    int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc;

    if (fd < 0)
        return -errno;
    rc = walk_dir(fd, rel, 0, -1, skip_meta, t, g);
    if (rc < 0) {
        tree_free(t);
        return rc;
    }
    if (t->n)
        qsort(t->v, t->n, sizeof(*t->v), entry_cmp);
    return 0;
}

static const struct entry *tree_find(const struct tree *t, const char *path)
{
    struct entry key = {.path = (char *)path};

    if (!t->n)
        return NULL;
    return bsearch(&key, t->v, t->n, sizeof(*t->v), entry_cmp);
}

/* ======================================================================== */
/* verify: replaying logs into candidate sets                                 */
/* ======================================================================== */

enum st_kind { ST_ABSENT = 0, ST_EXACT, ST_PREFIX };

/* One state a final path may be in. */
struct vstate {
    enum st_kind kind;
    uint64_t seed, key; /* for re-deriving bytes */
    struct recipe r;
    uint64_t size, hash; /* of the whole recipe */
    uint64_t minlen;     /* ST_PREFIX: shortest prefix allowed */
    char opid[OPID_MAX + 8]; /* "<log>:<opid>", for messages */
};

enum att_kind { ATT_NONE = 0, ATT_WON, ATT_WON_FAILED, ATT_LOST, ATT_UNCERTAIN };

/* One O_EXCL creation attempt of a thumbnail. */
struct attempt {
    enum att_kind kind;
    struct vstate st; /* the creator's bytes (EXACT), or what may be there */
};

struct vec {
    void *v; /* owned */
    size_t n, cap;
};

struct vpath {
    char *path; /* owned */
    bool thumb;
    bool has_owner;
    unsigned owner_log, owner_tid;
    uint64_t owner_session;
    struct vec cand; /* struct vstate: what the path may hold now */
    struct vec hist; /* struct vstate: every version ever begun (for PARTIAL) */
    struct vec att;  /* struct attempt (thumbs) */
    char deleted_by[OPID_MAX + 8]; /* acknowledged unlink, if that is the state */
    bool excl_problem;
};

/* Open addressing, keyed by path. */
struct pathmap {
    struct vpath **slot; /* owned array; entries owned */
    size_t cap, n;
};

struct pend {
    bool used;
    char opid[OPID_MAX];
    enum op_kind op;
    struct vpath *vp; /* borrowed from the map */
    struct vstate st; /* the state the op leaves when acknowledged */
    uint64_t add;     /* append: bytes added */
};

struct counts {
    uint64_t checked, ok, missing, wrong, resurrected, partial, unexpected, excl, stale,
        logconf, replicas, mounts, leftovers;
    uint64_t ok_uncertain; /* ok, but an uncertain state (info: the rules were used) */
};

struct vctx {
    struct pathmap map;
    struct gen gen;
    struct counts c;
    /* the session being read */
    unsigned log_idx;
    const char *log_name; /* borrowed */
    uint64_t session;     /* global counter of H lines */
    uint64_t seed;
    unsigned nthreads;
    struct pend *pend; /* owned; nthreads */
};

static int vec_push(struct vec *v, size_t elsize, const void *el)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 4;
        void *nv = realloc(v->v, cap * elsize);

        if (!nv)
            return -ENOMEM;
        v->v = nv;
        v->cap = cap;
    }
    memcpy((char *)v->v + v->n * elsize, el, elsize);
    v->n++;
    return 0;
}

static struct vpath *map_get(struct pathmap *m, const char *path, bool create, int *rc)
{
    size_t i;

    *rc = 0;
    if (create && m->n * 2 >= m->cap) { /* keep the load under one half */
        size_t cap = m->cap ? m->cap * 2 : 4096;
        struct vpath **ns = calloc(cap, sizeof(*ns));

        if (!ns) {
            *rc = -ENOMEM;
            return NULL;
        }
        for (size_t j = 0; j < m->cap; j++) {
            if (!m->slot[j])
                continue;
            i = path_key(m->slot[j]->path) & (cap - 1);
            while (ns[i])
                i = (i + 1) & (cap - 1);
            ns[i] = m->slot[j];
        }
        free(m->slot);
        m->slot = ns;
        m->cap = cap;
    }
    if (!m->cap)
        return NULL;
    for (i = path_key(path) & (m->cap - 1); m->slot[i]; i = (i + 1) & (m->cap - 1))
        if (strcmp(m->slot[i]->path, path) == 0)
            return m->slot[i];
    if (!create)
        return NULL;
    struct vpath *vp = calloc(1, sizeof(*vp));
    struct vstate absent = {.kind = ST_ABSENT};

    if (!vp || !(vp->path = strdup(path)) ||
        vec_push(&vp->cand, sizeof(struct vstate), &absent) < 0) {
        if (vp)
            free(vp->path);
        free(vp);
        *rc = -ENOMEM;
        return NULL;
    }
    m->slot[i] = vp;
    m->n++;
    return vp;
}

static void vpath_free(struct vpath *vp)
{
    free(vp->path);
    free(vp->cand.v);
    free(vp->hist.v);
    free(vp->att.v);
    free(vp);
}

static bool state_eq(const struct vstate *a, const struct vstate *b)
{
    return a->kind == b->kind &&
           (a->kind == ST_ABSENT ||
            (a->size == b->size && a->hash == b->hash && a->minlen == b->minlen));
}

static int cand_add(struct vpath *vp, const struct vstate *s)
{
    const struct vstate *c = vp->cand.v;

    for (size_t i = 0; i < vp->cand.n; i++)
        if (state_eq(&c[i], s))
            return 0;
    return vec_push(&vp->cand, sizeof(*s), s);
}

static int cand_set(struct vpath *vp, const struct vstate *s)
{
    vp->cand.n = 0;
    return vec_push(&vp->cand, sizeof(*s), s);
}

/* Remember a version for PARTIAL; only the last HIST_MAX, to bound memory
 * on long soaks (a file cut to a prefix of an older version is WRONG). */
#define HIST_MAX 16
static int hist_add(struct vpath *vp, const struct vstate *s)
{
    struct vstate *h = vp->hist.v;

    if (vp->hist.n == HIST_MAX) {
        memmove(h, h + 1, (HIST_MAX - 1) * sizeof(*h));
        vp->hist.n--;
    }
    return vec_push(&vp->hist, sizeof(*s), s);
}

static struct vstate prefix_of(const struct vstate *s, uint64_t minlen)
{
    struct vstate p = *s;

    p.kind = ST_PREFIX;
    p.minlen = minlen < s->size ? minlen : s->size;
    return p;
}

static struct vstate empty_of(const struct vstate *s)
{
    struct vstate e = *s;

    e.kind = ST_EXACT;
    e.r.n = 0;
    e.size = 0;
    e.hash = XXH3_64bits("", 0);
    return e;
}

struct result {
    bool known; /* false: no outcome line (process died mid-op) */
    bool ack;
    const char *note;  /* A: won/lost/enoent, borrowed from the line */
    const char *stage; /* F: borrowed from the line */
    uint64_t acked;
};

static bool stage_is(const struct result *res, const char *s)
{
    return res->known && !res->ack && strcmp(res->stage, s) == 0;
}

/* Apply one finished (or never finished) operation to its path
 * (invariants 3 and 4).  0 or -ENOMEM. */
static int apply_plain(struct pend *p, const struct result *res)
{
    struct vpath *vp = p->vp;

    if (res->ack) {
        if (p->op == OP_UNLINK)
            snprintf(vp->deleted_by, sizeof(vp->deleted_by), "%s", p->st.opid);
        else
            vp->deleted_by[0] = '\0';
        return cand_set(vp, &p->st);
    }
    switch (p->op) {
    case OP_UPLOAD:
    case OP_REPLACE:
        if (res->known && !stage_is(res, "rename"))
            return 0; /* failed before the rename: final name untouched */
        return cand_add(vp, &p->st);
    case OP_REWRITE: {
        struct vstate s;

        if (stage_is(res, "open")) { /* O_TRUNC may have happened, nothing more */
            s = empty_of(&p->st);
            return cand_add(vp, &s);
        }
        if (!res->known) {
            s = prefix_of(&p->st, 0);
            return cand_add(vp, &s);
        }
        s = prefix_of(&p->st, res->acked); /* the O_TRUNC open was acknowledged */
        return cand_set(vp, &s);
    }
    case OP_APPEND: {
        uint64_t old = p->st.size - p->add;
        struct vstate s;

        if (stage_is(res, "open"))
            return 0;
        if (!res->known) {
            s = prefix_of(&p->st, old);
            return cand_add(vp, &s);
        }
        s = prefix_of(&p->st, res->acked > old ? res->acked : old);
        return cand_set(vp, &s);
    }
    case OP_TRUNCATE:
    case OP_UNLINK:
        return cand_add(vp, &p->st);
    default:
        return 0;
    }
}

static int apply_thumb(struct pend *p, const struct result *res)
{
    struct attempt a = {.st = p->st};

    if (res->ack && res->note && strcmp(res->note, "lost") == 0) {
        a.kind = ATT_LOST;
    } else if (res->ack) {
        a.kind = ATT_WON;
    } else if (!res->known) {
        a.kind = ATT_UNCERTAIN;
        a.st = prefix_of(&p->st, 0);
    } else if (stage_is(res, "mkdir")) {
        a.kind = ATT_NONE;
    } else if (stage_is(res, "open")) {
        a.kind = ATT_UNCERTAIN; /* may have created it, empty */
        a.st = empty_of(&p->st);
    } else {
        a.kind = ATT_WON_FAILED; /* created: O_EXCL open succeeded */
        a.st = prefix_of(&p->st, res->acked);
    }
    return vec_push(&p->vp->att, sizeof(a), &a);
}

static int apply(struct pend *p, const struct result *res)
{
    int rc = p->op == OP_THUMB ? apply_thumb(p, res) : apply_plain(p, res);

    p->used = false;
    return rc;
}

/* Operations of the session that never got an outcome line. */
static int flush_session(struct vctx *vc)
{
    struct result unknown = {.known = false};
    int rc = 0;

    for (unsigned i = 0; i < vc->nthreads && rc == 0; i++)
        if (vc->pend[i].used)
            rc = apply(&vc->pend[i], &unknown);
    free(vc->pend);
    vc->pend = NULL;
    vc->nthreads = 0;
    return rc;
}

/* Split a line into at most max space-separated tokens.  Returns the count. */
static int tokenize(char *line, char **tok, int max)
{
    int n = 0;
    char *save = NULL;

    for (char *t = strtok_r(line, " ", &save); t && n < max; t = strtok_r(NULL, " ", &save))
        tok[n++] = t;
    return n;
}

static const char *kv(char **tok, int n, const char *key)
{
    size_t len = strlen(key);

    for (int i = 0; i < n; i++)
        if (strncmp(tok[i], key, len) == 0 && tok[i][len] == '=')
            return tok[i] + len + 1;
    return NULL;
}

static int opid_tid(struct vctx *vc, const char *opid, unsigned *tid)
{
    uint64_t t;
    char buf[OPID_MAX];
    char *dot;

    if (strlen(opid) >= sizeof(buf))
        return -EINVAL;
    strcpy(buf, opid);
    dot = strchr(buf, '.');
    if (!dot)
        return -EINVAL;
    *dot = '\0';
    if (parse_u64(buf, 10, &t) < 0 || t >= vc->nthreads)
        return -EINVAL;
    *tid = (unsigned)t;
    return 0;
}

static int line_header(struct vctx *vc, char **tok, int n)
{
    const char *seed = kv(tok, n, "seed"), *thr = kv(tok, n, "threads");
    uint64_t s, t;
    int rc = flush_session(vc);

    if (rc < 0)
        return rc;
    if (n < 2 || strcmp(tok[1], "1") != 0 || !seed || !thr || parse_u64(seed, 10, &s) < 0 ||
        parse_u64(thr, 10, &t) < 0 || t == 0 || t > MAX_THREADS)
        return -EINVAL;
    vc->pend = calloc(t, sizeof(*vc->pend));
    if (!vc->pend)
        return -ENOMEM;
    vc->nthreads = (unsigned)t;
    vc->seed = s;
    vc->session++;
    return 0;
}

static int op_from_name(const char *name)
{
    for (int k = 0; k < OP__N; k++)
        if (strcmp(op_names[k], name) == 0)
            return k;
    return -1;
}

/* "One writer per final name" (invariant 1), checked across logs. */
static void check_owner(struct vctx *vc, struct vpath *vp, unsigned tid, const char *opid)
{
    if (!vp->has_owner) {
        vp->has_owner = true;
        vp->owner_log = vc->log_idx;
        vp->owner_session = vc->session;
        vp->owner_tid = tid;
        return;
    }
    if (vp->owner_log == vc->log_idx && vp->owner_session == vc->session &&
        vp->owner_tid == tid)
        return;
    printf("LOG %s: written by two writers (op %s in %s is not its owner's); "
           "was a --tag reused?\n",
           vp->path, opid, vc->log_name);
    vc->c.logconf++;
    vp->owner_log = vc->log_idx, vp->owner_session = vc->session, vp->owner_tid = tid;
}

static int line_begin(struct vctx *vc, char **tok, int n)
{
    const char *r = kv(tok, n, "r"), *size = kv(tok, n, "size"), *h = kv(tok, n, "h");
    const char *add = kv(tok, n, "add");
    struct pend *p;
    unsigned tid;
    int op, rc;

    if (!vc->pend || n < 5 || !r || opid_tid(vc, tok[1], &tid) < 0)
        return -EINVAL;
    op = op_from_name(tok[2]);
    if (op < 0 || op == OP_READ)
        return -EINVAL;
    p = &vc->pend[tid];
    if (p->used)
        return -EINVAL; /* a thread's previous op has no outcome yet */
    *p = (struct pend){.used = true, .op = (enum op_kind)op};
    snprintf(p->opid, sizeof(p->opid), "%s", tok[1]);
    p->st.seed = vc->seed;
    p->st.key = path_key(tok[3]);
    snprintf(p->st.opid, sizeof(p->st.opid), "%u:%s", vc->log_idx + 1, tok[1]);
    if (strcmp(r, "-") == 0) {
        p->st.kind = ST_ABSENT;
    } else {
        p->st.kind = ST_EXACT;
        if (recipe_parse(r, &p->st.r) < 0 || !size || !h || parse_u64(size, 10, &p->st.size) < 0 ||
            parse_u64(h, 16, &p->st.hash) < 0 || recipe_size(&p->st.r) != p->st.size)
            return -EINVAL;
    }
    if (op == OP_APPEND && (!add || parse_u64(add, 10, &p->add) < 0 || p->add > p->st.size))
        return -EINVAL;
    p->vp = map_get(&vc->map, tok[3], true, &rc);
    if (!p->vp)
        return rc;
    if (op == OP_THUMB) {
        p->vp->thumb = true;
    } else {
        if (p->vp->thumb) {
            printf("LOG %s: a thumbnail name changed by op %s\n", tok[3], tok[1]);
            vc->c.logconf++;
        }
        check_owner(vc, p->vp, tid, tok[1]);
    }
    if (p->st.kind != ST_ABSENT)
        return hist_add(p->vp, &p->st);
    return 0;
}

static int line_outcome(struct vctx *vc, char **tok, int n)
{
    struct result res = {.known = true, .ack = tok[0][0] == 'A'};
    struct pend *p;
    unsigned tid;

    if (!vc->pend || n < 2 || opid_tid(vc, tok[1], &tid) < 0)
        return -EINVAL;
    p = &vc->pend[tid];
    if (!p->used || strcmp(p->opid, tok[1]) != 0)
        return -EINVAL;
    if (res.ack) {
        res.note = n > 2 ? tok[2] : NULL;
    } else {
        const char *stage = kv(tok, n, "stage"), *acked = kv(tok, n, "acked");

        if (!stage || !acked || parse_u64(acked, 10, &res.acked) < 0)
            return -EINVAL;
        res.stage = stage;
    }
    return apply(p, &res);
}

static const char *kv_or(char **tok, int n, const char *key)
{
    const char *v = kv(tok, n, key);

    return v ? v : "?";
}

static void line_read(struct vctx *vc, char **tok, int n)
{
    if (n >= 5 && strcmp(tok[4], "mismatch") == 0) {
        printf("STALE-READ %s: op %s of %s read size=%s h=%s through mount %s, "
               "acknowledged size=%s h=%s\n",
               tok[2], tok[1], vc->log_name, kv_or(tok, n, "size"), kv_or(tok, n, "h"),
               kv_or(tok, n, "m"), kv_or(tok, n, "want_size"), kv_or(tok, n, "want_h"));
        vc->c.stale++;
    }
}

/* One record of the log.  0, -EINVAL (malformed or out of order), -ENOMEM. */
static int replay_line(struct vctx *vc, char **tok, int n)
{
    switch (tok[0][0]) {
    case 'H':
        return line_header(vc, tok, n);
    case 'B':
        return line_begin(vc, tok, n);
    case 'A':
    case 'F':
        return line_outcome(vc, tok, n);
    case 'R':
        line_read(vc, tok, n);
        return 0;
    case 'E':
        return 0;
    default:
        return -EINVAL;
    }
}

/* Replay one log file into vc.  0, or -errno after printing why. */
static int log_load(struct vctx *vc, unsigned idx, const char *path)
{
    FILE *f = fopen(path, "re");
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    unsigned long lineno = 0;
    int rc = 0;

    if (!f) {
        fprintf(stderr, "workload verify: %s: %s\n", path, strerror(errno));
        return -errno;
    }
    vc->log_idx = idx;
    vc->log_name = path;
    while (rc == 0 && (len = getline(&line, &cap, f)) > 0) {
        char *tok[16];
        int n;

        lineno++;
        if (line[len - 1] != '\n')
            break; /* torn last line: the process died while writing it */
        line[len - 1] = '\0';
        if (line[0] == '#' || line[0] == '\0')
            continue;
        n = tokenize(line, tok, 16);
        rc = n > 0 && tok[0][1] == '\0' ? replay_line(vc, tok, n) : -EINVAL;
        if (rc == -EINVAL)
            fprintf(stderr, "workload verify: %s:%lu: malformed or out-of-order line\n", path,
                    lineno);
    }
    if (rc == 0)
        rc = flush_session(vc);
    else
        flush_session(vc);
    free(line);
    fclose(f);
    return rc;
}

/* ======================================================================== */
/* verify: judging                                                            */
/* ======================================================================== */

static bool is_file(const struct entry *e)
{
    return e && e->type == 'f' && !e->err;
}

static bool state_matches(struct gen *g, const struct vstate *s, const struct entry *e)
{
    switch (s->kind) {
    case ST_ABSENT:
        return !e;
    case ST_EXACT:
        return is_file(e) && e->size == s->size && e->hash == s->hash;
    case ST_PREFIX:
        if (!is_file(e) || e->size < s->minlen || e->size > s->size)
            return false;
        if (e->size == s->size)
            return e->hash == s->hash;
        return recipe_hash(g, s->seed, s->key, &s->r, e->size) == e->hash;
    }
    return false;
}

/* A strict prefix of some version this path ever had? */
static const struct vstate *partial_of(struct gen *g, const struct vpath *vp,
                                       const struct entry *e)
{
    const struct vstate *h = vp->hist.v;

    for (size_t i = 0; i < vp->hist.n; i++)
        if (e->size < h[i].size &&
            recipe_hash(g, h[i].seed, h[i].key, &h[i].r, e->size) == e->hash)
            return &h[i];
    return NULL;
}

static void describe(const struct vpath *vp, char *out, size_t cap)
{
    const struct vstate *c = vp->cand.v;
    size_t used = 0;

    out[0] = '\0';
    for (size_t i = 0; i < vp->cand.n && used < cap; i++) {
        const struct vstate *s = &c[i];
        const char *sep = i ? " | " : "";
        int n;

        if (s->kind == ST_ABSENT)
            n = snprintf(out + used, cap - used, "%sabsent", sep);
        else if (s->kind == ST_EXACT)
            n = snprintf(out + used, cap - used, "%ssize=%" PRIu64 " h=%016" PRIx64 " (op %s)",
                         sep, s->size, s->hash, s->opid);
        else
            n = snprintf(out + used, cap - used,
                         "%sprefix of >=%" PRIu64 " bytes of size=%" PRIu64 " (op %s)", sep,
                         s->minlen, s->size, s->opid);
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

/* Candidates of a thumbnail from its creation attempts (invariant 6). */
static int thumb_resolve(struct vpath *vp)
{
    const struct attempt *a = vp->att.v;
    size_t won = 0, lost = 0, unsure = 0;
    struct vstate absent = {.kind = ST_ABSENT};
    char who[256] = "";
    int rc = 0;

    for (size_t i = 0; i < vp->att.n; i++) {
        won += a[i].kind == ATT_WON || a[i].kind == ATT_WON_FAILED;
        lost += a[i].kind == ATT_LOST;
        unsure += a[i].kind == ATT_UNCERTAIN;
        if (a[i].kind != ATT_NONE)
            rc = hist_add(vp, &a[i].st);
        if (rc < 0)
            return rc;
    }
    vp->cand.n = 0;
    for (size_t i = 0; i < vp->att.n && rc == 0; i++) {
        bool w = a[i].kind == ATT_WON || a[i].kind == ATT_WON_FAILED;

        if (w || (won == 0 && a[i].kind == ATT_UNCERTAIN))
            rc = cand_add(vp, &a[i].st);
        if (w && strlen(who) + strlen(a[i].st.opid) + 2 < sizeof(who))
            strcat(strcat(who, " "), a[i].st.opid);
    }
    if (rc == 0 && won == 0 && lost == 0)
        rc = cand_add(vp, &absent);
    if (won > 1) {
        printf("EXCL %s: O_EXCL create succeeded for %zu creators (ops%s)\n", vp->path, won,
               who);
        vp->excl_problem = true;
    } else if (won == 0 && lost > 0 && unsure == 0) {
        printf("EXCL %s: %zu creators got EEXIST but none created it\n", vp->path, lost);
        vp->excl_problem = true;
    }
    return rc;
}

static void judge(struct vctx *vc, struct vpath *vp, const struct tree *mt)
{
    const struct entry *e = tree_find(mt, vp->path);
    const struct vstate *c = vp->cand.v, *pv;
    char want[1024];
    bool all_absent = true;

    vc->c.checked++;
    if (vp->excl_problem) {
        vc->c.excl++;
        return;
    }
    for (size_t i = 0; i < vp->cand.n; i++) {
        if (state_matches(&vc->gen, &c[i], e)) {
            vc->c.ok++;
            vc->c.ok_uncertain += vp->cand.n > 1 || c[i].kind == ST_PREFIX;
            return;
        }
        all_absent &= c[i].kind == ST_ABSENT;
    }
    describe(vp, want, sizeof(want));
    if (!e) {
        printf("MISSING %s: absent, expected %s\n", vp->path, want);
        vc->c.missing++;
    } else if (!is_file(e)) {
        printf("WRONG %s: %s%s, expected %s\n", vp->path,
               e->type == 'f' ? "unreadable: " : "not a regular file",
               e->type == 'f' ? errname(e->err) : "", want);
        vc->c.wrong++;
    } else if (all_absent && vp->deleted_by[0]) {
        printf("RESURRECTED %s: deleted by acknowledged op %s, but present (size=%" PRIu64
               ")\n",
               vp->path, vp->deleted_by, e->size);
        vc->c.resurrected++;
    } else if ((pv = partial_of(&vc->gen, vp, e))) {
        printf("PARTIAL %s: size=%" PRIu64 " is a prefix of the size=%" PRIu64
               " version of op %s; expected %s\n",
               vp->path, e->size, pv->size, pv->opid, want);
        vc->c.partial++;
    } else {
        printf("WRONG %s: size=%" PRIu64 " h=%016" PRIx64 ", expected %s\n", vp->path, e->size,
               e->hash, want);
        vc->c.wrong++;
    }
}

static int vpath_cmp(const void *a, const void *b)
{
    return strcmp((*(struct vpath *const *)a)->path, (*(struct vpath *const *)b)->path);
}

/* Files on the mount that no log explains. */
static void judge_unlogged(struct vctx *vc, const struct tree *mt)
{
    unsigned shown = 0;
    int rc;

    for (size_t i = 0; i < mt->n; i++) {
        const struct entry *e = &mt->v[i];

        if (e->type == 'd' || map_get(&vc->map, e->path, false, &rc))
            continue;
        if (is_temp_name(e->path)) {
            if (shown++ < 20)
                printf("INFO leftover temp file %s (size=%" PRIu64 ")\n", e->path, e->size);
            vc->c.leftovers++;
            continue;
        }
        printf("UNEXPECTED %s: %s no logged operation wrote\n", e->path,
               e->type == 'f' ? "a file" : "an entry");
        vc->c.unexpected++;
    }
    if (shown > 20)
        printf("INFO ... and %u more leftover temp files\n", shown - 20);
}

static const char *entry_desc(const struct entry *e, char *buf, size_t cap)
{
    if (e->err)
        snprintf(buf, cap, "%c unreadable (%s)", e->type, errname(e->err));
    else if (e->type == 'f' || e->type == 'l')
        snprintf(buf, cap, "%c size=%" PRIu64 " h=%016" PRIx64, e->type, e->size, e->hash);
    else
        snprintf(buf, cap, "%c", e->type);
    return buf;
}

static bool entry_same(const struct entry *a, const struct entry *b)
{
    if (a->type != b->type || a->err || b->err)
        return false;
    if (a->type == 'f' || a->type == 'l')
        return a->size == b->size && a->hash == b->hash;
    return true;
}

/* Compare another tree (a brick's, or another mount's) with the reference
 * mount's tree mt by merge, printing "<word> <dir> <path>: ..." for each
 * difference.  seen (one flag per mt entry) makes *count count paths, not
 * (tree, path) pairs; names only the other tree has count once per tree. */
static void compare_tree(const char *word, const char *dir, const char *what,
                         const struct tree *mt, const struct tree *ot, bool *seen,
                         uint64_t *count)
{
    size_t i = 0, j = 0;
    char d1[96], d2[96];

    while (i < mt->n || j < ot->n) {
        int c = i == mt->n ? 1 : j == ot->n ? -1 : strcmp(mt->v[i].path, ot->v[j].path);

        if (c > 0) {
            printf("%s %s %s: on the %s (%s) but not through the mount\n", word, dir,
                   ot->v[j].path, what, entry_desc(&ot->v[j], d2, sizeof(d2)));
            ++*count;
            j++;
            continue;
        }
        bool differs = c < 0 || !entry_same(&mt->v[i], &ot->v[j]);

        if (c < 0)
            printf("%s %s %s: missing on the %s (mount has %s)\n", word, dir, mt->v[i].path,
                   what, entry_desc(&mt->v[i], d1, sizeof(d1)));
        else if (differs)
            printf("%s %s %s: %s has %s, mount has %s\n", word, dir, mt->v[i].path, what,
                   entry_desc(&ot->v[j], d2, sizeof(d2)), entry_desc(&mt->v[i], d1, sizeof(d1)));
        if (differs && !seen[i]) {
            seen[i] = true;
            ++*count;
        }
        i++;
        if (c == 0)
            j++;
    }
}

static void map_free(struct pathmap *m)
{
    for (size_t i = 0; i < m->cap; i++)
        if (m->slot[i])
            vpath_free(m->slot[i]);
    free(m->slot);
    *m = (struct pathmap){0};
}

struct verify_args {
    const char *logs[MAX_LOGS]; /* all borrowed from argv */
    const char *mounts[MAX_MOUNTS];
    const char *bricks[MAX_BRICKS];
    unsigned nlogs, nmounts, nbricks;
};

static int verify_parse(int argc, char **argv, struct verify_args *va)
{
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

        if (!v) {
            fprintf(stderr, "workload: %s needs a value\n", a);
            return -EINVAL;
        }
        i++;
        if (strcmp(a, "--log") == 0 && va->nlogs < MAX_LOGS) {
            va->logs[va->nlogs++] = v;
        } else if (strcmp(a, "--mount") == 0 && va->nmounts < MAX_MOUNTS) {
            va->mounts[va->nmounts++] = v;
        } else if (strcmp(a, "--brick") == 0 && va->nbricks < MAX_BRICKS) {
            va->bricks[va->nbricks++] = v;
        } else {
            fprintf(stderr, "workload verify: unexpected %s %s\n", a, v);
            return -EINVAL;
        }
    }
    if (!va->nlogs || !va->nmounts) {
        fprintf(stderr, "workload verify: --log and --mount are required\n");
        return -EINVAL;
    }
    return 0;
}

/* Compare every further mount (word MOUNT) and every brick (word REPLICA,
 * skipping .replicafs/) with the first mount's tree.  0 or -errno. */
static int compare_all(struct vctx *vc, const struct verify_args *va, const struct tree *mt)
{
    bool *seen_b = calloc(mt->n + 1, sizeof(bool)), *seen_m = calloc(mt->n + 1, sizeof(bool));
    int rc = seen_b && seen_m ? 0 : -ENOMEM;

    for (unsigned i = 1; i < va->nmounts + va->nbricks && rc == 0; i++) {
        bool brick = i >= va->nmounts;
        const char *dir = brick ? va->bricks[i - va->nmounts] : va->mounts[i];
        struct tree ot = {0};

        rc = tree_load(dir, brick, &ot, &vc->gen);
        if (rc < 0) {
            fprintf(stderr, "workload verify: reading %s: %s\n", dir, strerror(-rc));
            break;
        }
        if (brick)
            compare_tree("REPLICA", dir, "brick", mt, &ot, seen_b, &vc->c.replicas);
        else
            compare_tree("MOUNT", dir, "other mount", mt, &ot, seen_m, &vc->c.mounts);
        tree_free(&ot);
    }
    free(seen_b);
    free(seen_m);
    return rc;
}

/* The judging part of verify: 0, or -errno on a fatal read error. */
static int verify_trees(struct vctx *vc, const struct verify_args *va)
{
    struct tree mt = {0};
    struct vpath **all = NULL;
    size_t n = 0;
    int rc;

    rc = tree_load(va->mounts[0], false, &mt, &vc->gen);
    if (rc < 0) {
        fprintf(stderr, "workload verify: reading %s: %s\n", va->mounts[0], strerror(-rc));
        return rc;
    }
    all = malloc((vc->map.n ? vc->map.n : 1) * sizeof(*all));
    if (!all) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < vc->map.cap; i++)
        if (vc->map.slot[i])
            all[n++] = vc->map.slot[i];
    if (n)
        qsort(all, n, sizeof(*all), vpath_cmp);
    for (size_t i = 0; i < n && rc == 0; i++)
        if (all[i]->thumb)
            rc = thumb_resolve(all[i]);
    if (rc < 0)
        goto out;
    for (size_t i = 0; i < n; i++)
        judge(vc, all[i], &mt);
    judge_unlogged(vc, &mt);
    rc = compare_all(vc, va, &mt);
out:
    free(all);
    tree_free(&mt);
    return rc;
}

static int verify_main(int argc, char **argv)
{
    struct verify_args va = {0};
    struct vctx vc = {0};
    struct counts *c = &vc.c;
    uint64_t problems;
    int rc = 0;

    if (verify_parse(argc, argv, &va) < 0) {
        usage();
        return 2;
    }
    if (gen_init(&vc.gen) < 0) {
        fprintf(stderr, "workload verify: out of memory\n");
        return 2;
    }
    for (unsigned i = 0; i < va.nlogs && rc == 0; i++)
        rc = log_load(&vc, i, va.logs[i]);
    if (rc == 0)
        rc = verify_trees(&vc, &va);
    map_free(&vc.map);
    gen_fini(&vc.gen);
    if (rc < 0) {
        if (rc == -ENOMEM)
            fprintf(stderr, "workload verify: out of memory\n");
        return 2;
    }
    problems = c->missing + c->wrong + c->resurrected + c->partial + c->unexpected + c->excl +
               c->stale + c->logconf + c->replicas + c->mounts;
    printf("verify: files checked %" PRIu64 ", ok %" PRIu64 " (%" PRIu64
           " in an uncertain state), missing %" PRIu64 ", wrong %" PRIu64
           ", resurrected %" PRIu64 ", partial %" PRIu64 ", unexpected %" PRIu64
           ", excl %" PRIu64 ", stale reads %" PRIu64 ", log conflicts %" PRIu64
           ", replicas differing %" PRIu64 ", mounts differing %" PRIu64
           "; temp leftovers %" PRIu64 " (info); mounts %u, bricks %u\n",
           c->checked, c->ok, c->ok_uncertain, c->missing, c->wrong, c->resurrected, c->partial,
           c->unexpected, c->excl, c->stale, c->logconf, c->replicas, c->mounts, c->leftovers,
           va.nmounts, va.nbricks);
    printf("verify: %s\n", problems ? "FAILED" : "OK");
    return problems ? 1 : 0;
}

/* workload gen: write the first N bytes of a recipe's content to stdout, or
 * with --hash print "size=N h=HEX" as a B line would. */
static int gen_main(int argc, char **argv)
{
    const char *path = NULL, *rs = NULL;
    uint64_t seed = 0, bytes = UINT64_MAX, size, key;
    bool have_seed = false, hash_only = false;
    struct recipe r;
    struct gen g;
    int rc = 0;

    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

        if (strcmp(a, "--hash") == 0) {
            hash_only = true;
            continue;
        }
        if (!v)
            goto usage;
        i++;
        if (strcmp(a, "--seed") == 0 && parse_u64(v, 0, &seed) == 0)
            have_seed = true;
        else if (strcmp(a, "--path") == 0)
            path = v;
        else if (strcmp(a, "--recipe") == 0)
            rs = v;
        else if (strcmp(a, "--bytes") != 0 || parse_u64(v, 10, &bytes) < 0)
            goto usage;
    }
    if (!have_seed || !path || !rs || recipe_parse(rs, &r) < 0)
        goto usage;
    size = recipe_size(&r);
    if (bytes > size)
        bytes = size;
    key = path_key(path);
    if (gen_init(&g) < 0) {
        fprintf(stderr, "workload gen: out of memory\n");
        return 2;
    }
    if (hash_only) {
        printf("size=%" PRIu64 " h=%016" PRIx64 "\n", bytes, recipe_hash(&g, seed, key, &r, bytes));
        goto out;
    }
    for (uint64_t off = 0; off < bytes && rc == 0;) {
        size_t n = bytes - off < GEN_CHUNK ? (size_t)(bytes - off) : GEN_CHUNK;

        recipe_fill(seed, key, &r, off, g.buf, n);
        rc = write_all(STDOUT_FILENO, g.buf, n);
        off += n;
    }
    if (rc < 0)
        fprintf(stderr, "workload gen: %s\n", strerror(-rc));
out:
    gen_fini(&g);
    return rc < 0 ? 1 : 0;
usage:
    usage();
    return 2;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 2 && strcmp(argv[1], "run") == 0)
        return run_main(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "verify") == 0)
        return verify_main(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "gen") == 0)
        return gen_main(argc, argv);
    usage();
    return 2;
}
