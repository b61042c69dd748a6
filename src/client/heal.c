/*
 * The heal engine (heal.h; prose and examples in docs/heal.md).
 *
 * Design.  A pass is a work list of object ids: the union of the heal
 * indices of the up bricks (or, for --full, every object met crawling from
 * the root).  Each object is healed on its own:
 *
 *   GETATTR (type) --> lock --> read markers --> heal_decide()
 *     --[split-brain]--> count, unlock
 *     --[dirty, sinks (present or not) and several sources]-->
 *                        sources_agree(): the version most sources hold
 *                        stays a source, the other sources become sinks
 *     --[no sink, dirty]-> dirty_vote(): the copies a majority of the
 *                        volume's bricks agree on are the sources, the
 *                        others sinks (then as below); no majority with
 *                        every brick up: blame_all() makes it split-brain
 *     --[no sink]------> clear stale index entry, unlock
 *     --[sinks]--------> dir: entry heal per sink, then metadata
 *                        other: data (regular files), then metadata
 *                    --> subtract what was read from the markers --> unlock
 *
 * Locks are the clients' locks, taken blocking on each brick in brick order
 * (as clients do after a busy non-blocking try): INODELK for any object,
 * and before it ENTRYLK(dir, "") -- the whole directory -- for a directory.
 * Clients never wait for an ENTRYLK while holding an INODELK, so this order
 * cannot deadlock with them.
 *
 * Entry heal of directory D for sink k, from source s (listings merged by
 * name):
 *   - same name, same id: nothing (its own markers say if it needs more);
 *   - on s only: if k has that id elsewhere (GETATTR by id works) it is a
 *     rename or a hard link done while k was away: a file is LINKed here;
 *     a directory (no hard links) is found in its old parent on k -- that
 *     parent changed too, so it is in a heal index -- and RENAMEd here.
 *     Else it is made on k with the same id (MKDIR/CREATE/SYMLINK/MKNOD)
 *     and the sources get pending[k]+1 on it, as a client's create would:
 *     the new object then heals through its own markers (data, metadata,
 *     entries), after D's locks are dropped;
 *   - on k only, or a different id: removed from k (recursively).  Only
 *     ever for a sink, i.e. when a source blames k for D: a name deleted
 *     while k was away goes, a name k never had cannot be deleted.  A name
 *     whose object the source still has under another name (moved, not
 *     deleted) waits for the heal of its new parent to link or move it.
 *
 * A pass runs in up to three rounds: a directory renamed while a sink was
 * away is moved on the sink by the heal of its new parent (found through
 * the heal indices), and the heal of its old parent defers removing it
 * until then; the last round removes and re-creates instead, so a pass
 * always ends.  Objects with nothing to do are recognised by an unlocked
 * look at their markers (one parallel XATTROP) and never locked.  Several
 * processes may heal at once (heal_set_split(): one heals the directories,
 * then each takes the objects whose id hash is its share); the locks keep
 * them apart.
 *
 * Invariants:
 *  1. No name or data is changed on a brick that no present brick's
 *     markers name as a sink, except with a forced source (split-brain
 *     resolve) or, for a dirty object nobody blames, on a brick whose copy
 *     differs from the one a majority of the volume's bricks holds.
 *  2. Markers are changed only by subtracting what was read under the lock
 *     (XATTROP deltas), so a count a client adds meanwhile is never lost.
 *  3. A pending counter is cleared only for sinks whose heal fully
 *     succeeded, and never for a brick that is down.
 *  4. A new object is marked pending on the sources before its name is
 *     made on a sink, so a healer that dies in between leaves blame, never
 *     an empty copy that looks good.
 *  5. dirty is cleared only after the copies were found equal or brought
 *     in line with a majority's (or turned into blame: split-brain); a
 *     voted heal that failed or was deferred keeps it.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/id.h"
#include "heal.h"
#include "replicafs/client.h"

#define HEAL_MAX_DEPTH 4096 /* directory levels walked before ELOOP */
#define HEAL_CSUM_BLOCK (64u * 1024) /* block compared by data heal */

struct idvec {
    struct rfs_id *v; /* owned */
    size_t n, cap;
};

struct healer {
    uv_loop_t *loop;                            /* borrowed */
    struct vol_config vol;
    unsigned n;
    struct brick_conn *bc[PROTO_MAX_BRICKS];    /* owned */
    uint64_t owner;                             /* lock owner of this healer */
    struct idvec work;                          /* owned: this pass's list */
    struct idxent *idx;                         /* owned: index ids, sorted */
    size_t nidx;
    bool full;
    bool keep_moved; /* defer removing a sink's dir that moved elsewhere */
    bool dirs_only;  /* heal_set_split() */
    unsigned nparts, part;
    bool verbose;    /* heal_set_verbose() */
};

/* An id in the heal indices and which bricks list it. */
struct idxent {
    struct rfs_id id;
    uint32_t bricks;
};

/* One directory listing, sorted by name. */
struct hent {
    char name[PROTO_NAME_MAX + 1];
    struct proto_attr a;
};
struct hlist {
    struct hent *e; /* owned */
    size_t n, cap;
};

static int idvec_push(struct idvec *iv, const struct rfs_id *id)
{
    if (iv->n == iv->cap) {
        size_t cap = iv->cap ? iv->cap * 2 : 256;
        struct rfs_id *nv = realloc(iv->v, cap * sizeof(*nv));

        if (!nv)
            return -ENOMEM;
        iv->v = nv;
        iv->cap = cap;
    }
    iv->v[iv->n++] = *id;
    return 0;
}

/* heal_set_verbose(): one line about object id on stderr. */
static void __attribute__((format(printf, 3, 4)))
say(const struct healer *h, const struct rfs_id *id, const char *fmt, ...)
{
    char hex[RFS_ID_HEX_LEN + 1], msg[256];
    va_list ap;

    if (!h->verbose)
        return;
    rfs_id_to_hex(id, hex);
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "heal: %s %s\n", hex, msg);
}

/* A file unlinked while open: the bricks keep it, pinned, until the last
 * close, and no name reaches it (they report nlink without their own
 * link).  Nothing to heal. */
static bool is_orphan(const struct proto_attr *a)
{
    return S_ISREG(a->mode) && a->nlink == 0;
}

/* A fault-injection point for the tests: with RFS_HEAL_CRASH_AT=name in
 * the environment the healer dies here, as kill -9 would, to prove that
 * what it wrote so far is enough for the next heal (invariant 4). */
static void crash_point(const char *name)
{
    const char *at = getenv("RFS_HEAL_CRASH_AT");

    if (at && !strcmp(at, name))
        _exit(137);
}

static bool up(const struct healer *h, unsigned b)
{
    return h->bc[b] && brick_conn_state(h->bc[b]) == BRICK_UP;
}

uint32_t healer_up_mask(const struct healer *h)
{
    uint32_t m = 0;

    for (unsigned b = 0; b < h->n; b++)
        if (up(h, b))
            m |= 1u << b;
    return m;
}

unsigned healer_nbricks(const struct healer *h)
{
    return h->n;
}

static void wake_cb(uv_timer_t *t)
{
    (void)t; /* only ends uv_run(UV_RUN_ONCE) */
}

int healer_new(uv_loop_t *loop, const struct vol_config *vol,
               unsigned timeout_ms, struct healer **out)
{
    struct healer *h = calloc(1, sizeof(*h));
    uint64_t deadline;
    uv_timer_t t;
    int rc;

    if (!h)
        return -ENOMEM;
    h->loop = loop;
    h->vol = *vol;
    h->n = vol->nbricks;
    {
        struct rfs_id r;

        rfs_id_random(&r);
        h->owner = r.hi ^ r.lo ^ 0x6865616c00000000ull; /* "heal" */
    }
    for (unsigned b = 0; b < h->n; b++) {
        struct brick_conn_opts o = {.ping_timeout_ms = timeout_ms};

        rc = brick_conn_new(loop, vol, b + 1, &o, &h->bc[b]);
        if (rc < 0)
            goto undo_conns;
        brick_conn_start(h->bc[b]);
    }
    /* Wait until every brick is up or has failed once: a refused brick must
     * not make the admin wait for the timeout. */
    deadline = mono_ms() + timeout_ms;
    uv_timer_init(loop, &t);
    uv_timer_start(&t, wake_cb, 20, 20);
    while (mono_ms() < deadline) {
        unsigned settled = 0;

        for (unsigned b = 0; b < h->n; b++)
            settled += up(h, b) || brick_conn_last_error(h->bc[b]) != 0;
        if (settled == h->n)
            break;
        uv_run(loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    *out = h;
    return 0;

undo_conns:
    for (unsigned b = 0; b < h->n; b++)
        if (h->bc[b])
            brick_conn_close(h->bc[b], NULL, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
    free(h);
    return rc;
}

void healer_idle(struct healer *h, unsigned ms)
{
    uint64_t deadline = mono_ms() + ms;
    uv_timer_t t;

    uv_timer_init(h->loop, &t);
    uv_timer_start(&t, wake_cb, 50, 50);
    while (mono_ms() < deadline)
        uv_run(h->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(h->loop, UV_RUN_NOWAIT);
}

void healer_free(struct healer *h)
{
    if (!h)
        return;
    for (unsigned b = 0; b < h->n; b++)
        if (h->bc[b])
            brick_conn_close(h->bc[b], NULL, NULL);
    uv_run(h->loop, UV_RUN_DEFAULT);
    free(h->work.v);
    free(h->idx);
    free(h);
}

static int call(struct healer *h, unsigned b, uint16_t op, const void *req,
                void *rep, void **frame)
{
    if (!up(h, b))
        return -ENOTCONN;
    return brick_call_sync(h->bc[b], op, req, rep, frame);
}

/* ---- small brick operations ---- */

static int getattr_on(struct healer *h, unsigned b, const struct rfs_id *id,
                      struct proto_attr *a)
{
    struct getattr_req req = {.id = *id};
    struct attr_rep rep;
    int rc = call(h, b, OP_GETATTR, &req, &rep, NULL);

    if (rc == 0)
        *a = rep.attr;
    return rc;
}

static int marks_on(struct healer *h, unsigned b, const struct rfs_id *id,
                    int64_t dirty_delta, const int64_t *pend_delta,
                    struct heal_marks *m)
{
    struct xattrop_req req = {.id = *id, .dirty = dirty_delta,
                              .npending = h->n};
    struct xattrop_rep rep;
    int rc;

    if (pend_delta)
        memcpy(req.pending, pend_delta, sizeof(int64_t) * h->n);
    rc = call(h, b, OP_XATTROP, &req, &rep, NULL);
    if (rc < 0 || !m)
        return rc;
    m->present |= 1u << b;
    m->dirty[b] = rep.dirty;
    memset(m->pend[b], 0, sizeof(m->pend[b]));
    for (unsigned x = 0; x < rep.npending && x < h->n; x++)
        m->pend[b][x] = rep.pending[x];
    return 0;
}

/* XATTROP on every brick of mask at once (one round trip, not n).  deltas
 * [b] are brick b's pending deltas (NULL: all zero); m (may be NULL) gets
 * the replies, m->present the bricks that answered. */
struct xcall {
    int rc;
    bool done;
    struct xattrop_rep rep;
};

static void xcall_cb(int status, const void *rep, void *arg)
{
    struct xcall *x = arg;

    x->rc = status;
    if (status == 0)
        x->rep = *(const struct xattrop_rep *)rep;
    x->done = true;
}

static void marks_all(struct healer *h, uint32_t mask, const struct rfs_id *id,
                      const int64_t *dirty, int64_t (*deltas)[PROTO_MAX_BRICKS],
                      struct heal_marks *m)
{
    struct xcall x[PROTO_MAX_BRICKS];
    unsigned waiting = 0;

    if (m) {
        memset(m, 0, sizeof(*m));
        m->n = h->n;
    }
    for (unsigned b = 0; b < h->n; b++) {
        struct xattrop_req req = {.id = *id, .npending = h->n};

        x[b].done = true;
        x[b].rc = -ENOTCONN;
        if (!(mask & (1u << b)) || !up(h, b))
            continue;
        req.dirty = dirty ? dirty[b] : 0;
        if (deltas)
            memcpy(req.pending, deltas[b], sizeof(int64_t) * h->n);
        x[b].done = false;
        if (brick_call(h->bc[b], OP_XATTROP, &req, xcall_cb, &x[b]) < 0) {
            x[b].done = true;
            continue;
        }
        waiting++;
    }
    for (;;) {
        unsigned left = 0;

        for (unsigned b = 0; b < h->n; b++)
            left += !x[b].done;
        if (!left || !waiting)
            break;
        uv_run(h->loop, UV_RUN_ONCE);
    }
    for (unsigned b = 0; m && b < h->n; b++) {
        if (x[b].rc < 0)
            continue;
        m->present |= 1u << b;
        m->dirty[b] = x[b].rep.dirty;
        for (unsigned k = 0; k < x[b].rep.npending && k < h->n; k++)
            m->pend[b][k] = x[b].rep.pending[k];
    }
}

/* Read the markers on every brick of mask; m->present says who has it. */
static void read_marks(struct healer *h, uint32_t mask,
                       const struct rfs_id *id, struct heal_marks *m)
{
    marks_all(h, mask, id, NULL, NULL, m);
}

static int idxent_cmp(const void *a, const void *b);

/* Bricks whose heal index listed id at the start of this pass. */
static uint32_t indexed_on(const struct healer *h, const struct rfs_id *id)
{
    struct idxent key = {.id = *id}, *e;

    if (!h->nidx)
        return 0;
    e = bsearch(&key, h->idx, h->nidx, sizeof(*h->idx), idxent_cmp);
    return e ? e->bricks : 0;
}

static int hlist_add(struct hlist *l, const char *name,
                     const struct proto_attr *a)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        struct hent *ne = realloc(l->e, cap * sizeof(*ne));

        if (!ne)
            return -ENOMEM;
        l->e = ne;
        l->cap = cap;
    }
    snprintf(l->e[l->n].name, sizeof(l->e[l->n].name), "%s", name);
    l->e[l->n].a = *a;
    l->n++;
    return 0;
}

static int hent_cmp(const void *a, const void *b)
{
    return strcmp(((const struct hent *)a)->name,
                  ((const struct hent *)b)->name);
}

/* The whole listing of directory id on brick b, sorted by name.  flags:
 * READDIR_SWEEP only while holding the directory's entry lock on b. */
static int list_dir(struct healer *h, unsigned b, const struct rfs_id *id,
                    uint32_t flags, struct hlist *l)
{
    struct readdir_req req = {.id = *id, .cookie = 0,
                              .max_bytes = PROTO_READDIR_MAX, .flags = flags};
    struct readdir_rep rep;
    int rc;

    memset(l, 0, sizeof(*l));
    do {
        void *frame = NULL;
        size_t off = 0;
        char name[PROTO_NAME_MAX + 1];
        struct proto_attr a;

        rc = call(h, b, OP_READDIR, &req, &rep, &frame);
        if (rc < 0)
            goto fail;
        while ((rc = proto_dirent_next(&rep.entries, &off, name, &a)) == 1)
            if ((rc = hlist_add(l, name, &a)) < 0)
                break;
        free(frame);
        if (rc < 0)
            goto fail;
        req.cookie = rep.next_cookie;
    } while (!rep.eof);
    if (l->n)
        qsort(l->e, l->n, sizeof(*l->e), hent_cmp);
    return 0;
fail:
    free(l->e);
    memset(l, 0, sizeof(*l));
    return rc;
}

/* ---- locks ---- */

struct heal_locks {
    uint32_t ent; /* bricks where ENTRYLK(id, "") is held */
    uint32_t ino; /* bricks where INODELK(id) is held */
};

static int lock_one(struct healer *h, unsigned b, const struct rfs_id *id,
                    bool entry, uint32_t type)
{
    if (entry) {
        struct entrylk_req req = {.parent = *id, .name = "",
                                  .owner = h->owner, .type = type};
        return call(h, b, OP_ENTRYLK, &req, NULL, NULL);
    }
    struct inodelk_req req = {.id = *id, .owner = h->owner, .type = type};
    return call(h, b, OP_INODELK, &req, NULL, NULL);
}

/* Blocking locks in brick order on the up bricks (entry first for a dir).
 * A brick that refuses (down, or lacks the object) is left out. */
static void lock_obj(struct healer *h, const struct rfs_id *id, bool dir,
                     struct heal_locks *lk)
{
    lk->ent = lk->ino = 0;
    if (dir)
        for (unsigned b = 0; b < h->n; b++)
            if (up(h, b) && lock_one(h, b, id, true, LK_WR) == 0)
                lk->ent |= 1u << b;
    for (unsigned b = 0; b < h->n; b++)
        if (up(h, b) && (!dir || (lk->ent & (1u << b))) &&
            lock_one(h, b, id, false, LK_WR) == 0)
            lk->ino |= 1u << b;
}

static void unlock_obj(struct healer *h, const struct rfs_id *id,
                       struct heal_locks *lk)
{
    for (unsigned b = h->n; b-- > 0;)
        if (lk->ino & (1u << b))
            (void)lock_one(h, b, id, false, LK_UN);
    for (unsigned b = h->n; b-- > 0;)
        if (lk->ent & (1u << b))
            (void)lock_one(h, b, id, true, LK_UN);
    lk->ent = lk->ino = 0;
}

/* ---- metadata and data ---- */

static int meta_heal(struct healer *h, unsigned k, const struct rfs_id *id,
                     const struct proto_attr *src, struct heal_stats *st)
{
    struct setattr_req req = {.id = *id,
                              .valid = SETATTR_UID | SETATTR_GID |
                                       SETATTR_ATIME | SETATTR_MTIME,
                              .mode = src->mode & 07777, .uid = src->uid,
                              .gid = src->gid, .atime = src->atime,
                              .mtime = src->mtime};
    struct attr_rep rep;
    int rc;

    if (!S_ISLNK(src->mode))
        req.valid |= SETATTR_MODE;
    rc = call(h, k, OP_SETATTR, &req, &rep, NULL);
    if (rc == 0)
        st->meta++;
    else if (S_ISLNK(src->mode) && rc != -ENOTCONN)
        rc = 0; /* symlink times/owner: best effort, the target is what counts */
    return rc;
}

/* Copy [off, off+len) of the file from s to k, in PROTO_MAX_IO pieces. */
static int copy_range(struct healer *h, unsigned s, unsigned k,
                      const struct rfs_id *id, uint64_t off, uint64_t len,
                      struct heal_stats *st)
{
    uint64_t end = off + len;
    int rc;

    while (off < end) {
        struct read_req rr = {.id = *id, .offset = off, .size = PROTO_MAX_IO};
        struct read_rep rrep;
        struct write_req wr = {.id = *id, .offset = off};
        struct write_rep wrep;
        void *frame = NULL;

        if (end - off < PROTO_MAX_IO)
            rr.size = (uint32_t)(end - off);
        rc = call(h, s, OP_READ, &rr, &rrep, &frame);
        if (rc < 0)
            return rc;
        if (rrep.data.len == 0) { /* shorter than its attr said */
            free(frame);
            break;
        }
        wr.data = rrep.data;
        rc = call(h, k, OP_WRITE, &wr, &wrep, NULL);
        free(frame);
        if (rc < 0)
            return rc;
        if (wrep.count != wr.data.len)
            return -EIO;
        off += wr.data.len;
        st->bytes += wr.data.len;
    }
    return 0;
}

/* The block sums of [off, off + n blocks) on brick b: *sums (malloc'ed,
 * *count of them).  -ENOSYS from a brick without CHECKSUM. */
static int sums_of(struct healer *h, unsigned b, const struct rfs_id *id,
                   uint64_t off, uint32_t n, uint64_t **sums, uint32_t *count)
{
    struct checksum_req req = {.id = *id, .offset = off,
                               .length = (uint64_t)n * HEAL_CSUM_BLOCK,
                               .block_size = HEAL_CSUM_BLOCK};
    struct checksum_rep rep;
    void *frame = NULL;
    int rc;

    rc = call(h, b, OP_CHECKSUM, &req, &rep, &frame);
    if (rc < 0)
        return rc;
    *count = rep.sums.len / 8 < rep.count ? rep.sums.len / 8 : rep.count;
    *sums = malloc(((size_t)*count + 1) * sizeof(uint64_t));
    if (!*sums) {
        free(frame);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < *count; i++) {
        uint64_t v = 0;

        for (int j = 0; j < 8; j++)
            v |= (uint64_t)rep.sums.data[8u * i + (unsigned)j] << (8 * j);
        (*sums)[i] = v;
    }
    free(frame);
    return 0;
}

/*
 * Data of the file from s to k.  When k already has data, the xxh3 sums
 * of HEAL_CSUM_BLOCK blocks (OP_CHECKSUM, kept by the bricks) are compared
 * and only differing blocks travel; a brick without CHECKSUM, or a new
 * (empty) sink, gets the whole file.  The size is set last: it also cuts
 * what the sink had beyond it.
 */
static int data_heal(struct healer *h, unsigned s, unsigned k,
                     const struct rfs_id *id, const struct proto_attr *src,
                     struct heal_stats *st)
{
    struct setattr_req tr = {.id = *id, .valid = SETATTR_SIZE,
                             .size = src->size};
    struct attr_rep arep;
    struct proto_attr ka = {0}; /* -O3 cannot see getattr_on fill it */
    uint64_t off = 0;
    int rc;

    rc = getattr_on(h, k, id, &ka);
    if (rc < 0)
        return rc;
    while (ka.size > 0 && off < src->size) {
        uint64_t *ss = NULL, *ks = NULL;
        uint32_t ns = 0, nk = 0, i = 0;

        rc = sums_of(h, s, id, off, PROTO_CSUM_MAX_BLOCKS, &ss, &ns);
        if (rc == 0)
            rc = sums_of(h, k, id, off, PROTO_CSUM_MAX_BLOCKS, &ks, &nk);
        if (rc < 0) {
            free(ss);
            free(ks);
            if (rc == -ENOTCONN)
                return rc;
            break; /* no CHECKSUM there: copy the rest whole */
        }
        if (ns == 0) {
            free(ss);
            free(ks);
            off = src->size;
            break;
        }
        while (i < ns && rc == 0) {
            uint32_t j = i;

            while (j < ns && (j >= nk || ss[j] != ks[j]))
                j++; /* a run of differing blocks */
            if (j > i) {
                uint64_t a = off + (uint64_t)i * HEAL_CSUM_BLOCK;
                uint64_t z = off + (uint64_t)j * HEAL_CSUM_BLOCK;

                if (z > src->size)
                    z = src->size;
                rc = copy_range(h, s, k, id, a, z - a, st);
                i = j;
                continue;
            }
            {
                uint64_t a = off + (uint64_t)i * HEAL_CSUM_BLOCK;

                st->bytes_same += src->size - a < HEAL_CSUM_BLOCK
                                      ? src->size - a : HEAL_CSUM_BLOCK;
            }
            i++;
        }
        free(ss);
        free(ks);
        if (rc < 0)
            return rc;
        off += (uint64_t)ns * HEAL_CSUM_BLOCK;
    }
    if (off < src->size) {
        rc = copy_range(h, s, k, id, off, src->size - off, st);
        if (rc < 0)
            return rc;
    }
    rc = call(h, k, OP_SETATTR, &tr, &arep, NULL);
    if (rc == 0)
        st->files++;
    return rc;
}

/* ---- entry heal ---- */

/* Remove name (attr a) from directory dir on brick k, a subtree first. */
static int rm_tree(struct healer *h, unsigned k, const struct rfs_id *dir,
                   const char *name, const struct proto_attr *a, int depth)
{
    struct unlink_req req = {.parent = *dir};
    int rc;

    if (S_ISDIR(a->mode)) {
        struct hlist l;

        if (depth > HEAL_MAX_DEPTH)
            return -ELOOP;
        rc = list_dir(h, k, &a->id, 0, &l);
        if (rc < 0)
            return rc;
        for (size_t i = 0; i < l.n && rc == 0; i++)
            rc = rm_tree(h, k, &a->id, l.e[i].name, &l.e[i].a, depth + 1);
        free(l.e);
        if (rc < 0)
            return rc;
    }
    snprintf(req.name, sizeof(req.name), "%s", name);
    rc = call(h, k, S_ISDIR(a->mode) ? OP_RMDIR : OP_UNLINK, &req, NULL, NULL);
    return rc == -ENOENT ? 0 : rc;
}

/*
 * Directory e (on the source, in dir) exists on sink k under another name:
 * a rename done while k was away.  Find its old place on k -- the old
 * parent changed too, so it is in a heal index -- and replay the rename
 * there.  The old entry is locked non-blocking (we hold dir's lock, and
 * waiting out of order could deadlock with a client's rename): busy means
 * deferred.  1 when moved, 0 deferred/not found, -errno.
 */
static int move_dir(struct healer *h, unsigned k, const struct rfs_id *dir,
                    const struct hent *e, struct heal_stats *st)
{
    for (size_t i = 0; i < h->nidx; i++) {
        struct proto_attr pa;
        struct hlist l;
        int rc = 0;

        if (getattr_on(h, k, &h->idx[i].id, &pa) < 0 || !S_ISDIR(pa.mode))
            continue;
        if (list_dir(h, k, &h->idx[i].id, 0, &l) < 0)
            continue;
        for (size_t j = 0; j < l.n && rc == 0; j++) {
            struct entrylk_req lk = {.parent = h->idx[i].id,
                                     .owner = h->owner, .type = LK_WR,
                                     .flags = LK_NONBLOCK};
            struct rename_req rn = {.parent = h->idx[i].id, .newparent = *dir,
                                    .flags = RENAME_FLAG_NOREPLACE};
            uint32_t locked = 0;

            if (!rfs_id_eq(&l.e[j].a.id, &e->a.id))
                continue;
            snprintf(lk.name, sizeof(lk.name), "%s", l.e[j].name);
            for (unsigned b = 0; b < h->n && rc == 0; b++) {
                if (!up(h, b))
                    continue;
                rc = call(h, b, OP_ENTRYLK, &lk, NULL, NULL);
                if (rc == 0)
                    locked |= 1u << b;
                else if (rc == -ENOENT || rc == -ENOTCONN)
                    rc = 0; /* the old parent is gone there: no client */
            }
            if (rc == 0) {
                snprintf(rn.name, sizeof(rn.name), "%s", l.e[j].name);
                snprintf(rn.newname, sizeof(rn.newname), "%s", e->name);
                rc = call(h, k, OP_RENAME, &rn, NULL, NULL);
                if (rc == 0) {
                    st->entries_linked++;
                    rc = 1;
                }
            } else if (rc == -EAGAIN) {
                rc = 0; /* busy: deferred */
            }
            lk.type = LK_UN;
            lk.flags = 0;
            for (unsigned b = h->n; b-- > 0;)
                if (locked & (1u << b))
                    (void)call(h, b, OP_ENTRYLK, &lk, NULL, NULL);
            free(l.e);
            return rc;
        }
        free(l.e);
    }
    return 0;
}

/* Make (or link) the source's entry e in dir on sink k.  1 when done, 0 when
 * deferred, -errno. */
static int make_entry(struct healer *h, unsigned s, unsigned k, uint32_t srcs,
                      const struct rfs_id *dir, const struct hent *e,
                      struct heal_stats *st)
{
    const struct proto_attr *a = &e->a;
    struct proto_attr ka = {0}; /* -O3 cannot see getattr_on fill it */
    struct attr_rep rep;
    int64_t pend[PROTO_MAX_BRICKS] = {0};
    int rc;

    rc = getattr_on(h, k, &a->id, &ka);
    if (rc == 0) { /* the id lives elsewhere on k: rename or hard link */
        struct link_req lr = {.id = a->id, .newparent = *dir};

        if (S_ISDIR(a->mode)) {
            rc = move_dir(h, k, dir, e, st);
            if (rc == 0) {
                st->deferred++;
                return 0;
            }
            return rc < 0 ? rc : 1;
        }
        snprintf(lr.newname, sizeof(lr.newname), "%s", e->name);
        rc = call(h, k, OP_LINK, &lr, &rep, NULL);
        if (rc < 0)
            return rc;
        st->entries_linked++;
        return idvec_push(&h->work, &a->id) < 0 ? -ENOMEM : 1;
    }
    if (rc != -ENOENT)
        return rc;
    /* Invariant 4: the sources blame k for the new object, as a client's
     * create would have made them; it then heals through its markers.
     * Before k gets the name: should this heal die in between, an empty
     * new file on k must not pass for a good copy.  (If the create fails,
     * dir stays blamed on k, and its next entry heal marks again: one
     * heal subtracts all it reads.) */
    pend[k] = 1;
    for (unsigned b = 0; b < h->n; b++)
        if (srcs & (1u << b))
            (void)marks_on(h, b, &a->id, 0, pend, NULL);
    switch (a->mode & S_IFMT) {
    case S_IFDIR: {
        struct mkdir_req r = {.parent = *dir, .id = a->id,
                              .mode = a->mode & 07777, .uid = a->uid,
                              .gid = a->gid};
        snprintf(r.name, sizeof(r.name), "%s", e->name);
        rc = call(h, k, OP_MKDIR, &r, &rep, NULL);
        break;
    }
    case S_IFREG: {
        struct create_req r = {.parent = *dir, .id = a->id, .mode = a->mode,
                               .uid = a->uid, .gid = a->gid,
                               .flags = CREATE_EXCL};
        struct create_rep crep;
        snprintf(r.name, sizeof(r.name), "%s", e->name);
        rc = call(h, k, OP_CREATE, &r, &crep, NULL);
        break;
    }
    case S_IFLNK: {
        struct readlink_req rl = {.id = a->id};
        struct readlink_rep *rlrep = malloc(sizeof(*rlrep));
        struct symlink_req *r = calloc(1, sizeof(*r));

        if (!rlrep || !r) {
            free(rlrep);
            free(r);
            return -ENOMEM;
        }
        rc = call(h, s, OP_READLINK, &rl, rlrep, NULL);
        if (rc == 0) {
            r->parent = *dir;
            r->id = a->id;
            r->uid = a->uid;
            r->gid = a->gid;
            snprintf(r->name, sizeof(r->name), "%s", e->name);
            snprintf(r->target, sizeof(r->target), "%s", rlrep->target);
            rc = call(h, k, OP_SYMLINK, r, &rep, NULL);
        }
        free(rlrep);
        free(r);
        break;
    }
    default: {
        struct mknod_req r = {.parent = *dir, .id = a->id, .mode = a->mode,
                              .rdev = a->rdev, .uid = a->uid, .gid = a->gid};
        snprintf(r.name, sizeof(r.name), "%s", e->name);
        rc = call(h, k, OP_MKNOD, &r, &rep, NULL);
        break;
    }
    }
    if (rc < 0)
        return rc;
    st->entries_created++;
    crash_point("made-entry");
    return idvec_push(&h->work, &a->id) < 0 ? -ENOMEM : 1;
}

/* Bring directory dir on sink k in line with source s.  0 when k now holds
 * exactly s's names (with s's ids), 1 when something was deferred, -errno. */
static int entry_heal(struct healer *h, unsigned s, unsigned k, uint32_t srcs,
                      const struct rfs_id *dir, struct heal_stats *st)
{
    struct hlist ls, lk;
    size_t i = 0, j = 0;
    int rc, deferred = 0;

    rc = list_dir(h, s, dir, 0, &ls);
    if (rc < 0)
        return rc;
    rc = list_dir(h, k, dir, READDIR_SWEEP, &lk);
    if (rc < 0) {
        free(ls.e);
        return rc;
    }
    while (rc >= 0 && (i < ls.n || j < lk.n)) {
        int c = i == ls.n ? 1 : j == lk.n ? -1
                                          : strcmp(ls.e[i].name, lk.e[j].name);

        if (c == 0 && rfs_id_eq(&ls.e[i].a.id, &lk.e[j].a.id) &&
            (ls.e[i].a.mode & S_IFMT) == (lk.e[j].a.mode & S_IFMT)) {
            if (h->full)
                rc = idvec_push(&h->work, &ls.e[i].a.id);
            i++, j++;
            continue;
        }
        if (c > 0 && h->keep_moved) {
            struct proto_attr sa;

            /* Moved, not deleted, when the source still has the id and
             * removing this name would leave k fewer names of it than the
             * source has: the new parent's heal moves (dir) or links (file)
             * it on k; this name goes in a later round. */
            if (getattr_on(h, s, &lk.e[j].a.id, &sa) == 0 &&
                (S_ISDIR(lk.e[j].a.mode) || sa.nlink >= lk.e[j].a.nlink)) {
                say(h, dir, "brick %u: '%s' moved elsewhere: removal deferred",
                    k + 1, lk.e[j].name);
                st->deferred++;
                deferred = 1;
                j++;
                continue;
            }
        }
        if (c >= 0) { /* on k only, or another object under that name */
            rc = rm_tree(h, k, dir, lk.e[j].name, &lk.e[j].a, 0);
            if (rc == 0)
                st->entries_removed++;
            else
                say(h, dir, "brick %u: removing '%s': %s", k + 1,
                    lk.e[j].name, strerror(-rc));
            j++;
            if (c > 0)
                continue;
            if (rc < 0)
                break;
        }
        rc = make_entry(h, s, k, srcs, dir, &ls.e[i], st);
        if (rc == 0)
            deferred = 1;
        if (rc <= 0)
            say(h, dir, "brick %u: making '%s' from brick %u: %s", k + 1,
                ls.e[i].name, s + 1, rc ? strerror(-rc) : "deferred");
        i++;
    }
    free(ls.e);
    free(lk.e);
    return rc < 0 ? rc : deferred;
}

/* ---- one object ---- */

static unsigned first_bit(uint32_t m)
{
    return (unsigned)__builtin_ctz(m);
}

/* ---- dirty with nobody blamed: a vote ---- */

static void fnv(uint64_t *hsh, const void *p, size_t len)
{
    const unsigned char *c = p;

    for (size_t i = 0; i < len; i++) {
        *hsh ^= c[i];
        *hsh *= 0x100000001b3ull;
    }
}

/* What a brick's copy of id is, folded into one number: type, mode,
 * owner, and the content (a directory's names with ids and types, a
 * file's size and block sums, a symlink's target).  Times are left out:
 * they differ by nothing a reader can rely on.  0 or -errno.
 *
 * Called with id locked (a directory: its whole entry lock too) on b, so
 * a directory is listed with READDIR_SWEEP: it is dirty, i.e. a change in
 * it was cut off, maybe by a crash of b between making a name and giving
 * it its id.  Such debris is invisible to the listing, so the copies look
 * equal, and nothing else would ever remove it (soak, two_down: an id-less
 * folder left on the two bricks that were killed). */
static int vote_key(struct healer *h, unsigned b, const struct rfs_id *id,
                    uint64_t *key)
{
    struct proto_attr a;
    uint64_t k = 0xcbf29ce484222325ull;
    int rc;

    rc = getattr_on(h, b, id, &a);
    if (rc < 0)
        return rc;
    fnv(&k, &a.mode, sizeof(a.mode));
    fnv(&k, &a.uid, sizeof(a.uid));
    fnv(&k, &a.gid, sizeof(a.gid));
    if (S_ISDIR(a.mode)) {
        struct hlist l;

        rc = list_dir(h, b, id, READDIR_SWEEP, &l);
        if (rc < 0)
            return rc;
        for (size_t i = 0; i < l.n; i++) {
            uint32_t t = l.e[i].a.mode & S_IFMT;

            fnv(&k, l.e[i].name, strlen(l.e[i].name) + 1);
            fnv(&k, &l.e[i].a.id, sizeof(l.e[i].a.id));
            fnv(&k, &t, sizeof(t));
        }
        free(l.e);
    } else if (S_ISREG(a.mode)) {
        uint64_t off = 0;

        fnv(&k, &a.size, sizeof(a.size));
        while (off < a.size) {
            uint64_t *sums = NULL;
            uint32_t n = 0;

            rc = sums_of(h, b, id, off, PROTO_CSUM_MAX_BLOCKS, &sums, &n);
            if (rc < 0)
                return rc;
            fnv(&k, sums, (size_t)n * sizeof(*sums));
            free(sums);
            if (n == 0)
                break;
            off += (uint64_t)n * HEAL_CSUM_BLOCK;
        }
    } else if (S_ISLNK(a.mode)) {
        struct readlink_req rl = {.id = *id};
        struct readlink_rep *rep = malloc(sizeof(*rep));

        if (!rep)
            return -ENOMEM;
        rc = call(h, b, OP_READLINK, &rl, rep, NULL);
        if (rc == 0)
            fnv(&k, rep->target, strlen(rep->target));
        free(rep);
        if (rc < 0)
            return rc;
    }
    *key = k;
    return 0;
}

/* heal_largest_group() over one key per brick. */
static bool key_same(const void *arg, unsigned a, unsigned b)
{
    const uint64_t *key = arg;

    return key[a] == key[b];
}

/*
 * A dirty object with sinks: a change was cut off mid-way (done by fewer
 * than a quorum, left dirty, nobody blamed for it), so the sources' copies
 * may differ.  Every acknowledged change is on every source (a brick that
 * missed one is blamed by every brick that did it before the answer:
 * etxn.c invariant 7), so they differ only by changes never acknowledged:
 * the version most sources hold stays a source, the other sources become
 * sinks.  Ties go to a clean source's version (`clean`: dirty 0), then to
 * the lowest brick: a dirty copy may hold a change that failed (an unlink
 * only it did), a clean one holds none, and a clean source cannot lack an
 * acknowledged change beside a brick that has it, which would blame it
 * (bug 20: the lowest brick, dirty, won the tie and an acknowledged file
 * was removed).  Without this the first source was copied to the sinks and
 * the other sources kept their own version, unblamed, for ever.  0 or
 * -errno.
 */
static int sources_agree(struct healer *h, const struct rfs_id *id,
                         struct heal_verdict *v, uint32_t clean)
{
    uint64_t key[PROTO_MAX_BRICKS];
    uint32_t best;

    for (unsigned b = 0; b < h->n; b++) {
        int rc;

        if (!(v->sources & (1u << b)))
            continue;
        rc = vote_key(h, b, id, &key[b]);
        if (rc < 0)
            return rc;
    }
    best = heal_largest_group(h->n, v->sources, clean, key_same, key);
    if (best != v->sources)
        say(h, id, "dirty, sources differ: bricks %#x agree, %#x become "
            "sinks", (unsigned)best, (unsigned)(v->sources & ~best));
    v->sinks |= v->sources & ~best;
    v->sources = best;
    return 0;
}

/*
 * An object some brick marked dirty, that nobody blames: a change that did
 * not reach every brick (done by a minority, or cut off mid-way) and left
 * no record of who has it.  Compare the copies of the present bricks and
 * take the version a majority of the volume's bricks (n/2 + 1) holds as
 * the source.  Returns 0 with *src (the majority) and *snk (present bricks
 * that differ) set; 1 when every brick is up and there is no majority
 * (split-brain); 2 when it cannot be decided now (a brick down could tip
 * it, or most bricks lack the object: its parent's heal decides); -errno.
 */
static int dirty_vote(struct healer *h, const struct rfs_id *id,
                      uint32_t present, uint32_t *src, uint32_t *snk)
{
    uint64_t key[PROTO_MAX_BRICKS];
    uint32_t all = (1u << h->n) - 1, best;
    unsigned quorum = h->n / 2 + 1;

    for (unsigned b = 0; b < h->n; b++) {
        int rc;

        if (!(present & (1u << b)))
            continue;
        rc = vote_key(h, b, id, &key[b]);
        if (rc == -ENOENT)
            present &= ~(1u << b);
        else if (rc < 0)
            return rc;
    }
    if ((unsigned)__builtin_popcount(all & ~present) >= quorum)
        return 2; /* most bricks lack it: the parent's heal decides */
    best = heal_largest_group(h->n, present, 0, key_same, key);
    if ((unsigned)__builtin_popcount(best) >= quorum) {
        *src = best;
        *snk = present & ~best;
        return 0;
    }
    return healer_up_mask(h) == all ? 1 : 2;
}

/* Which brick the object's type is taken from, and the type. */
static int find_obj(struct healer *h, const struct rfs_id *id, uint32_t prefer,
                    struct proto_attr *a)
{
    int rc = -ENOENT;

    for (int pass = 0; pass < 2; pass++)
        for (unsigned b = 0; b < h->n; b++) {
            if (pass == 0 && !(prefer & (1u << b)))
                continue;
            if (!up(h, b))
                continue;
            rc = getattr_on(h, b, id, a);
            if (rc == 0)
                return 0;
        }
    return rc == -ENOTCONN ? -ENOENT : rc;
}

/* Dirty, nobody blamed and no majority: every present brick blames every
 * other, so the object is split-brain (listed by `split-brain list`, fixed
 * by `split-brain resolve`), and dirty goes: it is said by the blame now. */
static void blame_all(struct healer *h, const struct rfs_id *id,
                      const struct heal_marks *m)
{
    int64_t dd[PROTO_MAX_BRICKS] = {0};
    int64_t deltas[PROTO_MAX_BRICKS][PROTO_MAX_BRICKS];

    memset(deltas, 0, sizeof(deltas));
    for (unsigned b = 0; b < h->n; b++) {
        if (!(m->present & (1u << b)))
            continue;
        dd[b] = -m->dirty[b];
        for (unsigned x = 0; x < h->n; x++)
            if (x != b && (m->present & (1u << x)) && m->pend[b][x] <= 0)
                deltas[b][x] = 1 - m->pend[b][x];
    }
    marks_all(h, m->present, id, dd, deltas, NULL);
}

/*
 * Heal object id.  With force_src (1-based; 0: none) the markers are
 * overruled: that brick is the only source and every other present brick a
 * sink.  Returns 0 (healed or nothing to do), 1 (split-brain, skipped),
 * 2 (deferred), 3 (not ours: heal_set_split()), -ENOENT (gone
 * everywhere), -errno.
 */
static int heal_one(struct healer *h, const struct rfs_id *id,
                    unsigned force_src, struct heal_stats *st)
{
    struct proto_attr a = {0}, sa = {0};
    struct heal_locks lk;
    struct heal_marks m;
    struct heal_verdict v;
    uint32_t healed = 0, lockmask, absent_sinks;
    bool dir, deferred = false, failed = false, voted = false;
    unsigned s;
    int rc;

    if (!force_src) { /* heal_set_split(): is this object ours? */
        bool mine = h->nparts <= 1 || rfs_id_hash(id) % h->nparts == h->part;

        if (!mine && !h->full)
            return 3;
        if (h->dirs_only || !mine) {
            /* directories are walked by everyone in --full */
            rc = find_obj(h, id, 0, &a);
            if (rc < 0)
                return rc;
            if (!S_ISDIR(a.mode))
                return 3;
        }
    }
    if (!force_src && !h->full) {
        /* Unlocked look first: most index entries of a returning brick are
         * objects it lacks (their parent's entry heal makes them), or
         * already clean; those need no lock. */
        read_marks(h, healer_up_mask(h), id, &m);
        if (!m.present)
            return -ENOENT;
        heal_decide(&m, &v);
        if (v.blamed & ~m.present & healer_up_mask(h))
            say(h, id, "blamed for bricks %#x, which are up and lack it: "
                "its folder's entry heal must make it", (unsigned)(v.blamed &
                ~m.present & healer_up_mask(h)));
        if (!v.split_brain && !v.sinks && !v.dirty) {
            /* Nothing to heal.  A brick that still indexes it has counters
             * that blame nobody: zero (a stale entry) or meaningless
             * (negative, or its own): they are cleared under the locks
             * below, or the index would name it for ever. */
            if (!(indexed_on(h, id) & m.present)) {
                st->objects++;
                return 0;
            }
        }
    }
    rc = find_obj(h, id, 0, &a);
    if (rc < 0)
        return rc;
    st->objects++;
    if (!force_src && is_orphan(&a)) {
        /* Unlinked while open (the bricks pin it until it is closed): no
         * name can reach it any more and it goes at the last close, so
         * there is nothing to heal; its index entry goes with it. */
        say(h, id, "a file with no name left, open somewhere: not healed");
        return 0;
    }
    dir = S_ISDIR(a.mode);
    lock_obj(h, id, dir, &lk);
    lockmask = lk.ino;
    if (!lockmask) {
        rc = -ENOENT;
        goto out_unlock;
    }
    read_marks(h, lockmask, id, &m);
    heal_decide(&m, &v);
    if (force_src) {
        if (!(m.present & (1u << (force_src - 1)))) {
            rc = -EINVAL;
            goto out_unlock;
        }
        v.sources = 1u << (force_src - 1);
        v.sinks = m.present & ~v.sources;
        v.split_brain = false;
    }
    if (v.split_brain) {
        say(h, id, "split-brain (no brick blamed by none): skipped");
        st->split_brain++;
        rc = 1;
        goto out_unlock;
    }
    /* A brick blamed by the present ones but without a copy (it missed
     * the object's making, or is down) is a sink the parent's entry heal
     * makes: the present copies are sources, and differ only by changes
     * never acknowledged, as with sinks present.  Put to a vote of the
     * whole volume instead, two differing sources of three bricks were a
     * split-brain (bug 18). */
    absent_sinks = v.blamed & ~m.present;
    if (!force_src && !v.sinks && !absent_sinks && v.dirty) {
        uint32_t src = 0, snk = 0;

        rc = dirty_vote(h, id, m.present, &src, &snk);
        if (rc == 1) { /* no majority: make it a split-brain */
            say(h, id, "dirty, copies differ, no majority: split-brain");
            blame_all(h, id, &m);
            st->split_brain++;
            goto out_unlock;
        }
        if (rc == 2) { /* keep dirty: decided later */
            say(h, id, "dirty, not every brick up to vote: deferred");
            st->deferred++;
            goto out_unlock;
        }
        if (rc < 0) {
            say(h, id, "dirty, vote failed: %s", strerror(-rc));
            st->failed++;
            rc = -EIO;
            goto out_unlock;
        }
        v.sources = src;
        v.sinks = snk;
        voted = true;
    } else if (!force_src && (v.sinks || absent_sinks) && v.dirty &&
               __builtin_popcount(v.sources) > 1) {
        /* A brick that is down may blame one of the sources: then the
         * sources cannot be compared as equals.  Heal the sinks, keep
         * dirty: the heal that sees every brick compares them. */
        if (healer_up_mask(h) != (1u << h->n) - 1) {
            say(h, id, "dirty, a brick down: the sources are compared "
                "when all are up");
            voted = deferred = true;
        } else {
            uint32_t clean = 0;

            for (unsigned b = 0; b < h->n; b++)
                if (m.dirty[b] == 0)
                    clean |= 1u << b;
            rc = sources_agree(h, id, &v, clean);
            if (rc < 0) {
                say(h, id, "dirty, comparing the sources: %s",
                    strerror(-rc));
                st->failed++;
                rc = -EIO;
                goto out_unlock;
            }
            voted = true;
        }
    }
    if (v.sinks) {
        s = first_bit(v.sources);
        rc = getattr_on(h, s, id, &sa);
        if (rc < 0) {
            say(h, id, "source brick %u: getattr: %s", s + 1, strerror(-rc));
            failed = true;
            goto clear;
        }
        for (unsigned k = 0; k < h->n; k++) {
            if (!(v.sinks & (1u << k)))
                continue;
            if (dir) {
                rc = entry_heal(h, s, k, v.sources, id, st);
                if (rc == 1) {
                    deferred = true;
                    continue; /* k stays blamed for this dir */
                }
            } else if (S_ISREG(sa.mode)) {
                rc = data_heal(h, s, k, id, &sa, st);
            }
            if (rc == 0)
                rc = meta_heal(h, k, id, &sa, st);
            if (rc < 0) {
                say(h, id, "%s from brick %u to brick %u: %s",
                    dir ? "dir" : "file", s + 1, k + 1, strerror(-rc));
                failed = true;
                continue;
            }
            healed |= 1u << k;
        }
        if (healed)
            st->healed++;
        if (healed || deferred)
            say(h, id, "%s from brick %u: healed bricks 0x%x%s",
                dir ? "dir" : "file", s + 1, healed,
                deferred ? ", part deferred" : "");
    } else if (h->full && dir) {
        /* --full: still walk into a clean directory's children */
        struct hlist l;

        if (list_dir(h, first_bit(m.present), id, 0, &l) == 0) {
            for (size_t i = 0; i < l.n; i++)
                (void)idvec_push(&h->work, &l.e[i].a.id);
            free(l.e);
        }
    }
clear:
    /* Invariants 2 and 3: subtract what was read, for healed sinks (and a
     * forced source, which its sinks blamed) only; a stale dirty goes too
     * (we hold every lock a change that marks it holds). */
    {
        uint32_t synced = healed | (force_src ? v.sources : 0), wmask = 0;
        uint32_t bounce = 0, idxm = indexed_on(h, id);
        int64_t dd[PROTO_MAX_BRICKS] = {0};
        int64_t deltas[PROTO_MAX_BRICKS][PROTO_MAX_BRICKS];

        memset(deltas, 0, sizeof(deltas));
        for (unsigned b = 0; b < h->n; b++) {
            bool any, all_zero = m.dirty[b] == 0;

            if (!(m.present & (1u << b)))
                continue;
            for (unsigned x = 0; x < h->n; x++) {
                all_zero &= m.pend[b][x] == 0;
                /* A negative count blames nobody and says nothing (more
                 * subtracted than added, after a crash between the two
                 * halves of a change): it goes too. */
                if ((synced & (1u << x)) || x == b || m.pend[b][x] < 0)
                    deltas[b][x] = -m.pend[b][x];
            }
            /* A voted heal that did not finish keeps dirty: it is all that
             * says the copies may differ. */
            dd[b] = voted && (failed || deferred) ? 0 : -m.dirty[b];
            any = dd[b] != 0;
            for (unsigned x = 0; x < h->n; x++)
                any |= deltas[b][x] != 0;
            if (any && !v.sinks && !v.dirty && h->verbose) {
                char cnt[PROTO_MAX_BRICKS * 24] = "";
                size_t o = 0;

                for (unsigned x = 0; x < h->n && o < sizeof(cnt); x++)
                    o += (size_t)snprintf(cnt + o, sizeof(cnt) - o, " %lld",
                                          (long long)m.pend[b][x]);
                say(h, id, "brick %u: clearing counters that blame nobody "
                    "(pending%s, dirty %lld)", b + 1, cnt,
                    (long long)m.dirty[b]);
            }
            if (any)
                wmask |= 1u << b;
            else if (all_zero && (idxm & (1u << b)))
                bounce |= 1u << b;
        }
        if (wmask)
            marks_all(h, wmask, id, dd, deltas, NULL);
        if (bounce) {
            /* A stale index entry (crash, or a count that came and went):
             * the brick drops it when markers go from nonzero to zero. */
            int64_t plus[PROTO_MAX_BRICKS], minus[PROTO_MAX_BRICKS];

            for (unsigned b = 0; b < PROTO_MAX_BRICKS; b++) {
                plus[b] = 1;
                minus[b] = -1;
            }
            marks_all(h, bounce, id, plus, NULL, NULL);
            marks_all(h, bounce, id, minus, NULL, NULL);
        }
    }
    rc = failed ? -EIO : deferred ? 2 : 0;
    if (failed)
        st->failed++;
out_unlock:
    unlock_obj(h, id, &lk);
    return rc;
}

/* ---- passes ---- */

static int id_cmp(const void *a, const void *b)
{
    const struct rfs_id *x = a, *y = b;

    if (x->hi != y->hi)
        return x->hi < y->hi ? -1 : 1;
    if (x->lo != y->lo)
        return x->lo < y->lo ? -1 : 1;
    return 0;
}

/* Append brick b's heal index to iv. */
static int index_of(struct healer *h, unsigned b, struct idvec *iv)
{
    struct heal_list_req req = {.cookie = 0, .max = PROTO_HEAL_LIST_MAX};
    struct heal_list_rep rep;
    int rc;

    do {
        void *frame = NULL;

        rc = call(h, b, OP_HEAL_LIST, &req, &rep, &frame);
        if (rc < 0)
            return rc;
        for (uint32_t i = 0; i < rep.count && rc == 0; i++) {
            struct rfs_id id;

            proto_id_get(rep.ids.data + 16u * i, &id);
            rc = idvec_push(iv, &id);
        }
        free(frame);
        if (rc < 0)
            return rc;
        req.cookie = rep.next_cookie;
    } while (!rep.eof);
    return 0;
}

static int idxent_cmp(const void *a, const void *b)
{
    return id_cmp(&((const struct idxent *)a)->id,
                  &((const struct idxent *)b)->id);
}

/* Union of the up bricks' indices into h->idx (sorted, one entry per id
 * with the bricks that list it) and, if iv, its ids into iv. */
static int index_union(struct healer *h, struct idvec *iv)
{
    struct idxent *all = NULL;
    size_t n = 0, w = 0;
    int rc = 0;

    free(h->idx);
    h->idx = NULL;
    h->nidx = 0;
    for (unsigned b = 0; b < h->n; b++) {
        struct idvec one = {0};
        struct idxent *na;

        if (!up(h, b))
            continue;
        rc = index_of(h, b, &one);
        if (rc == 0 && one.n) {
            na = realloc(all, (n + one.n) * sizeof(*all));
            if (!na) {
                rc = -ENOMEM;
            } else {
                all = na;
                for (size_t i = 0; i < one.n; i++)
                    all[n++] = (struct idxent){one.v[i], 1u << b};
            }
        }
        free(one.v);
        if (rc < 0 && rc != -ENOTCONN) {
            free(all);
            return rc;
        }
        rc = 0;
    }
    if (n)
        qsort(all, n, sizeof(*all), idxent_cmp);
    for (size_t i = 0; i < n; i++) {
        if (w && !id_cmp(&all[w - 1].id, &all[i].id)) {
            all[w - 1].bricks |= all[i].bricks;
            continue;
        }
        all[w++] = all[i];
    }
    h->idx = all;
    h->nidx = w;
    for (size_t i = 0; iv && i < w && rc == 0; i++)
        rc = idvec_push(iv, &all[i].id);
    return rc;
}

void heal_set_verbose(struct healer *h, bool on)
{
    h->verbose = on;
}

void heal_set_split(struct healer *h, bool dirs_only, unsigned nparts,
                    unsigned part)
{
    h->dirs_only = dirs_only;
    h->nparts = nparts;
    h->part = part;
}

int heal_pass(struct healer *h, bool full, struct heal_stats *st)
{
    int rc;

    if (!healer_up_mask(h))
        return -ENOTCONN;
    /* Rounds: a directory renamed while a sink was away is moved on the
     * sink by the heal of its new parent; its old parent's heal waits for
     * that (deferred) rather than delete it.  Should that never happen
     * (indices lost, the old parent not found), the last round removes
     * and re-creates instead. */
    for (int round = 0; round < 3; round++) {
        uint64_t deferred = st->deferred;

        h->full = full && round == 0;
        h->keep_moved = round < 2;
        h->work.n = 0;
        rc = index_union(h, h->full ? NULL : &h->work);
        if (rc == 0 && h->full)
            rc = idvec_push(&h->work, &RFS_ROOT_ID);
        if (rc < 0)
            return rc;
        /* The list grows while it is walked (entry heal pushes new
         * objects); read by index, never keep a pointer into it. */
        for (size_t i = 0; i < h->work.n; i++) {
            struct rfs_id id = h->work.v[i];

            rc = heal_one(h, &id, 0, st);
            if (rc == -ENOENT)
                st->stale++;
            else if (rc < 0 && rc != -EIO) {
                say(h, &id, "%s", strerror(-rc));
                st->failed++;
            }
        }
        if (st->deferred == deferred)
            break;
    }
    h->full = false;
    h->keep_moved = false;
    return 0;
}

int heal_list(struct healer *h, struct heal_item **items, size_t *n)
{
    struct idvec iv = {0};
    struct heal_item *out;
    int rc;

    rc = index_union(h, &iv);
    if (rc < 0)
        goto out;
    out = calloc(iv.n ? iv.n : 1, sizeof(*out));
    if (!out) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < iv.n; i++) {
        struct heal_item *it = &out[i];
        struct proto_attr a;

        it->id = iv.v[i];
        if (find_obj(h, &it->id, 0, &a) == 0) {
            it->type = a.mode & S_IFMT;
            it->orphan = is_orphan(&a);
        }
        read_marks(h, healer_up_mask(h), &it->id, &it->m);
        heal_decide(&it->m, &it->v);
        it->indexed = indexed_on(h, &it->id);
    }
    *items = out;
    *n = iv.n;
out:
    free(iv.v);
    return rc;
}

/* ---- suspect marks ---- */

int heal_suspect_read(struct healer *h, uint64_t *gen, uint32_t *read)
{
    *read = 0;
    for (unsigned b = 0; b < h->n; b++) {
        struct xattrop_req req = {.id = RFS_ROOT_ID, .npending = h->n};
        struct xattrop_rep rep;

        gen[b] = 0;
        if (call(h, b, OP_XATTROP, &req, &rep, NULL) < 0)
            continue;
        gen[b] = rep.suspect;
        *read |= 1u << b;
    }
    return *read ? 0 : -ENOTCONN;
}

int heal_suspect_clear(struct healer *h, uint32_t mask, const uint64_t *gen,
                       uint32_t *cleared)
{
    int rc = 0;

    *cleared = 0;
    for (unsigned b = 0; b < h->n; b++) {
        /* Zero deltas: the markers of the root are only read. */
        struct xattrop_req req = {.id = RFS_ROOT_ID, .npending = h->n,
                                  .clear_suspect = gen[b]};
        struct xattrop_rep rep;
        int r;

        if (!(mask & (1u << b)))
            continue;
        r = call(h, b, OP_XATTROP, &req, &rep, NULL);
        if (r < 0) {
            rc = r;
            continue;
        }
        if (rep.suspect == 0)
            *cleared |= 1u << b;
    }
    return rc;
}

/* ---- paths ---- */

int heal_lookup_path(struct healer *h, unsigned b, const char *path,
                     struct rfs_id *id, struct proto_attr *attr)
{
    struct rfs_id cur = RFS_ROOT_ID;
    const char *p = path;
    int rc;

    rc = getattr_on(h, b, &cur, attr);
    if (rc < 0)
        return rc;
    while (*p) {
        struct lookup_req req = {.parent = cur};
        struct attr_rep rep;
        size_t len;

        while (*p == '/')
            p++;
        len = strcspn(p, "/");
        if (len == 0)
            break;
        if (len > PROTO_NAME_MAX)
            return -ENAMETOOLONG;
        memcpy(req.name, p, len);
        req.name[len] = '\0';
        rc = call(h, b, OP_LOOKUP, &req, &rep, NULL);
        if (rc < 0)
            return rc;
        cur = rep.attr.id;
        *attr = rep.attr;
        p += len;
    }
    *id = cur;
    return 0;
}

struct pwalk {
    const struct rfs_id *ids;
    size_t n, found;
    char **paths;
};

static int walk(struct healer *h, unsigned b, const struct rfs_id *dir,
                const char *prefix, struct pwalk *w, int depth)
{
    struct hlist l;
    int rc;

    if (depth > HEAL_MAX_DEPTH)
        return -ELOOP;
    rc = list_dir(h, b, dir, 0, &l);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < l.n && w->found < w->n; i++) {
        size_t plen = strlen(prefix) + strlen(l.e[i].name) + 2;
        char *p = malloc(plen);

        if (!p) {
            rc = -ENOMEM;
            break;
        }
        snprintf(p, plen, "%s/%s", prefix, l.e[i].name);
        for (size_t j = 0; j < w->n; j++)
            if (!w->paths[j] && rfs_id_eq(&w->ids[j], &l.e[i].a.id)) {
                w->paths[j] = strdup(p);
                w->found++;
            }
        if (S_ISDIR(l.e[i].a.mode))
            (void)walk(h, b, &l.e[i].a.id, p, w, depth + 1);
        free(p);
    }
    free(l.e);
    return rc;
}

int heal_find_paths(struct healer *h, const struct rfs_id *ids, size_t n,
                    char **paths)
{
    struct pwalk w = {.ids = ids, .n = n, .paths = paths};
    uint32_t upm = healer_up_mask(h);

    for (size_t j = 0; j < n; j++) {
        paths[j] = NULL;
        if (rfs_id_is_zero(&ids[j])) { /* "do not look for this one" */
            w.found++;
            continue;
        }
        if (rfs_id_is_root(&ids[j])) {
            paths[j] = strdup("/");
            w.found++;
        }
    }
    /* Names may differ between bricks (that is what heal is about): walk
     * each up brick until everything is found. */
    for (unsigned b = 0; b < h->n && w.found < n; b++)
        if (upm & (1u << b))
            (void)walk(h, b, &RFS_ROOT_ID, "", &w, 0);
    return 0;
}

/* ---- split-brain resolve ---- */

static bool time_after(const struct proto_time *a, const struct proto_time *b)
{
    return a->sec != b->sec ? a->sec > b->sec : a->nsec > b->nsec;
}

int heal_resolve(struct healer *h, const struct rfs_id *id, enum heal_pick pick,
                 unsigned brick, unsigned *chosen, struct heal_stats *st)
{
    struct proto_attr best = {0}, a = {0};
    unsigned src = 0;
    int rc;

    if (pick == HEAL_PICK_BRICK) {
        if (brick < 1 || brick > h->n || !up(h, brick - 1))
            return -EINVAL;
        if (getattr_on(h, brick - 1, id, &a) < 0)
            return -EINVAL;
        src = brick;
    } else {
        for (unsigned b = 0; b < h->n; b++) {
            if (!up(h, b) || getattr_on(h, b, id, &a) < 0)
                continue;
            if (!src || (pick == HEAL_PICK_MTIME
                             ? time_after(&a.mtime, &best.mtime)
                             : a.size > best.size)) {
                src = b + 1;
                best = a;
            }
        }
        if (!src)
            return -ENOENT;
    }
    *chosen = src;
    h->work.n = 0;
    rc = heal_one(h, id, src, st);
    if (rc < 0)
        return rc;
    /* Objects the resolve made on sinks heal through their markers now. */
    for (size_t i = 0; i < h->work.n; i++) {
        struct rfs_id cid = h->work.v[i];

        (void)heal_one(h, &cid, 0, st);
    }
    h->work.n = 0;
    return rc == 2 ? -EAGAIN : 0;
}

/* ---- rebuild support (src/client/rebuild.c, helper R) ---- */

int heal_call(struct healer *h, unsigned b, uint16_t op, const void *req,
              void *rep, void **frame)
{
    return call(h, b, op, req, rep, frame);
}

int heal_object(struct healer *h, const struct rfs_id *id,
                struct rfs_id **made, size_t *nmade, struct heal_stats *st)
{
    int rc;

    *made = NULL;
    *nmade = 0;
    h->work.n = 0;
    h->full = false;
    rc = heal_one(h, id, 0, st);
    if (h->work.n) {
        *made = malloc(h->work.n * sizeof(**made));
        if (*made) {
            memcpy(*made, h->work.v, h->work.n * sizeof(**made));
            *nmade = h->work.n;
        } else if (rc >= 0) {
            rc = -ENOMEM; /* they stay marked: the next run heals them */
        }
    }
    h->work.n = 0;
    return rc;
}

void heal_worker_bind(pid_t parent, int sig)
{
    (void)prctl(PR_SET_PDEATHSIG, sig);
    if (getppid() != parent) /* died before prctl: nobody to signal us */
        _exit(1);
}
