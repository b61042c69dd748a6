/*
 * Pins: POSIX "an open file outlives its last name" on a brick.
 *
 * Design.  A client OPENs an object by id through one connection, and may
 * later READ/WRITE it by id after another client (or itself) removed the
 * last name.  Data lives as long as some fd is open, and the daemon keeps
 * the object's fd in the id cache (ids.c); what used to go wrong is that
 * the name removal also removed the ids/ link and unhashed the cached
 * object, so the next READ by id found nothing (ESTALE at the client).
 *
 * So OPEN pins the object on its connection: the pin holds a reference,
 * which keeps the object hashed, READY and off the LRU (ids.c invariant 1),
 * with its fd open.  When a name removal leaves only the ids/ link and the
 * object is pinned, the link is renamed to .replicafs/orphans/<hex> instead
 * of being unlinked (so st_nlink stays 1: clients see 0, not -1, and an
 * admin sees what is held), and the object stays hashed.  The last unpin
 * (RELEASE, or the connection closing) reaps it: unhash, unlink the orphan
 * link, close the fd.  A crash leaves links in orphans/: startup removes
 * them all (pins_purge_orphans), since no connection survives a restart.
 *
 * CREATE does not pin: the client always OPENs after CREATE and RELEASEs
 * per OPEN, so pinning there too would leak one pin per create.
 *
 * Orphan states (obj.orphan; which function moves it):
 *
 *   NO --pins_orphan(linked)--> MOVING --move_cb ok--> LINKED --reap--> gone
 *    |                             `---move_cb fail--> IDS ----reap--> gone
 *    `---pins_orphan(!linked)--> BARE --reap--> gone
 *   MOVING and the last pin dropped: reap_pending, move_cb reaps (unless
 *   an OPEN that raced the rename pinned it again: pins_add clears it).
 *
 * Invariants:
 *  1. obj.pins == number of connections with a struct pin for it; each such
 *     pin holds exactly one reference on the object.
 *  2. An object with pins > 0 is never unhashed by a name removal
 *     (ops_ns.c asks pins_orphan() first).
 *  3. An orphan is reaped exactly once, and only with pins == 0: when pins
 *     reaches 0 and it is not MOVING, or by move_cb when reap_pending.
 *  4. RELEASE without a pin is a no-op (it is a hint; old clients and
 *     reconnects send RELEASEs for OPENs this connection never saw).
 */
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/id.h"
#include "common/log.h"
#include "idhash.h"
#include "ids.h"
#include "ops.h"
#include "pins.h"
#include "server.h"

struct orphan_op { /* one rename to orphans/ or one reap unlink */
    struct store_op sop;
    struct server *srv;          /* borrowed */
    struct obj *o;               /* referenced (move only) */
    void (*done)(void *arg);     /* move only; may be NULL */
    void *done_arg;
    char from[IDS_PATH_LEN];
    char name[IDS_PATH_LEN];     /* orphans/<hex>, or ids/hh/<hex> to reap */
};

static void orphan_name(const struct rfs_id *id, char out[PINS_ORPHAN_LEN])
{
    rfs_id_to_hex(id, out);
}

static void reap_unlink_cb(struct store_op *sop, int res)
{
    struct orphan_op *op = container_of(sop, struct orphan_op, sop);

    if (res < 0 && res != -ENOENT)
        log_warn("orphans: cannot remove %s: %s", op->name, strerror(-res));
    free(op);
}

/* Invariant 3: unhash, remove the link, drop the caller's reference (the
 * fd closes with it). */
static void reap(struct server *srv, struct obj *o)
{
    struct store *st = &srv->st;
    struct orphan_op *op;
    int dfd = o->orphan == ORPHAN_IDS ? st->ids_fd : st->orphans_fd;
    char path[IDS_PATH_LEN];

    if (o->orphan == ORPHAN_IDS)
        ids_path(&o->id, path);
    else
        orphan_name(&o->id, path);
    csum_forget(srv, &o->id);
    o->reap_pending = false;
    log_debug("pins: %016llx%016llx reaped", (unsigned long long)o->id.hi,
              (unsigned long long)o->id.lo);
    if (o->orphan != ORPHAN_BARE) {
        op = calloc(1, sizeof(*op));
        if (op) {
            op->srv = srv;
            snprintf(op->name, sizeof(op->name), "%s", path);
            store_unlinkat(st, &op->sop, reap_unlink_cb, dfd, op->name, 0);
        } else if (unlinkat(dfd, path, 0) < 0) { /* rare: no memory */
            log_warn("orphans: cannot remove %s: %s", path, strerror(errno));
        }
    }
    o->orphan = ORPHAN_NO;
    ids_forget(&srv->ids, o);
    ids_put(&srv->ids, o);
}

/* Drop one pin's reference on o (the pin record is gone already). */
static void unpin_obj(struct server *srv, struct obj *o)
{
    assert(o->pins > 0);
    if (--o->pins == 0 && o->orphan != ORPHAN_NO) {
        if (o->orphan == ORPHAN_MOVING) {
            o->reap_pending = true; /* move_cb reaps */
            ids_put(&srv->ids, o);
            return;
        }
        reap(srv, o);
        return;
    }
    ids_put(&srv->ids, o);
}

/* ---- the per-connection table ---- */

void pins_init(struct pins *p)
{
    memset(p, 0, sizeof(*p));
}

static struct pin **slot(struct pins *p, const struct rfs_id *id)
{
    struct pin **pp = &p->tab[rfs_id_hash(id) & (p->nbuckets - 1)];

    while (*pp && !rfs_id_eq(&(*pp)->o->id, id))
        pp = &(*pp)->next;
    return pp;
}

static int grow(struct pins *p)
{
    size_t n = p->nbuckets ? p->nbuckets * 2 : 16;
    struct pin **tab = calloc(n, sizeof(*tab));

    if (!tab)
        return p->nbuckets ? 0 : -ENOMEM; /* longer chains are still right */
    IDHASH_REHASH(struct pin, p->tab, p->nbuckets, tab, n, next, o->id);
    free(p->tab);
    p->tab = tab;
    p->nbuckets = n;
    return 0;
}

int pins_add(struct server *srv, struct pins *p, struct obj *o)
{
    struct pin **pp, *x;

    (void)srv;
    if (p->count >= p->nbuckets && grow(p) < 0)
        return -ENOMEM;
    pp = slot(p, &o->id);
    if (*pp) {
        (*pp)->count++;
        return 0;
    }
    x = calloc(1, sizeof(*x));
    if (!x)
        return -ENOMEM;
    x->o = o;
    x->count = 1;
    log_debug("pins: %016llx%016llx pinned (%u conns)",
              (unsigned long long)o->id.hi, (unsigned long long)o->id.lo,
              o->pins + 1);
    ids_ref(o); /* invariant 1 */
    o->pins++;
    o->reap_pending = false; /* an OPEN racing the move: keep it */
    *pp = x;
    p->count++;
    return 0;
}

int pins_drop(struct server *srv, struct pins *p, const struct rfs_id *id)
{
    struct pin **pp, *x;
    struct obj *o;

    if (!p->tab)
        return -ENOENT;
    pp = slot(p, id);
    if (!*pp)
        return -ENOENT; /* invariant 4 */
    x = *pp;
    if (--x->count > 0)
        return 0;
    *pp = x->next;
    p->count--;
    o = x->o;
    free(x);
    unpin_obj(srv, o);
    return 0;
}

void pins_drop_all(struct server *srv, struct pins *p)
{
    for (size_t i = 0; i < p->nbuckets; i++) {
        while (p->tab[i]) {
            struct pin *x = p->tab[i];
            struct obj *o = x->o;

            p->tab[i] = x->next;
            free(x);
            unpin_obj(srv, o);
        }
    }
    free(p->tab);
    pins_init(p);
}

/* ---- becoming an orphan ---- */

static void move_cb(struct store_op *sop, int res)
{
    struct orphan_op *op = container_of(sop, struct orphan_op, sop);
    struct server *srv = op->srv;
    struct obj *o = op->o;

    if (res < 0)
        log_err("orphans: cannot move ids/%s: %s; it stays until unpinned",
                op->from, strerror(-res));
    void (*done)(void *arg) = op->done;
    void *arg = op->done_arg;

    o->orphan = res < 0 ? ORPHAN_IDS : ORPHAN_LINKED;
    free(op);
    if (o->reap_pending && o->pins == 0) /* not pinned again meanwhile */
        reap(srv, o); /* consumes our reference */
    else
        ids_put(&srv->ids, o);
    if (done)
        done(arg);
}

bool pins_orphan(struct server *srv, struct obj *o, bool linked,
                 void (*done)(void *arg), void *arg)
{
    struct orphan_op *op = NULL;

    if (!o || o->pins == 0)
        return false;
    log_debug("pins: %016llx%016llx lost its last name while open%s",
              (unsigned long long)o->id.hi, (unsigned long long)o->id.lo,
              linked ? "" : " (no link left)");
    if (o->orphan != ORPHAN_NO || !linked ||
        !(op = calloc(1, sizeof(*op)))) {
        /* Already one (a second drop of the same object); or no link left;
         * or no memory: keep the link where it is, the reap removes it. */
        if (o->orphan == ORPHAN_NO)
            o->orphan = linked ? ORPHAN_IDS : ORPHAN_BARE;
        if (done)
            done(arg);
        return true;
    }
    op->srv = srv;
    op->o = o;
    op->done = done;
    op->done_arg = arg;
    ids_ref(o); /* held across the rename */
    ids_path(&o->id, op->from);
    orphan_name(&o->id, op->name);
    o->orphan = ORPHAN_MOVING;
    store_renameat(&srv->st, &op->sop, move_cb, srv->st.ids_fd, op->from,
                   srv->st.orphans_fd, op->name, 0);
    return true;
}

int pins_purge_orphans(int orphans_fd)
{
    int fd = openat(orphans_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct dirent *de;
    DIR *d;
    int n = 0;

    if (fd < 0)
        return -errno;
    d = fdopendir(fd);
    if (!d) {
        close(fd);
        return -errno;
    }
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (unlinkat(orphans_fd, de->d_name, 0) == 0)
            n++;
        else
            log_warn("orphans: cannot purge %s: %s", de->d_name,
                     strerror(errno));
    }
    closedir(d);
    return n;
}
