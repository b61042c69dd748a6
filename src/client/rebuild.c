/*
 * Rebuild of a replaced brick (rebuild.h; prose in docs/heal.md, "Rebuild").
 *
 * Design.  A fresh brick k holds only its root.  Rebuild adds pending[k]+1
 * to the root on every other up brick -- "k missed changes of /" -- and
 * then lets the heal engine do what it does for any blamed brick: the
 * entry heal of the root makes every name of / on k with the same id,
 * marked pending[k] on the sources; each of those is healed in turn
 * (heal_object()), a directory's entry heal making the next level, a
 * file's data heal copying its bytes, so the tree fills breadth-first.
 *
 *   blame / for k --> work list := objects blamed for k (heal indices)
 *     --> heal_object() each, appending what it made on k
 *         (throttle by bytes written; progress every every_ms)
 *     --> list again: anything blamed for k left?  (a client may have
 *         blamed k for a directory already done) --> another round
 *
 * Invariants:
 *  1. Rebuild changes names and data only through the heal engine, under
 *     its locks (entry lock of a directory, inode lock of a file), so a
 *     client writing meanwhile is ordered with it: no lost write.
 *  2. Everything not yet rebuilt is named by a pending[k] marker on the
 *     sources (the root by ours, the rest by entry heal's, which is set
 *     before the directory's lock is dropped).  So the heal index is the
 *     resume point: a rebuild killed at any moment and run again starts
 *     from the blamed objects only, and what is done costs nothing.
 *  3. Counting (entries, bytes, skipped) is a read-only walk of one source
 *     and never decides anything.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/id.h"
#include "rebuild.h"
#include "replicafs/client.h"

#define REBUILD_ROUNDS 5   /* list-and-heal rounds before giving up */
#define REBUILD_MAX_SLEEP_MS 200 /* throttle sleeps in slices: stop is seen */
#define REBUILD_MAX_JOBS 64
#define REBUILD_WAVES 256 /* worker waves (about the tree depth) */

struct idarr {
    struct rfs_id *v; /* owned */
    size_t n, cap;
};

static int idarr_push(struct idarr *a, const struct rfs_id *id)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 256;
        struct rfs_id *nv = realloc(a->v, cap * sizeof(*nv));

        if (!nv)
            return -ENOMEM;
        a->v = nv;
        a->cap = cap;
    }
    a->v[a->n++] = *id;
    return 0;
}

static int id_cmp(const void *x, const void *y)
{
    const struct rfs_id *a = x, *b = y;

    if (a->hi != b->hi)
        return a->hi < b->hi ? -1 : 1;
    if (a->lo != b->lo)
        return a->lo < b->lo ? -1 : 1;
    return 0;
}

static bool idarr_has(const struct idarr *a, const struct rfs_id *id)
{
    return a->n && bsearch(id, a->v, a->n, sizeof(*a->v), id_cmp);
}

/* Add pending[k]+1 on the root on every up brick but k: the engine then
 * takes k for a sink of the root (invariant 2).  0 if one brick took it. */
static int blame_root(struct healer *h, unsigned k)
{
    uint32_t upm = healer_up_mask(h);
    int rc = -ENOTCONN;

    for (unsigned b = 0; b < healer_nbricks(h); b++) {
        struct xattrop_req req = {.id = RFS_ROOT_ID,
                                  .npending = healer_nbricks(h)};
        struct xattrop_rep rep;

        if (b == k || !(upm & (1u << b)))
            continue;
        req.pending[k] = 1;
        if (heal_call(h, b, OP_XATTROP, &req, &rep, NULL) == 0)
            rc = 0;
    }
    return rc;
}

/* The objects some present brick blames k for (sorted).  Also counts the
 * split-brain ones into *sb when sb. */
static int blamed_for(struct healer *h, unsigned k, struct idarr *out,
                      uint64_t *sb)
{
    struct heal_item *items;
    size_t n;
    int rc = heal_list(h, &items, &n);

    out->n = 0;
    if (rc < 0)
        return rc;
    if (sb)
        *sb = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const struct heal_item *it = &items[i];
        bool blamed = false;

        if (!it->type)
            continue; /* gone everywhere: a stale index entry */
        if (sb && it->v.split_brain)
            (*sb)++;
        for (unsigned b = 0; b < it->m.n; b++)
            blamed |= b != k && (it->m.present & (1u << b)) &&
                      it->m.pend[b][k] > 0;
        if (blamed)
            rc = idarr_push(out, &it->id);
    }
    free(items);
    if (rc == 0 && out->n)
        qsort(out->v, out->n, sizeof(*out->v), id_cmp);
    return rc;
}

/* ---- counting (invariant 3) ---- */

struct fileent {
    struct rfs_id id;
    uint64_t size;
    bool todo;
};

struct dirent_q {
    struct rfs_id id;
    bool missing; /* not on the target yet: all below it is to do */
};

/* The ids of directory dir's entries on brick b into out (sorted). */
static int list_ids(struct healer *h, unsigned b, const struct rfs_id *dir,
                    struct idarr *out)
{
    struct readdir_req req = {.id = *dir, .cookie = 0,
                              .max_bytes = PROTO_READDIR_MAX};
    struct readdir_rep rep;
    int rc;

    out->n = 0;
    do {
        void *frame = NULL;
        size_t off = 0;
        char name[PROTO_NAME_MAX + 1];
        struct proto_attr a;

        rc = heal_call(h, b, OP_READDIR, &req, &rep, &frame);
        if (rc < 0)
            return rc;
        while ((rc = proto_dirent_next(&rep.entries, &off, name, &a)) == 1)
            if ((rc = idarr_push(out, &a.id)) < 0)
                break;
        free(frame);
        if (rc < 0)
            return rc;
        req.cookie = rep.next_cookie;
    } while (!rep.eof);
    if (out->n)
        qsort(out->v, out->n, sizeof(*out->v), id_cmp);
    return 0;
}

/*
 * Walk source s from the root: every name counts; a name is "to do" when
 * its object is blamed for target k (blamed: sorted), or when it is not on
 * k yet (looked up only below blamed directories: elsewhere entry heal
 * already made every name), else it was rebuilt before (skipped).  Files
 * are counted once per id (hard links).
 */
static int count_tree(struct healer *h, unsigned s, unsigned k,
                      const struct idarr *blamed, struct rebuild_progress *p)
{
    struct idarr there = {0};
    struct dirent_q *q = NULL;
    struct fileent *f = NULL;
    size_t qn = 0, qcap = 0, fn = 0, fcap = 0;
    int rc = 0;

    q = malloc(sizeof(*q) * (qcap = 64));
    if (!q)
        return -ENOMEM;
    q[qn++] = (struct dirent_q){RFS_ROOT_ID, false};
    for (size_t qi = 0; qi < qn && rc == 0; qi++) {
        struct dirent_q d = q[qi];
        struct readdir_req req = {.id = d.id, .cookie = 0,
                                  .max_bytes = PROTO_READDIR_MAX};
        struct readdir_rep rep;
        bool look = !d.missing && idarr_has(blamed, &d.id);

        there.n = 0;
        if (look && list_ids(h, k, &d.id, &there) < 0)
            d.missing = true; /* cannot tell: count it all as to do */

        do {
            void *frame = NULL;
            size_t off = 0;
            char name[PROTO_NAME_MAX + 1];
            struct proto_attr a;

            rc = heal_call(h, s, OP_READDIR, &req, &rep, &frame);
            if (rc == -ENOENT || rc == -ESTALE) {
                rc = 0; /* removed meanwhile: nothing to count */
                break;
            }
            if (rc < 0)
                break;
            while ((rc = proto_dirent_next(&rep.entries, &off, name, &a)) ==
                   1) {
                bool missing = d.missing || (look && !idarr_has(&there, &a.id));
                bool todo = missing || idarr_has(blamed, &a.id);

                p->entries_total++;
                p->entries_skipped += !todo;
                if (S_ISDIR(a.mode)) {
                    if (qn == qcap) {
                        struct dirent_q *nq =
                            realloc(q, sizeof(*q) * (qcap *= 2));

                        if (!nq) {
                            rc = -ENOMEM;
                            break;
                        }
                        q = nq;
                    }
                    q[qn++] = (struct dirent_q){a.id, missing};
                } else if (S_ISREG(a.mode)) {
                    if (fn == fcap) {
                        size_t cap = fcap ? fcap * 2 : 256;
                        struct fileent *nf = realloc(f, sizeof(*f) * cap);

                        if (!nf) {
                            rc = -ENOMEM;
                            break;
                        }
                        f = nf;
                        fcap = cap;
                    }
                    f[fn++] = (struct fileent){a.id, a.size, todo};
                }
            }
            free(frame);
            req.cookie = rep.next_cookie;
        } while (rc == 0 && !rep.eof);
    }
    if (rc == 0 && fn) {
        qsort(f, fn, sizeof(*f), id_cmp); /* id is the first member */
        for (size_t i = 0; i < fn; i++) {
            bool todo = f[i].todo;

            while (i + 1 < fn && !id_cmp(&f[i].id, &f[i + 1].id))
                todo |= f[++i].todo; /* one file, several names */
            p->bytes_total += f[i].size;
            if (!todo)
                p->bytes_skipped += f[i].size;
        }
    }
    free(q);
    free(f);
    free(there.v);
    return rc;
}

/* ---- the run ---- */

/* One process's share of a run. */
struct run {
    struct healer *h;            /* borrowed */
    const struct rebuild_opts *o;
    struct rebuild_progress *p;  /* NULL in a worker */
    unsigned k;                  /* target, 0-based */
    double t0, last;
    double rate;                 /* this process's bytes/s; 0: unlimited */
    struct heal_stats st;        /* what this process did */
    struct heal_stats *slots;    /* MAP_SHARED: workers' stats, or NULL */
    unsigned nslots;
    struct heal_stats *mine;     /* in a worker: its slot */
    pid_t self;                  /* the parent's pid, for its workers */
};

#define STAT_WORDS (sizeof(struct heal_stats) / sizeof(uint64_t))

/* Stats cross processes a word at a time (relaxed atomics): progress may
 * lag, never tear a counter. */
static void stats_publish(struct heal_stats *dst, const struct heal_stats *src)
{
    uint64_t *d = (uint64_t *)dst;
    const uint64_t *s = (const uint64_t *)src;

    for (size_t i = 0; i < STAT_WORDS; i++)
        __atomic_store_n(&d[i], s[i], __ATOMIC_RELAXED);
}

static void stats_add(struct heal_stats *dst, const struct heal_stats *src)
{
    uint64_t *d = (uint64_t *)dst;
    const uint64_t *s = (const uint64_t *)src;

    for (size_t i = 0; i < STAT_WORDS; i++)
        d[i] += __atomic_load_n(&s[i], __ATOMIC_RELAXED);
}

/* Everything done so far: this process and its workers. */
static void run_total(const struct run *r, struct heal_stats *t)
{
    *t = r->st;
    for (unsigned i = 0; i < r->nslots; i++)
        stats_add(t, &r->slots[i]);
}

static void sync_stats(struct rebuild_progress *p, const struct heal_stats *st,
                       double t0)
{
    p->entries_done = st->entries_created + st->entries_linked;
    p->entries_linked = st->entries_linked;
    p->bytes_done = st->bytes;
    p->bytes_same = st->bytes_same;
    p->files_done = st->files;
    p->failed = st->failed;
    p->elapsed_s = mono_s() - t0;
}

/* Progress: publish (worker) or call back (every every_ms, or now). */
static void report(struct run *r, bool now)
{
    struct heal_stats t;
    double tn = mono_s();

    if (r->mine) {
        stats_publish(r->mine, &r->st);
        return;
    }
    if (!r->o->progress || (!now && (tn - r->last) * 1000 < r->o->every_ms))
        return;
    r->last = tn;
    run_total(r, &t);
    sync_stats(r->p, &t, r->t0);
    r->o->progress(r->p, r->o->arg);
}

static bool stopped(const struct run *r)
{
    return r->o->stop && *r->o->stop;
}

/* Sleep while the bytes written run ahead of the rate since t0. */
static void throttle(struct run *r)
{
    while (r->rate > 0 && !stopped(r)) {
        double ahead = (double)r->st.bytes / r->rate - (mono_s() - r->t0);
        unsigned ms;

        if (ahead <= 0.001)
            return;
        ms = ahead * 1000 > REBUILD_MAX_SLEEP_MS ? REBUILD_MAX_SLEEP_MS
                                                 : (unsigned)(ahead * 1000);
        healer_idle(r->h, ms ? ms : 1);
        report(r, false);
    }
}

/* Heal every object of work, and what that makes on the target (the list
 * grows while it is walked: read by index).  Returns 0, 1 (stopped or the
 * target went down) or -ENOMEM. */
static int drain(struct run *r, struct idarr *work)
{
    for (size_t i = 0; i < work->n; i++) {
        struct rfs_id id = work->v[i], *made = NULL;
        size_t nmade = 0;
        int rc;

        if (stopped(r))
            return 1;
        rc = heal_object(r->h, &id, &made, &nmade, &r->st);
        for (size_t j = 0; j < nmade && rc != -ENOMEM; j++)
            if (idarr_push(work, &made[j]) < 0)
                rc = -ENOMEM; /* they stay blamed: next round or run */
        free(made);
        if (rc == -ENOMEM)
            return rc;
        if (rc < 0 && rc != -ENOENT && rc != -EIO)
            r->st.failed++; /* -EIO is counted by the engine */
        throttle(r);
        report(r, false);
        if (!(healer_up_mask(r->h) & (1u << r->k)))
            return 1; /* target gone: nothing more can be done now */
    }
    return 0;
}

/* A forked worker: its own loop and connections, its share of the ids. */
static void worker(const struct run *parent, unsigned part,
                   struct heal_stats *slot)
{
    const struct rebuild_opts *o = parent->o;
    struct run r = {.o = o, .k = parent->k, .t0 = mono_s(), .mine = slot,
                    .rate = o->max_rate / o->jobs};
    struct idarr work = {0};
    uv_loop_t loop;
    int rc = 2;

    heal_worker_bind(parent->self, SIGTERM);
    if (uv_loop_init(&loop) == 0 &&
        healer_new(&loop, o->vol, 3000, &r.h) == 0) {
        heal_set_split(r.h, false, o->jobs, part);
        rc = blamed_for(r.h, r.k, &work, NULL);
        if (rc == 0)
            rc = drain(&r, &work);
        report(&r, true);
        free(work.v);
        healer_free(r.h);
        uv_loop_close(&loop);
    }
    _exit(rc == 0 ? 0 : rc == 1 ? 1 : 2);
}

/* Fork o->jobs workers over the blamed objects; wait for them (passing on
 * a stop), then add their stats to r->st.  0 or -errno. */
static int run_workers(struct run *r)
{
    unsigned jobs = r->o->jobs, started = 0;
    pid_t pids[REBUILD_MAX_JOBS];
    bool signalled = false;
    int rc = 0;

    r->slots = mmap(NULL, sizeof(*r->slots) * jobs, PROT_READ | PROT_WRITE,
                    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (r->slots == MAP_FAILED) {
        r->slots = NULL;
        return -errno;
    }
    memset(r->slots, 0, sizeof(*r->slots) * jobs);
    r->nslots = jobs;
    fflush(stdout);
    fflush(stderr);
    r->self = getpid();
    for (unsigned i = 0; i < jobs; i++) {
        pid_t pid = fork();

        if (pid == 0)
            worker(r, i, &r->slots[i]);
        if (pid < 0) {
            rc = -errno;
            break;
        }
        pids[started++] = pid;
    }
    for (unsigned left = started; left;) {
        left = 0;
        for (unsigned i = 0; i < started; i++) {
            int status;

            if (pids[i] <= 0)
                continue;
            if (waitpid(pids[i], &status, WNOHANG) == pids[i])
                pids[i] = 0;
            else
                left++;
        }
        if (stopped(r) && !signalled) {
            for (unsigned i = 0; i < started; i++)
                if (pids[i] > 0)
                    kill(pids[i], SIGTERM);
            signalled = true;
        }
        if (left) {
            healer_idle(r->h, 100); /* our links stay alive meanwhile */
            report(r, false);
        }
    }
    for (unsigned i = 0; i < jobs; i++)
        stats_add(&r->st, &r->slots[i]);
    munmap(r->slots, sizeof(*r->slots) * jobs);
    r->slots = NULL;
    r->nslots = 0;
    return rc;
}

int rebuild_run(struct healer *h, const struct rebuild_opts *o,
                struct rebuild_progress *p)
{
    unsigned n = healer_nbricks(h), k, s;
    uint32_t upm = healer_up_mask(h);
    struct run r = {.h = h, .o = o, .p = p, .t0 = mono_s(),
                    .rate = o->max_rate};

    struct idarr work = {0};
    bool par = o->jobs > 1 && o->vol;
    int rc;

    r.last = r.t0; /* the first line after every_ms; the last one always */
    memset(p, 0, sizeof(*p));
    if (o->brick < 1 || o->brick > n || o->jobs > REBUILD_MAX_JOBS)
        return -EINVAL;
    k = r.k = o->brick - 1;
    if (!(upm & (1u << k)) || !(upm & ~(1u << k)))
        return -ENOTCONN;
    s = (unsigned)__builtin_ctz(upm & ~(1u << k));
    p->target = k + 1;
    p->source = s + 1;
    rc = blame_root(h, k);
    if (rc == 0)
        rc = blamed_for(h, k, &work, NULL);
    if (rc == 0)
        rc = count_tree(h, s, k, &work, p);
    if (rc < 0)
        goto out;
    if (par) {
        /* Waves of workers, each over what is blamed for the target now:
         * a wave makes the next level of names (each worker entry-heals
         * the directories of its share, following what it makes in its
         * share) and copies the files it finds; a tree of depth d takes
         * about d + 1 waves. */
        for (int wave = 0; wave < REBUILD_WAVES && work.n && !stopped(&r);
             wave++) {
            uint64_t before = r.st.entries_created + r.st.entries_linked +
                              r.st.healed;

            rc = run_workers(&r);
            if (rc < 0)
                goto out;
            rc = blamed_for(h, k, &work, NULL);
            if (rc < 0)
                goto out;
            if (r.st.entries_created + r.st.entries_linked + r.st.healed ==
                before)
                break; /* the rounds below try once more, alone */
        }
    }
    /* Rounds: a client may blame the target for a directory already done
     * (a create that failed there); list and heal again while it helps. */
    for (int round = 0; round < REBUILD_ROUNDS && work.n; round++) {
        uint64_t before = r.st.entries_created + r.st.entries_linked +
                          r.st.healed;

        rc = drain(&r, &work);
        if (rc < 0)
            goto out;
        if (rc == 1)
            break;
        rc = blamed_for(h, k, &work, NULL);
        if (rc < 0)
            goto out;
        if (r.st.entries_created + r.st.entries_linked + r.st.healed == before)
            break; /* a round that changed nothing: no use in another */
    }
    p->interrupted = stopped(&r);
    rc = blamed_for(h, k, &work, &p->split_brain);
    if (rc == 0) {
        p->left = work.n;
        rc = p->left || p->interrupted || r.st.failed ||
                     !(healer_up_mask(h) & (1u << k))
                 ? 1
                 : 0;
    }
out:
    sync_stats(p, &r.st, r.t0);
    if (o->progress)
        o->progress(p, o->arg);
    free(work.v);
    return rc;
}
