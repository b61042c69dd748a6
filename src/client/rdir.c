/*
 * rdir: directory listings over READDIR, one good brick per listing.
 *
 * Design
 * ======
 * A brick's READDIR cookie means something only to that brick, so a
 * listing is pinned to the brick that answered its first batch.  Entries are
 * numbered in the order this handle hands them out: entry k has next_off
 * k + 1, which is what the FUSE layer gives the kernel as the offset.  The
 * handle buffers the last batch, so a kernel buffer that fills halfway
 * through a batch resumes from memory.
 *
 *   FRESH --first fetch (good brick)--> PINNED(b, cookie) --eof--> DONE
 *     ^                                   |  brick b fails
 *     |  off == 0 (rewind), off < base     v
 *     +------------------------------- FAILOVER: pinned to a new brick from
 *                                       cookie 0, dropping names already
 *                                       fetched (by 64-bit name hash)
 *
 * A batch from a dirty copy of the folder (READDIR's `dirty`) may hold a
 * name that no quorum made, or lack one that a quorum did not remove: the
 * brick may be the one a failed change reached.  Before such a batch is
 * handed out, each of its names is looked up as LOOKUP would (lkq: the
 * answer a quorum, or heal's sources, stand behind), RDIR_CHECKS at a time;
 * a name that lookup says is not there is dropped, so `ls` never shows a
 * name `stat` denies (bug 21).  A name the listing lacks stays unlisted
 * until heal: a lookup by name still finds it.
 *
 * Invariants:
 *  1. ents[0..nents) are the entries numbered base..base+nents-1.
 *  2. seen[] holds the hash of every name numbered so far in this listing;
 *     after a failover no name in seen[] is numbered again.
 *  3. At most one fetch is in flight (busy); closedir during it frees the
 *     handle when it ends.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "client/volume_int.h"
#include "common/checksum.h"
#include "common/id.h"
#include "common/log.h"

#define RDIR_BATCH (64u * 1024)
#define RDIR_ROOT_HIDDEN ".replicafs"

struct rent {
    char *name;             /* owned */
    struct proto_attr attr;
};

struct vdir {
    struct vlist link;      /* in v->dirs until volume_closedir() */
    struct volume *v;
    struct vinode *vi;      /* a reference */
    unsigned pin;           /* brick of this listing, 1-based; 0: none yet */
    unsigned failovers;
    uint64_t cookie;        /* for the next fetch on pin */
    bool eof;
    bool unsure;            /* some batch came from a dirty copy */
    struct rent *ents;      /* owned: the current batch */
    size_t nents, entcap;
    uint64_t base;          /* number of ents[0] */
    uint64_t *seen;         /* owned: name hashes, invariant 2 */
    size_t nseen, seencap;
    size_t nsorted;         /* seen[0..nsorted) sorted, after a failover */
    bool busy;              /* a volume_readdir() is in progress */
    bool closed;            /* volume_closedir() came during it */
    /* the volume_readdir() in progress */
    uint64_t want_off;
    size_t max_bytes;
    vol_readdir_cb cb;
    void *arg;
    struct mkwait w;
    struct rcall rc;
    struct readdir_req req;
    int fetch_err;
    bool batch_dirty;       /* the last batch came from a dirty copy */
    /* the check of a dirty batch (rdir_check) */
    struct rcheck *chk;     /* owned: RDIR_CHECKS slots while checking */
    size_t chk_next;        /* next entry to look up */
    unsigned chk_busy;      /* lookups in flight */
};

#define RDIR_CHECKS 16u /* lookups in flight while checking a dirty batch */

struct rcheck {
    struct lkq q;
    struct vdir *d;         /* borrowed */
    size_t i;               /* the entry it checks */
};

static void rdir_free(struct vdir *d)
{
    for (size_t i = 0; i < d->nents; i++)
        free(d->ents[i].name);
    free(d->ents);
    free(d->seen);
    free(d->chk);
    volume_inode_put(d->vi);
    free(d);
}

static void batch_clear(struct vdir *d)
{
    for (size_t i = 0; i < d->nents; i++)
        free(d->ents[i].name);
    d->base += d->nents;
    d->nents = 0;
}

static void listing_reset(struct vdir *d)
{
    batch_clear(d);
    d->base = 0;
    d->pin = 0;
    d->failovers = 0;
    d->cookie = 0;
    d->eof = false;
    d->unsure = false;
    d->nseen = 0;
    d->nsorted = 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

static bool seen_before(const struct vdir *d, uint64_t h)
{
    return d->nsorted &&
           bsearch(&h, d->seen, d->nsorted, sizeof(h), cmp_u64) != NULL;
}

static int seen_add(struct vdir *d, uint64_t h)
{
    if (d->nseen == d->seencap) {
        size_t cap = d->seencap ? d->seencap * 2 : 256;
        uint64_t *n = realloc(d->seen, cap * sizeof(*n));

        if (!n)
            return -ENOMEM;
        d->seen = n;
        d->seencap = cap;
    }
    d->seen[d->nseen++] = h;
    return 0;
}

static void rdir_fetch(struct vdir *d);

/* End the volume_readdir() in progress; free d if it was closed meanwhile. */
static void rdir_complete(struct vdir *d, int status, const struct vdirent *ents,
                          size_t n, bool eof)
{
    d->busy = false;
    d->cb(status, ents, n, eof, d->arg);
    if (d->closed)
        rdir_free(d);
}

/* Answer the volume_readdir() in progress from the buffered batch. */
static void rdir_answer(struct vdir *d)
{
    size_t first = (size_t)(d->want_off - d->base);
    size_t n = 0, bytes = 0;
    struct vdirent *out;

    while (first + n < d->nents) {
        size_t sz = proto_dirent_size(strlen(d->ents[first + n].name));

        if (n > 0 && bytes + sz > d->max_bytes)
            break;
        bytes += sz;
        n++;
    }
    out = calloc(n ? n : 1, sizeof(*out));
    if (!out) {
        rdir_complete(d, -ENOMEM, NULL, 0, false);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        out[i].name = d->ents[first + i].name;
        out[i].attr = d->ents[first + i].attr;
        out[i].next_off = d->base + first + i + 1;
        out[i].unsure = d->unsure;
        out[i].brick = (int)d->pin - 1;
    }
    rdir_complete(d, 0, out, n, d->eof && first + n == d->nents);
    free(out);
}

static void rdir_answer_cb(struct vdefer *df)
{
    struct vdir *d = vcontainer_of(df, struct vdir, rc.d);

    rdir_answer(d);
}

/* Take a batch (borrowed from the frame) into the buffer, numbering the
 * names not seen before in this listing. */
static int batch_take(struct vdir *d, const struct readdir_rep *r)
{
    bool root = rfs_id_is_root(&d->vi->id);
    char name[PROTO_NAME_MAX + 1];
    struct proto_attr attr;
    size_t off = 0;
    int rc;

    batch_clear(d);
    while ((rc = proto_dirent_next(&r->entries, &off, name, &attr)) > 0) {
        size_t len = strlen(name);
        uint64_t h = rfs_xxh3(name, len);
        struct rent *e;

        /* The brick hides it too; a second fence costs nothing. */
        if (root && strcmp(name, RDIR_ROOT_HIDDEN) == 0)
            continue;
        if (seen_before(d, h))
            continue;
        if (d->nents == d->entcap) {
            size_t ncap = d->entcap ? d->entcap * 2 : 64;
            struct rent *ne = realloc(d->ents, ncap * sizeof(*ne));

            if (!ne)
                return -ENOMEM;
            d->ents = ne;
            d->entcap = ncap;
        }
        e = &d->ents[d->nents];
        e->name = strdup(name);
        if (!e->name || seen_add(d, h) < 0) {
            free(e->name);
            return -ENOMEM;
        }
        e->attr = attr;
        d->nents++;
    }
    if (rc < 0)
        return -EIO; /* a malformed blob: the brick is broken */
    d->cookie = r->next_cookie;
    d->eof = r->eof != 0;
    d->batch_dirty = r->dirty != 0;
    d->unsure |= d->batch_dirty;
    return 0;
}

static void fetch_reply(struct rcall *rc, const void *rep)
{
    struct vdir *d = vcontainer_of(rc, struct vdir, rc);

    d->fetch_err = batch_take(d, rep);
}

/* Continue the listing on another brick from its start (invariant 2). */
static bool rdir_failover(struct vdir *d, int status)
{
    bool retry = vol_err_is_link(status) || status == -EIO ||
                 status == -ENOENT || status == -ESTALE;

    if (!d->pin || !retry || d->failovers >= d->v->n)
        return false;
    log_info("readdir: brick %u failed (%s), listing continues on another",
             d->pin, strerror(-status));
    d->failovers++;
    d->pin = 0;
    d->cookie = 0;
    d->eof = false;
    qsort(d->seen, d->nseen, sizeof(*d->seen), cmp_u64);
    d->nsorted = d->nseen;
    return true;
}

/* The batch is in the buffer (checked if it had to be): answer from it,
 * or fetch on. */
static void batch_ready(struct vdir *d)
{
    if (d->want_off < d->base + d->nents || d->eof) {
        if (d->want_off > d->base + d->nents)
            d->want_off = d->base + d->nents; /* past the end: empty */
        rdir_answer(d);
        return;
    }
    rdir_fetch(d); /* an empty batch, or skipping forward to want_off */
}

static void rdir_check_next(struct vdir *d);

static void check_done(struct lkq *q, int status)
{
    struct rcheck *c = vcontainer_of(q, struct rcheck, q);
    struct vdir *d = c->d;
    struct rent *e = &d->ents[c->i];

    if (status == -ENOENT) {
        free(e->name);
        e->name = NULL; /* dropped when the batch is compacted */
    } else if (status == 0) {
        e->attr = q->attr; /* the object a quorum stands behind */
    }
    c->d = NULL;
    d->chk_busy--;
    rdir_check_next(d);
}

/* Start lookups while slots are free; once all are back, compact the
 * batch and go on. */
static void rdir_check_next(struct vdir *d)
{
    size_t k = 0;

    for (unsigned s = 0; s < RDIR_CHECKS && d->chk_next < d->nents; s++) {
        struct rcheck *c = &d->chk[s];

        if (c->d) /* busy */
            continue;
        memset(c, 0, sizeof(*c));
        c->d = d;
        c->i = d->chk_next++;
        d->chk_busy++;
        vol_lookup_quorum(&c->q, d->v, d->vi, d->ents[c->i].name, 0, false,
                          check_done);
    }
    if (d->chk_busy)
        return;
    for (size_t i = 0; i < d->nents; i++)
        if (d->ents[i].name)
            d->ents[k++] = d->ents[i];
    d->nents = k;
    free(d->chk);
    d->chk = NULL;
    batch_ready(d);
}

/* Check a batch from a dirty copy name by name (see the header). */
static void rdir_check(struct vdir *d)
{
    d->chk = calloc(RDIR_CHECKS, sizeof(*d->chk));
    if (!d->chk) {
        rdir_complete(d, -ENOMEM, NULL, 0, false);
        return;
    }
    d->chk_next = 0;
    d->chk_busy = 0;
    rdir_check_next(d);
}

static void fetch_done(struct rcall *rc, int status)
{
    struct vdir *d = vcontainer_of(rc, struct vdir, rc);

    if (status == 0 && d->fetch_err)
        status = d->fetch_err;
    if (status < 0) {
        if (rdir_failover(d, status)) {
            rdir_fetch(d);
            return;
        }
        rdir_complete(d, status, NULL, 0, false);
        return;
    }
    if (!d->pin)
        d->pin = (unsigned)rc->brick + 1;
    if (d->batch_dirty && d->nents) {
        rdir_check(d);
        return;
    }
    batch_ready(d);
}

static void fetch_markers_cb(struct mkwait *w, int status)
{
    struct vdir *d = vcontainer_of(w, struct vdir, w);

    if (status < 0) {
        rdir_complete(d, status == -ENOENT ? -ESTALE : status, NULL, 0,
                      false);
        return;
    }
    d->req.id = d->vi->id;
    d->req.cookie = d->cookie;
    d->req.max_bytes = RDIR_BATCH;
    d->fetch_err = 0;
    d->rc.pin = d->pin;
    d->rc.on_reply = fetch_reply;
    d->rc.on_done = fetch_done;
    vol_rcall_start(&d->rc, d->v, d->vi, OP_READDIR, &d->req, true);
}

static void rdir_fetch(struct vdir *d)
{
    d->w.fn = fetch_markers_cb;
    vol_markers_ensure(d->vi, &d->w);
}

int volume_opendir(struct volume *v, struct vinode *vi, struct vdir **out)
{
    struct vdir *d = calloc(1, sizeof(*d));

    if (!d)
        return -ENOMEM;
    d->v = v;
    d->vi = vi;
    volume_inode_ref(vi);
    vlist_add_tail(&v->dirs, &d->link);
    *out = d;
    return 0;
}

int volume_readdir(struct volume *v, struct vdir *d, uint64_t off,
                   size_t max_bytes, vol_readdir_cb cb, void *arg)
{
    (void)v;
    if (d->busy || d->closed)
        return -EBUSY;
    d->busy = true;
    d->want_off = off;
    d->max_bytes = max_bytes;
    d->cb = cb;
    d->arg = arg;
    if (off == 0 || off < d->base)
        listing_reset(d); /* rewind (or seek back): list afresh */
    else if (off < d->base + d->nents || d->eof) {
        if (off > d->base + d->nents)
            d->want_off = d->base + d->nents;
        vol_defer(d->v, &d->rc.d, rdir_answer_cb);
        return 0;
    }
    rdir_fetch(d);
    return 0;
}

void volume_closedir(struct vdir *d)
{
    if (!d)
        return;
    vlist_del(&d->link);
    if (d->busy) {
        d->closed = true;
        return;
    }
    rdir_free(d);
}

void rdir_close_all(struct volume *v)
{
    while (!vlist_empty(&v->dirs))
        volume_closedir(vcontainer_of(v->dirs.next, struct vdir, link));
}
