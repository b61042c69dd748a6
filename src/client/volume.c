/*
 * volume: the bricks of one volume, the vinode table, the read policy and
 * the read operations.  Changes are in txn.c, listings in rdir.c.
 *
 * Design
 * ======
 * Brick links (brick_conn) report their state here (brick_state_cb); the
 * volume keeps `up`, the set of bricks in state UP, and `epoch`, bumped each
 * time a brick comes up.
 *
 * Read policy.  Each vinode caches `blamed`: the bricks that another brick's
 * pending counters accuse of having missed a change to this object (or that
 * lack the object while another has it), fetched with a zero-delta XATTROP
 * from every up brick.  The cache is valid while vi->mk_epoch == v->epoch:
 * a brick that comes back may have been blamed meanwhile, so every cache is
 * refetched after that on next use.  Changes this client sees a brick miss
 * are added at once (vol_blame), so it never reads its own stale replica.
 *
 *   markers: UNKNOWN --vol_markers_ensure--> FETCHING --mk_done_cb--> KNOWN
 *            KNOWN --brick comes up (epoch++)--> stale = UNKNOWN
 *
 * A read picks one brick from up & ~blamed (vol_pick_read_brick):
 * prefer-brick when it is good, else spread by rfs_id_hash(id).  When that
 * brick fails (link lost, EIO, or ENOENT for an id that others have) the
 * read is retried on the next good brick (rcall_cb), each brick once.
 *
 * Invariants:
 *  1. Callbacks of volume_*() never run inside the call (vol_defer for
 *     early answers; brick_conn never calls back from brick_call()).
 *  2. A vinode is in vtab exactly while refs > 0; each operation in flight
 *     holds a reference to every vinode it names.
 *  3. blamed never includes a brick because of a fetch that started before
 *     a local vol_blame() it would hide (blamed_new is OR-ed in).
 *  4. up == the set of bricks whose brick_conn is in state UP.
 *  5. A suspect brick (one that since its last clean heal started, lost a
 *     client or failed a change: daemon/suspect.h) is left out of blamed
 *     only on the word of at least n - quorum other bricks: with it alone,
 *     nothing it says can show it did not miss a change, so reads of
 *     objects not known from before are refused (EIO) rather than served
 *     from what may be an old copy (docs/reliability.md, rule 7).
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "client/volume_int.h"
#include "common/id.h"
#include "common/log.h"

#define VTAB_MIN 256u

/* ---- deferred calls ---- */

static void defer_idle_cb(uv_idle_t *h);

void vol_defer(struct volume *v, struct vdefer *d, void (*fn)(struct vdefer *))
{
    d->fn = fn;
    d->next = NULL;
    if (!v->dhead)
        uv_idle_start(&v->didle, defer_idle_cb);
    *v->dtail = d;
    v->dtail = &d->next;
}

static void close_handles(struct volume *v);

static void defer_idle_cb(uv_idle_t *h)
{
    struct volume *v = h->data;
    struct vdefer *d = v->dhead;

    /* Take the batch: calls deferred while it runs go to the next one. */
    v->dhead = NULL;
    v->dtail = &v->dhead;
    while (d) {
        struct vdefer *next = d->next;

        d->fn(d);
        d = next;
    }
    if (!v->dhead) {
        uv_idle_stop(&v->didle);
        if (v->closing && v->nclosing == 0)
            close_handles(v);
    }
}

/* ---- small helpers ---- */

uint64_t vol_new_owner(struct volume *v)
{
    /* Distinct per lock holder: mutual exclusion between two holders of
     * this client must not depend on how a brick treats a repeated owner. */
    return v->owner_base ^ (++v->owner_seq * 0x9e3779b97f4a7c15ull);
}

bool vol_err_is_link(int status)
{
    return status == -ENOTCONN || status == -ETIMEDOUT ||
           status == -ECONNRESET || status == -EPIPE || status == -EPROTO;
}

unsigned volume_nbricks(const struct volume *v)
{
    return v->n;
}

unsigned volume_quorum(const struct volume *v)
{
    return v->quorum;
}

uint32_t volume_up_mask(const struct volume *v)
{
    return v->up;
}

const char *volume_name(const struct volume *v)
{
    return v->cfg.name;
}

uint64_t volume_vouch_until_us(const struct volume *v)
{
    uint64_t fresh[PROTO_MAX_BRICKS], t;
    unsigned n = 0, timeout_ms = v->opts.ping_timeout_ms ?
                                 v->opts.ping_timeout_ms : 5000;

    for (unsigned b = 0; b < v->n; b++)
        if ((v->up & BMASK(b)) && brick_conn_fresh_us(v->bc[b]))
            fresh[n++] = brick_conn_fresh_us(v->bc[b]);
    if (n < v->quorum)
        return 0;
    /* the quorum-th freshest: sort descending (n <= PROTO_MAX_BRICKS) */
    for (unsigned i = 1; i < n; i++)
        for (unsigned j = i; j > 0 && fresh[j] > fresh[j - 1]; j--) {
            t = fresh[j];
            fresh[j] = fresh[j - 1];
            fresh[j - 1] = t;
        }
    return fresh[v->quorum - 1] + (uint64_t)timeout_ms * 1000u;
}

/* ---- brick link events ---- */

static void link_state_cb(struct brick_conn *bc, enum brick_state st,
                           void *arg)
{
    struct volume *v = arg;
    unsigned b = brick_conn_no(bc) - 1;
    bool was_up = v->up & BMASK(b);

    /* A new link has no leases on the brick, and a lost one may have
     * missed recalls. */
    v->lease_gen++;
    if (st == BRICK_UP) {
        v->up |= BMASK(b);
        v->epoch++; /* every blame cache is stale: see the design block */
        log_info("brick %u (%s:%u) is up", b + 1, v->cfg.bricks[b].host,
                 v->cfg.bricks[b].port);
        txn_brick_up(v);
    } else {
        v->up &= ~BMASK(b);
        if (!was_up)
            return;
        log_warn("brick %u (%s:%u) is down: %s", b + 1,
                 v->cfg.bricks[b].host, v->cfg.bricks[b].port,
                 strerror(-brick_conn_last_error(bc)));
    }
    if (v->opts.on_links_changed)
        v->opts.on_links_changed(v->opts.arg);
}

static void link_event_cb(struct brick_conn *bc, uint16_t op, const void *msg,
                           void *arg)
{
    struct volume *v = arg;
    const struct inval_event *ev = msg;

    if (op != OP_INVAL)
        return;
    if (ev->what & INVAL_LEASES_LOST) {
        log_warn("brick %u dropped this mount's read leases (a recall was "
                 "not answered in time)", brick_conn_no(bc));
        v->lease_gen++;
        return;
    }
    if (ev->what & INVAL_RECALL)
        txn_lease_recalled(v, brick_conn_no(bc) - 1, &ev->id);
    if (!(ev->what & ~INVAL_RECALL))
        return; /* our own change, or a refused grant */
    if (ev->what & INVAL_MARKERS) {
        struct vinode *vi = vol_inode_find(v, &ev->id);

        if (vi)
            vol_markers_forget(vi);
    }
    if (v->opts.on_inval)
        v->opts.on_inval(msg, v->opts.arg);
}

/* ---- lifecycle ---- */

int volume_new(uv_loop_t *loop, const struct vol_config *cfg,
               const struct volume_opts *opts, struct volume **out)
{
    struct brick_conn_opts bo = {0};
    struct rfs_id seed;
    struct volume *v;
    int rc = -ENOMEM;

    if (!loop || !cfg || cfg->nbricks < 1 || cfg->nbricks > PROTO_MAX_BRICKS)
        return -EINVAL;
    if (opts && opts->prefer_brick > cfg->nbricks)
        return -EINVAL;
    v = calloc(1, sizeof(*v));
    if (!v)
        return -ENOMEM;
    v->vtab = calloc(VTAB_MIN, sizeof(*v->vtab));
    if (!v->vtab)
        goto err_free_v;
    v->vcap = VTAB_MIN;
    v->loop = loop;
    v->cfg = *cfg;
    if (opts)
        v->opts = *opts;
    if (!v->opts.post_op_delay_ms)
        v->opts.post_op_delay_ms = VOLUME_POST_OP_DELAY_MS;
    if (!v->opts.max_hold_ms)
        v->opts.max_hold_ms = VOLUME_MAX_HOLD_MS;
    v->n = cfg->nbricks;
    v->quorum = v->n / 2 + 1;
    v->epoch = 1;
    v->lease_gen = 1;
    rfs_id_random(&seed);
    v->owner_base = seed.hi ^ seed.lo;
    v->dtail = &v->dhead;
    vlist_init(&v->post_list);
    vlist_init(&v->windows);
    vlist_init(&v->files);
    vlist_init(&v->dirs);
    bo.ping_timeout_ms = v->opts.ping_timeout_ms;
    bo.on_state = link_state_cb;
    bo.on_event = link_event_cb;
    bo.arg = v;
    for (unsigned b = 0; b < v->n; b++) {
        rc = brick_conn_new(loop, cfg, b + 1, &bo, &v->bc[b]);
        if (rc < 0)
            goto err_close_conns;
    }
    /* uv_idle_init/uv_timer_init cannot fail on Unix. */
    uv_idle_init(loop, &v->didle);
    uv_timer_init(loop, &v->post_timer);
    uv_timer_init(loop, &v->wait_timer);
    v->didle.data = v->post_timer.data = v->wait_timer.data = v;
    *out = v;
    return 0;
err_close_conns:
    /* Never started: closing only has to free them, off the loop. */
    for (unsigned b = 0; b < v->n; b++)
        if (v->bc[b])
            brick_conn_close(v->bc[b], NULL, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    free(v->vtab);
err_free_v:
    free(v);
    return rc;
}

void volume_start(struct volume *v)
{
    for (unsigned b = 0; b < v->n; b++)
        brick_conn_start(v->bc[b]);
}

static void wait_timer_cb(uv_timer_t *t)
{
    struct volume *v = t->data;

    v->wait_expired = true;
}

unsigned volume_wait_ready(struct volume *v, unsigned timeout_ms)
{
    v->wait_expired = false;
    uv_timer_start(&v->wait_timer, wait_timer_cb, timeout_ms, 0);
    while (bmask_count(v->up) < v->n && !v->wait_expired)
        uv_run(v->loop, UV_RUN_ONCE);
    uv_timer_stop(&v->wait_timer);
    return bmask_count(v->up);
}

static void volume_free(struct volume *v)
{
    void (*done)(void *) = v->done;
    void *arg = v->done_arg;

    /* Users should have dropped every reference; free what is left so a
     * forgotten one is a leak report, not a crash. */
    for (size_t i = 0; i < v->vcap; i++) {
        struct vinode *vi = v->vtab[i];

        while (vi) {
            struct vinode *next = vi->hnext;

            log_debug("volume: vinode %016llx%016llx still held at close",
                      (unsigned long long)vi->id.hi,
                      (unsigned long long)vi->id.lo);
            free(vi);
            vi = next;
        }
    }
    free(v->vtab);
    free(v);
    if (done)
        done(arg);
}

static void handle_closed_cb(uv_handle_t *h)
{
    struct volume *v = h->data;

    if (--v->nclosing == 0)
        volume_free(v);
}

static void close_handles(struct volume *v)
{
    v->nclosing = 3;
    uv_close((uv_handle_t *)&v->didle, handle_closed_cb);
    uv_close((uv_handle_t *)&v->post_timer, handle_closed_cb);
    uv_close((uv_handle_t *)&v->wait_timer, handle_closed_cb);
}

static void conn_closed_cb(void *arg)
{
    struct volume *v = arg;

    if (--v->nclosing == 0 && !v->dhead)
        close_handles(v);
}

static void close_start_cb(struct vdefer *d)
{
    free(d);
}

void volume_close(struct volume *v, void (*done)(void *), void *arg)
{
    struct vdefer *kick;

    assert(!v->closing);
    v->closing = true;
    v->done = done;
    v->done_arg = arg;
    v->up = 0;
    v->nclosing = v->n;
    /* Fails every outstanding call: their operations finish with errors,
     * and whatever they try next is refused (fan_call sees closing). */
    for (unsigned b = 0; b < v->n; b++)
        brick_conn_close(v->bc[b], conn_closed_cb, v);
    txn_release_all(v);
    rdir_close_all(v);
    txn_brick_up(v); /* ends every eager lock that is idle */
    /* Make sure the deferred queue runs at least once more, so that the
     * handles get closed from defer_idle_cb when it is drained. */
    kick = malloc(sizeof(*kick));
    if (kick)
        vol_defer(v, kick, close_start_cb);
}

/* ---- vinodes ---- */

static size_t vslot(const struct volume *v, const struct rfs_id *id)
{
    return (size_t)rfs_id_hash(id) & (v->vcap - 1);
}

static void vtab_resize(struct volume *v, size_t cap)
{
    struct vinode **nt = calloc(cap, sizeof(*nt));
    struct vinode **old = v->vtab;
    size_t oldcap = v->vcap;

    if (!nt)
        return; /* only costs speed */
    v->vtab = nt;
    v->vcap = cap;
    for (size_t i = 0; i < oldcap; i++) {
        struct vinode *vi = old[i];

        while (vi) {
            struct vinode *next = vi->hnext;
            size_t s = vslot(v, &vi->id);

            vi->hnext = nt[s];
            nt[s] = vi;
            vi = next;
        }
    }
    free(old);
}

struct vinode *vol_inode_find(struct volume *v, const struct rfs_id *id)
{
    struct vinode *vi = v->vtab[vslot(v, id)];

    while (vi && !rfs_id_eq(&vi->id, id))
        vi = vi->hnext;
    return vi;
}

int volume_inode_get(struct volume *v, const struct rfs_id *id,
                     struct vinode **out)
{
    struct vinode *vi = v->vtab[vslot(v, id)];
    size_t s;

    while (vi && !rfs_id_eq(&vi->id, id))
        vi = vi->hnext;
    if (vi) {
        vi->refs++;
        *out = vi;
        return 0;
    }
    vi = calloc(1, sizeof(*vi));
    if (!vi)
        return -ENOMEM;
    vi->v = v;
    vi->id = *id;
    vi->refs = 1;
    vi->attr_brick = -1;
    vlist_init(&vi->leased);
    vlist_init(&vi->mk_waiters);
    vlist_init(&vi->mk_waiters_next);
    vlist_init(&vi->iops);
    if (v->vcount + 1 > v->vcap)
        vtab_resize(v, v->vcap * 2);
    s = vslot(v, id);
    vi->hnext = v->vtab[s];
    v->vtab[s] = vi;
    v->vcount++;
    *out = vi;
    return 0;
}

void volume_inode_ref(struct vinode *vi)
{
    vi->refs++;
}

void volume_inode_put(struct vinode *vi)
{
    struct volume *v;
    struct vinode **pp;

    if (!vi)
        return;
    assert(vi->refs > 0);
    if (--vi->refs > 0)
        return;
    /* Operations hold references (invariant 2), so nothing is queued. */
    assert(!vi->mk && vlist_empty(&vi->mk_waiters) &&
           vlist_empty(&vi->mk_waiters_next) && txn_inode_idle(vi) &&
           vlist_empty(&vi->leased));
    txn_lease_drop(vi);
    v = vi->v;
    pp = &v->vtab[vslot(v, &vi->id)];
    while (*pp != vi)
        pp = &(*pp)->hnext;
    *pp = vi->hnext;
    v->vcount--;
    if (v->vcap > VTAB_MIN && v->vcount < v->vcap / 8)
        vtab_resize(v, v->vcap / 2);
    free(vi);
}

const struct rfs_id *volume_inode_id(const struct vinode *vi)
{
    return &vi->id;
}

uint32_t volume_inode_blamed(const struct vinode *vi)
{
    return vi->blamed;
}

/* ---- markers ---- */

struct mkfetch {
    struct vinode *vi;     /* a reference, dropped in mk_done_cb */
    uint64_t epoch;        /* v->epoch when the fetch began */
    bmask_t blamed;        /* accused by some brick that answered */
    bmask_t have;          /* answered: the object is there */
    bmask_t missing;       /* answered ENOENT */
    bmask_t suspect;       /* says it may have missed changes */
    int err;               /* some other error, for the status */
    struct xattrop_req req;
    vol_mk_hook hook;
    void *hook_arg;
    struct fan fan;
};

void vol_blame(struct vinode *vi, bmask_t missed)
{
    vi->blamed |= missed;
    vi->blamed_new |= missed;
}

static void mk_reply_cb(struct fan *f, unsigned slot, int status,
                        const void *rep)
{
    struct mkfetch *mk = f->owner;
    unsigned b = f->slot[slot].brick;
    const struct xattrop_rep *xr = rep;
    struct xattrop_rep conv;

    if (mk->hook) {
        const struct openx_rep *o = rep;

        mk->hook(mk->hook_arg, b, status, o);
        if (status == 0) {
            conv.dirty = o->dirty;
            conv.npending = o->npending;
            memcpy(conv.pending, o->pending, sizeof(conv.pending));
            conv.suspect = o->suspect;
            xr = &conv;
        }
    }
    if (status == 0) {
        mk->have |= BMASK(b);
        if (xr->suspect)
            mk->suspect |= BMASK(b);
        for (unsigned i = 0; i < xr->npending && i < f->v->n; i++)
            if (i != b && xr->pending[i] != 0)
                mk->blamed |= BMASK(i);
    } else if (status == -ENOENT || status == -ESTALE) {
        mk->missing |= BMASK(b);
    } else if (!mk->err || vol_err_is_link(mk->err)) {
        mk->err = status;
    }
}

static void mk_start(struct vinode *vi);

static void mk_done_cb(struct fan *f)
{
    struct mkfetch *mk = f->owner;
    struct vinode *vi = mk->vi;
    struct vlist waiters;
    int status = 0;

    if (mk->have) {
        struct volume *v = vi->v;
        bmask_t unsure = 0;

        /* A brick without the object, beside one with it, missed its
         * creation: it is as stale as an accused one.  And a brick that
         * says it may have missed changes (suspect) is cleared only by
         * enough others (invariant 5): a change it missed was done by a
         * quorum without it, each of which accuses it, so at least
         * n - quorum other bricks must have answered (with the object or
         * without it) to be sure to include one of them. */
        bmask_t heard = mk->have | mk->missing;

        for (unsigned b = 0; b < v->n; b++)
            if ((mk->have & mk->suspect & BMASK(b)) &&
                bmask_count(heard & ~BMASK(b)) < v->n - v->quorum)
                unsure |= BMASK(b);
        vi->blamed = mk->blamed | mk->missing | unsure | vi->blamed_new;
        if ((mk->blamed | mk->missing) && v->opts.on_heal_needed)
            v->opts.on_heal_needed(v->opts.arg);
        /* Doubt is not knowledge: an answer that left a brick unsure is
         * used for this call only, and asked again next time; so is one
         * that began before the markers changed. */
        if (!unsure && !vi->mk_redo)
            vi->mk_epoch = mk->epoch;
    } else if (mk->missing) {
        status = -ENOENT;
    } else {
        status = mk->err ? mk->err : -ENOTCONN;
    }
    vi->mk = NULL;
    vi->mk_redo = false;
    /* Detach the waiters first: one may start a new fetch. */
    vlist_init(&waiters);
    if (!vlist_empty(&vi->mk_waiters)) {
        waiters.next = vi->mk_waiters.next;
        waiters.prev = vi->mk_waiters.prev;
        waiters.next->prev = &waiters;
        waiters.prev->next = &waiters;
        vlist_init(&vi->mk_waiters);
    }
    free(mk);
    if (!vlist_empty(&vi->mk_waiters_next) && !vi->mk) {
        /* They asked after the markers changed: a fetch of their own. */
        vlist_splice(&vi->mk_waiters, &vi->mk_waiters_next);
        mk_start(vi);
    }
    while (!vlist_empty(&waiters)) {
        struct mkwait *w = vcontainer_of(waiters.next, struct mkwait, link);

        vlist_del(&w->link);
        w->fn(w, status);
    }
    volume_inode_put(vi);
}

/* A waiter answered at once still gets its answer from the loop. */
static void mk_now_cb(struct vdefer *d)
{
    struct mkwait *w = vcontainer_of(d, struct mkwait, d);

    w->fn(w, w->status);
}

void vol_markers_forget(struct vinode *vi)
{
    vi->mk_epoch = 0;
    if (vi->mk)
        vi->mk_redo = true;
}

/* Fetch the markers for the waiters on vi->mk_waiters (none in flight),
 * with a zero XATTROP or, when oreq is set, OPENX. */
static void mk_start_by(struct vinode *vi, const struct open_req *oreq,
                        vol_mk_hook hook, void *hook_arg)
{
    struct volume *v = vi->v;
    struct mkfetch *mk = calloc(1, sizeof(*mk));

    if (!mk) {
        while (!vlist_empty(&vi->mk_waiters)) {
            struct mkwait *w = vcontainer_of(vi->mk_waiters.next,
                                             struct mkwait, link);

            vlist_del(&w->link);
            vlist_init(&w->link);
            w->status = -ENOMEM;
            vol_defer(v, &w->d, mk_now_cb);
        }
        return;
    }
    volume_inode_ref(vi);
    mk->vi = vi;
    mk->epoch = v->epoch;
    mk->req.id = vi->id;
    vi->mk = mk;
    vi->mk_redo = false;
    vi->blamed_new = 0;
    mk->hook = hook;
    mk->hook_arg = hook_arg;
    fan_begin(&mk->fan, v, mk_reply_cb, mk_done_cb, mk);
    for (unsigned b = 0; b < v->n; b++)
        if (v->up & BMASK(b)) {
            if (oreq)
                fan_call(&mk->fan, b, b, OP_OPENX, oreq);
            else
                fan_call(&mk->fan, b, b, OP_XATTROP, &mk->req);
        }
    fan_end(&mk->fan);
}

static void mk_start(struct vinode *vi)
{
    mk_start_by(vi, NULL, NULL, NULL);
}

void vol_markers_fetch_openx(struct vinode *vi, struct mkwait *w,
                             const struct open_req *req, vol_mk_hook hook,
                             void *arg)
{
    assert(!vi->mk);
    vlist_init(&w->link);
    vlist_add_tail(&vi->mk_waiters, &w->link);
    mk_start_by(vi, req, hook, arg);
}

bool vol_up_speak(const struct volume *v, uint32_t ver)
{
    for (unsigned b = 0; b < v->n; b++)
        if ((v->up & BMASK(b)) && brick_conn_version(v->bc[b]) < ver)
            return false;
    return true;
}

void vol_markers_ensure(struct vinode *vi, struct mkwait *w)
{
    struct volume *v = vi->v;

    vlist_init(&w->link);
    if (vi->mk_epoch == v->epoch && !vi->mk) {
        w->status = 0;
        vol_defer(v, &w->d, mk_now_cb);
        return;
    }
    if (vi->mk) {
        /* One that began before the markers changed does not answer. */
        vlist_add_tail(vi->mk_redo ? &vi->mk_waiters_next : &vi->mk_waiters,
                       &w->link);
        return;
    }
    vlist_add_tail(&vi->mk_waiters, &w->link);
    mk_start(vi);
}

int vol_pick_read_brick(struct vinode *vi, bmask_t tried, int *why)
{
    struct volume *v = vi ? vi->v : NULL;
    bmask_t cand;
    unsigned k;

    assert(v);
    cand = v->up & ~tried & ~vi->blamed;
    if (!cand)
        log_debug("read: no good brick: up %#x tried %#x blamed %#x",
                  (unsigned)v->up, (unsigned)tried, (unsigned)vi->blamed);
    if (!cand) {
        *why = (v->up & ~tried) ? -EIO : -ENOTCONN;
        return -1;
    }
    if (v->opts.prefer_brick && (cand & BMASK(v->opts.prefer_brick - 1)))
        return (int)v->opts.prefer_brick - 1;
    k = (unsigned)(rfs_id_hash(&vi->id) % bmask_count(cand));
    for (unsigned b = 0; b < v->n; b++) {
        if (!(cand & BMASK(b)))
            continue;
        if (k-- == 0)
            return (int)b;
    }
    return -1; /* not reached */
}

void volume_inode_attrs_from(struct vinode *vi, int brick)
{
    if (brick >= 0 && (unsigned)brick < vi->v->n)
        vi->attr_brick = brick;
}

int vol_pick_attr_brick(struct vinode *vi, bmask_t tried, int *why)
{
    struct volume *v = vi->v;
    int b = vi->attr_brick;

    if (b >= 0 && (v->up & ~tried & ~vi->blamed & BMASK(b)))
        return b;
    return vol_pick_read_brick(vi, tried, why);
}

/* ---- rcall: one read on one good brick, failing over ---- */

static bool rcall_retryable(const struct rcall *rc, int status)
{
    if (vol_err_is_link(status) || status == -EIO)
        return true;
    return rc->retry_enoent && (status == -ENOENT || status == -ESTALE);
}

static void rcall_next(struct rcall *rc);

static void rcall_fail_cb(struct vdefer *d)
{
    struct rcall *rc = vcontainer_of(d, struct rcall, d);

    rc->on_done(rc, rc->last_err);
}

static void rcall_cb(int status, const void *rep, void *arg)
{
    struct rcall *rc = arg;

    if (status == 0) {
        if (rc->op == OP_GETATTR)
            rc->vi->attr_brick = rc->brick;
        if (rc->on_reply)
            rc->on_reply(rc, rep);
        rc->on_done(rc, 0);
        return;
    }
    if (!rcall_retryable(rc, status)) {
        rc->on_done(rc, status);
        return;
    }
    log_debug("read %s on brick %d failed (%s), trying another",
              proto_op_name(rc->op), rc->brick + 1, strerror(-status));
    if (!rc->last_err || vol_err_is_link(rc->last_err))
        rc->last_err = status;
    rcall_next(rc);
}

/* The next brick to try: the pinned one (once), else a good one.  None
 * once the volume is closing: its links may be freed already (a listing
 * pinned to a brick, deferred past volume_close, read freed memory). */
static int rcall_pick(struct rcall *rc, int *why)
{
    if (rc->v->closing) {
        *why = -ENOTCONN;
        return -1;
    }
    if (rc->pin) {
        *why = -ENOTCONN;
        return (rc->tried & BMASK(rc->pin - 1)) ? -1 : (int)rc->pin - 1;
    }
    if (rc->op == OP_GETATTR)
        return vol_pick_attr_brick(rc->vi, rc->tried, why);
    return vol_pick_read_brick(rc->vi, rc->tried, why);
}

/* Send to the next good brick, or defer on_done with the error. */
static void rcall_next(struct rcall *rc)
{
    int why = 0;
    int b;

    while ((b = rcall_pick(rc, &why)) >= 0) {
        int r;

        rc->tried |= BMASK(b);
        rc->brick = b;
        r = brick_call(rc->v->bc[b], rc->op, rc->req, rcall_cb, rc);
        if (r == 0)
            return;
        if (!rc->last_err || vol_err_is_link(rc->last_err))
            rc->last_err = r;
    }
    /* A brick's own answer (ENOENT...) beats "no other brick to ask";
     * "only blamed bricks left" beats a lost link. */
    if (!rc->last_err || (vol_err_is_link(rc->last_err) && why == -EIO))
        rc->last_err = why;
    vol_defer(rc->v, &rc->d, rcall_fail_cb);
}

void vol_rcall_start(struct rcall *rc, struct volume *v, struct vinode *vi,
                     uint16_t op, const void *req, bool retry_enoent)
{
    rc->v = v;
    rc->vi = vi;
    rc->op = op;
    rc->req = req;
    rc->retry_enoent = retry_enoent;
    rc->tried = 0;
    rc->last_err = 0;
    rc->brick = -1;
    rcall_next(rc);
}

/* ---- lookup ---- */

#define LOOKUP_TRIES 5 /* LOOKUPs for one name whose object keeps vanishing */

struct op_lookup {
    struct volume *v;
    struct vinode *parent;  /* a reference */
    struct vinode *child;   /* a reference once found */
    vol_entry_cb cb;
    void *arg;
    struct mkwait w;
    struct rcall rc;        /* GETATTR from a good brick */
    struct lkq q;           /* the LOOKUP */
    unsigned tries;         /* LOOKUPs sent */
    char name[PROTO_NAME_MAX + 1];
    struct getattr_req greq;
    struct proto_attr attr;
};

static void lookup_finish(struct op_lookup *op, int status)
{
    if (status == 0)
        op->cb(0, op->child, &op->attr, false, op->arg);
    else
        op->cb(status, NULL, NULL, false, op->arg);
    volume_inode_put(op->child);
    volume_inode_put(op->parent);
    free(op);
}

static void lookup_attr_reply(struct rcall *rc, const void *rep)
{
    struct op_lookup *op = vcontainer_of(rc, struct op_lookup, rc);

    op->attr = ((const struct attr_rep *)rep)->attr;
}

static void lookup_send(struct op_lookup *op);

/*
 * The object the name led to is gone (ENOENT on the markers or attributes
 * asked for after LOOKUP): the name was renamed over or removed meanwhile.
 * Ask again, so that a name that always existed (rename over it, another
 * node writing a new version) never looks missing; after LOOKUP_TRIES the
 * answer stands.
 */
static bool lookup_again(struct op_lookup *op, int status)
{
    if (status != -ENOENT || op->tries >= LOOKUP_TRIES)
        return false;
    volume_inode_put(op->child);
    op->child = NULL;
    lookup_send(op);
    return true;
}

static void lookup_getattr_done(struct rcall *rc, int status)
{
    struct op_lookup *op = vcontainer_of(rc, struct op_lookup, rc);

    if (!lookup_again(op, status))
        lookup_finish(op, status);
}

static void lookup_child_markers_cb(struct mkwait *w, int status)
{
    struct op_lookup *op = vcontainer_of(w, struct op_lookup, w);

    if (status < 0) {
        if (!lookup_again(op, status))
            lookup_finish(op, status);
        return;
    }
    if (!(op->child->blamed & BMASK(op->q.brick))) {
        lookup_finish(op, 0);
        return;
    }
    /* The brick that knew the name has stale attributes for the object:
     * ask a good one. */
    op->greq.id = op->child->id;
    op->rc.on_reply = lookup_attr_reply;
    op->rc.on_done = lookup_getattr_done;
    vol_rcall_start(&op->rc, op->v, op->child, OP_GETATTR, &op->greq, true);
}

static void lookup_done(struct lkq *q, int status)
{
    struct op_lookup *op = vcontainer_of(q, struct op_lookup, q);
    int r;

    if (status < 0) {
        lookup_finish(op, status);
        return;
    }
    op->attr = q->attr;
    r = volume_inode_get(op->v, &op->attr.id, &op->child);
    if (r < 0) {
        lookup_finish(op, r);
        return;
    }
    op->child->attr_brick = q->brick;
    op->w.fn = lookup_child_markers_cb;
    vol_markers_ensure(op->child, &op->w);
}

static void lookup_send(struct op_lookup *op)
{
    op->tries++;
    vol_lookup_quorum(&op->q, op->v, op->parent, op->name, 0, false,
                      lookup_done);
}

static void lookup_parent_markers_cb(struct mkwait *w, int status)
{
    struct op_lookup *op = vcontainer_of(w, struct op_lookup, w);

    if (status < 0) {
        lookup_finish(op, status == -ENOENT ? -ESTALE : status);
        return;
    }
    lookup_send(op);
}

int volume_lookup(struct volume *v, struct vinode *parent, const char *name,
                  vol_entry_cb cb, void *arg)
{
    size_t len = strlen(name);
    struct op_lookup *op;

    if (proto_name_check(name, len) < 0)
        return len > PROTO_NAME_MAX ? -ENAMETOOLONG : -EINVAL;
    op = calloc(1, sizeof(*op));
    if (!op)
        return -ENOMEM;
    op->v = v;
    op->parent = parent;
    volume_inode_ref(parent);
    op->cb = cb;
    op->arg = arg;
    memcpy(op->name, name, len + 1);
    op->w.fn = lookup_parent_markers_cb;
    vol_markers_ensure(parent, &op->w);
    return 0;
}

/* ---- getattr, readlink: one id-addressed call ---- */

struct op_simple {
    struct volume *v;
    struct vinode *vi;     /* a reference */
    uint16_t op;
    vol_attr_cb attr_cb;   /* getattr */
    vol_data_cb data_cb;   /* readlink */
    void *arg;
    struct mkwait w;
    struct rcall rc;
    struct getattr_req req; /* also readlink_req: the same single id */
};

static void simple_reply(struct rcall *rc, const void *rep)
{
    struct op_simple *op = vcontainer_of(rc, struct op_simple, rc);

    if (op->op == OP_GETATTR) {
        op->attr_cb(0, &((const struct attr_rep *)rep)->attr, op->arg);
    } else {
        const struct readlink_rep *r = rep;

        op->data_cb(0, (const uint8_t *)r->target, strlen(r->target),
                    op->arg);
    }
}

static void simple_done(struct rcall *rc, int status)
{
    struct op_simple *op = vcontainer_of(rc, struct op_simple, rc);

    if (status < 0) {
        if (op->op == OP_GETATTR)
            op->attr_cb(status, NULL, op->arg);
        else
            op->data_cb(status, NULL, 0, op->arg);
    }
    volume_inode_put(op->vi);
    free(op);
}

static void simple_markers_cb(struct mkwait *w, int status)
{
    struct op_simple *op = vcontainer_of(w, struct op_simple, w);

    if (status < 0) {
        op->rc.on_done = simple_done;
        simple_done(&op->rc, status);
        return;
    }
    op->rc.on_reply = simple_reply;
    op->rc.on_done = simple_done;
    vol_rcall_start(&op->rc, op->v, op->vi, op->op, &op->req, true);
}

static int simple_start(struct volume *v, struct vinode *vi, uint16_t opcode,
                        vol_attr_cb acb, vol_data_cb dcb, void *arg)
{
    struct op_simple *op = calloc(1, sizeof(*op));

    if (!op)
        return -ENOMEM;
    op->v = v;
    op->vi = vi;
    volume_inode_ref(vi);
    op->op = opcode;
    op->attr_cb = acb;
    op->data_cb = dcb;
    op->arg = arg;
    op->req.id = vi->id;
    op->w.fn = simple_markers_cb;
    vol_markers_ensure(vi, &op->w);
    return 0;
}

int volume_getattr(struct volume *v, struct vinode *vi, vol_attr_cb cb,
                   void *arg)
{
    return simple_start(v, vi, OP_GETATTR, cb, NULL, arg);
}

int volume_readlink(struct volume *v, struct vinode *vi, vol_data_cb cb,
                    void *arg)
{
    _Static_assert(sizeof(struct getattr_req) == sizeof(struct readlink_req),
                   "readlink_req is one id like getattr_req");
    return simple_start(v, vi, OP_READLINK, NULL, cb, arg);
}

/* ---- read ---- */

struct op_read {
    struct volume *v;
    struct vinode *vi;   /* a reference */
    vol_data_cb cb;
    void *arg;
    struct mkwait w;
    struct rcall rc;
    struct read_req req;
    uint64_t end;        /* offset + size asked */
    uint8_t *buf;        /* owned: only for reads split in chunks */
    size_t got;
    bool answered;
};

static void read_finish(struct op_read *op, int status)
{
    if (!op->answered) {
        if (status < 0)
            op->cb(status, NULL, 0, op->arg);
        else
            op->cb(0, op->buf, op->got, op->arg);
    }
    free(op->buf);
    volume_inode_put(op->vi);
    free(op);
}

static void read_reply(struct rcall *rc, const void *rep)
{
    struct op_read *op = vcontainer_of(rc, struct op_read, rc);
    const struct read_rep *r = rep;
    uint32_t len = r->data.len > op->req.size ? op->req.size : r->data.len;

    if (!op->buf) {
        /* One chunk: hand the frame's bytes over without a copy. */
        op->answered = true;
        op->cb(0, r->data.data, len, op->arg);
        return;
    }
    memcpy(op->buf + op->got, r->data.data, len);
    op->got += len;
    op->req.offset += len;
    if (len < op->req.size)
        op->end = op->req.offset; /* end of file */
}

static void read_done(struct rcall *rc, int status)
{
    struct op_read *op = vcontainer_of(rc, struct op_read, rc);
    uint64_t left;

    if (status < 0 || op->answered || op->req.offset >= op->end) {
        read_finish(op, status);
        return;
    }
    left = op->end - op->req.offset;
    op->req.size = left > PROTO_MAX_IO ? PROTO_MAX_IO : (uint32_t)left;
    vol_rcall_start(&op->rc, op->v, op->vi, OP_READ, &op->req, true);
}

static void read_markers_cb(struct mkwait *w, int status)
{
    struct op_read *op = vcontainer_of(w, struct op_read, w);

    op->rc.on_reply = read_reply;
    op->rc.on_done = read_done;
    if (status < 0) {
        read_finish(op, status);
        return;
    }
    vol_rcall_start(&op->rc, op->v, op->vi, OP_READ, &op->req, true);
}

int volume_read(struct volume *v, struct vinode *vi, uint64_t off,
                size_t size, vol_data_cb cb, void *arg)
{
    struct op_read *op;

    if (off > INT64_MAX || size > INT64_MAX - off)
        return -EINVAL;
    op = calloc(1, sizeof(*op));
    if (!op)
        return -ENOMEM;
    if (size > PROTO_MAX_IO) {
        op->buf = malloc(size);
        if (!op->buf) {
            free(op);
            return -ENOMEM;
        }
    }
    op->v = v;
    op->vi = vi;
    volume_inode_ref(vi);
    op->cb = cb;
    op->arg = arg;
    op->req.id = vi->id;
    op->req.offset = off;
    op->req.size = size > PROTO_MAX_IO ? PROTO_MAX_IO : (uint32_t)size;
    op->end = off + size;
    op->w.fn = read_markers_cb;
    vol_markers_ensure(vi, &op->w);
    return 0;
}

/* ---- statfs: any up brick ---- */

struct op_statfs {
    struct vinode *root;  /* a reference: rcall picks bricks through it */
    vol_statfs_cb cb;
    void *arg;
    struct rcall rc;
    struct statfs_req req;
};

static void statfs_reply(struct rcall *rc, const void *rep)
{
    struct op_statfs *op = vcontainer_of(rc, struct op_statfs, rc);

    op->cb(0, rep, op->arg);
}

static void statfs_done(struct rcall *rc, int status)
{
    struct op_statfs *op = vcontainer_of(rc, struct op_statfs, rc);

    if (status < 0)
        op->cb(status, NULL, op->arg);
    volume_inode_put(op->root);
    free(op);
}

int volume_statfs(struct volume *v, vol_statfs_cb cb, void *arg)
{
    struct op_statfs *op = calloc(1, sizeof(*op));
    struct rfs_id root = RFS_ROOT_ID;
    int rc;

    if (!op)
        return -ENOMEM;
    rc = volume_inode_get(v, &root, &op->root);
    if (rc < 0) {
        free(op);
        return rc;
    }
    op->cb = cb;
    op->arg = arg;
    op->rc.on_reply = statfs_reply;
    op->rc.on_done = statfs_done;
    vol_rcall_start(&op->rc, v, op->root, OP_STATFS, &op->req, false);
    return 0;
}
