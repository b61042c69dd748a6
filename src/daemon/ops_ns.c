/*
 * Namespace changes of existing objects: LINK, UNLINK, RMDIR, RENAME.
 *
 * Keeping ids/ right (brick-layout.md):
 *  1. A non-directory's ids/ hard link goes when it is the last link left
 *     (st_nlink == 1 after the unlink, or after being renamed over).
 *  2. A directory's ids/ symlink goes with rmdir (or when an empty directory
 *     is renamed over), and is rewritten when the directory moves: written
 *     in tmp/ first, then renamed over the old one, so it is never absent.
 *  3. ".replicafs" in the root cannot be the source (ENOENT) or the target
 *     (EPERM) of anything.
 *  4. An object some connection has OPEN (pinned, pins.c) keeps working
 *     after rule 1 applies: its ids/ link moves to orphans/ instead of
 *     going, and it stays in the id cache until the last RELEASE.
 *  5. When the ids/ entry goes (rules 1, 2), the object's heal index entry
 *     (.replicafs/heal/<id>) goes too, after it: nothing can address the
 *     id any more, so nothing could ever clear its markers.  An orphan
 *     keeps its entry (it can still be written); HEAL_LIST drops the entry
 *     of an id that resolves nowhere (healidx.c), which covers an orphan
 *     once it is reaped, and a crash between the two unlinks.
 *  6. RMDIR of a directory that holds only crash debris (names without an
 *     id: invisible to clients, ops_create.c invariant 1) removes the
 *     debris and the directory, once, unless this brick is making a name
 *     in it right now; anything with an id keeps it ENOTEMPTY.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/id.h"
#include "common/log.h"
#include "leases.h"
#include "ops.h"
#include "pins.h"
#include "server.h"

/* ---- LINK ---- */

struct op_link {
    struct get1 g;
    struct ids_wait w2;
    struct store_op sop;
    struct req *r;
    struct obj *o;               /* referenced */
    struct obj *np;              /* referenced */
    char idpath[IDS_PATH_LEN];
};

static void link_finish(struct op_link *op, int rc)
{
    struct req *r = op->r;
    struct server *srv = r->srv;
    const struct link_req *m = REQ_MSG(r, link_req);

    if (op->np && rc == 0)
        server_inval(srv, r->c, &op->o->id, INVAL_ATTR | INVAL_ENTRY,
                     &op->np->id, m->newname, NULL);
    if (op->np)
        ids_put(&srv->ids, op->np);
    if (rc == 0) {
        reply_attr_of(r, op->o); /* consumes the reference */
    } else {
        ids_put(&srv->ids, op->o);
        req_reply(r, rc, NULL);
    }
    free(op);
}

static void link_done_cb(struct store_op *sop, int res)
{
    link_finish(container_of(sop, struct op_link, sop), res);
}

static void link_np_cb(struct ids_wait *w, struct obj *np, int status)
{
    struct op_link *op = container_of(w, struct op_link, w2);
    const struct link_req *m = REQ_MSG(op->r, link_req);
    struct server *srv = op->r->srv;

    if (status < 0) {
        link_finish(op, status);
        return;
    }
    op->np = np;
    if (np->type != S_IFDIR) {
        link_finish(op, -ENOTDIR);
        return;
    }
    if (is_meta_name(srv, np, m->newname)) {
        link_finish(op, -EPERM);
        return;
    }
    /* Link the ids/ entry: it is the object itself, and linkat without
     * AT_SYMLINK_FOLLOW links a symlink, not its target. */
    ids_path(&op->o->id, op->idpath);
    store_linkat(&srv->st, &op->sop, link_done_cb, srv->st.ids_fd, op->idpath,
                 np->fd, m->newname, 0);
}

static void link_obj_cb(struct get1 *g, struct obj *o)
{
    struct op_link *op = container_of(g, struct op_link, g);

    if (!o) {
        free(op);
        return;
    }
    op->o = o;
    if (o->type == S_IFDIR) {
        link_finish(op, -EPERM); /* no hard links to directories */
        return;
    }
    ids_get(&op->r->srv->ids, &REQ_MSG(op->r, link_req)->newparent, &op->w2,
            link_np_cb);
}

void op_link(struct req *r)
{
    struct op_link *op = calloc(1, sizeof(*op));

    if (!op) {
        req_reply(r, -ENOMEM, NULL);
        return;
    }
    op->r = r;
    get1_start(&op->g, r, &REQ_MSG(r, link_req)->id, link_obj_cb);
}

/* ---- drop an ids/ entry when its object lost its last name ---- */

struct idsdrop;
typedef void (*idsdrop_cb)(struct idsdrop *d);
struct idsdrop {
    struct store_op sop;
    struct server *srv;          /* borrowed */
    struct rfs_id id;
    mode_t type;
    int fd;                      /* borrowed: the object's open fd */
    idsdrop_cb cb;
    struct healidx_op hop;       /* rule 5 */
    char idpath[IDS_PATH_LEN];
    struct statx stx;
};

/* A referenced cached object of id, or NULL; no resolve. */
static struct obj *cached(struct server *srv, const struct rfs_id *id)
{
    return ids_find(&srv->ids, id);
}

static void idsdrop_unindexed_cb(struct healidx_op *hop, int status)
{
    struct idsdrop *d = container_of(hop, struct idsdrop, hop);
    char hex[RFS_ID_HEX_LEN + 1];

    if (status < 0) { /* HEAL_LIST drops it later (rule 5) */
        rfs_id_to_hex(&d->id, hex);
        log_warn("heal index: cannot remove %s: %s", hex, strerror(-status));
    }
    d->cb(d);
}

static void idsdrop_unlink_cb(struct store_op *sop, int res)
{
    struct idsdrop *d = container_of(sop, struct idsdrop, sop);
    struct server *srv = d->srv;
    struct obj *o = d->type == S_IFDIR ? NULL : cached(srv, &d->id);
    bool orphan;

    if (res < 0 && res != -ENOENT)
        log_warn("ids: cannot remove %s: %s", d->idpath, strerror(-res));
    /* Rule 4: an OPEN that came in while the unlink ran; no link left. */
    orphan = pins_orphan(srv, o, false, NULL, NULL);
    if (!orphan) {
        ids_forget_id(&srv->ids, &d->id);
        if (d->type != S_IFDIR)
            csum_forget(srv, &d->id);
    }
    if (o)
        ids_put(&srv->ids, o);
    /* Rule 5; an empty index (the usual case) costs nothing. */
    if (!orphan && (res == 0 || res == -ENOENT) && srv->heal.count) {
        healidx_del(&srv->heal, &d->hop, &d->id, idsdrop_unindexed_cb);
        return;
    }
    d->cb(d);
}

static void idsdrop_kept_cb(void *arg)
{
    struct idsdrop *d = arg;

    d->cb(d);
}

static void idsdrop_stat_cb(struct store_op *sop, int res)
{
    struct idsdrop *d = container_of(sop, struct idsdrop, sop);
    struct server *srv = d->srv;
    struct obj *o;
    bool kept;

    if (res < 0 || d->stx.stx_nlink > 1) { /* other names remain */
        d->cb(d);
        return;
    }
    o = cached(srv, &d->id);
    if (d->type == S_IFREG && leases_held(srv, &d->id)) {
        /* Opens served from a read lease hold no pin: the leases pin it
         * until each holder has OPENed what it has open (leases.c). */
        if (!o) {
            int fd = fcntl(d->fd, F_DUPFD_CLOEXEC, 0);

            o = fd >= 0 ? ids_insert_take(&srv->ids, &d->id, fd, S_IFREG,
                                          false)
                        : NULL;
            if (o)
                ids_ref(o);
        }
        if (o)
            leases_pin(srv, &d->id, o);
        else
            log_warn("leases: cannot keep an unlinked file for its "
                     "lease holders: %s", d->idpath);
    }
    kept = pins_orphan(srv, o, true, idsdrop_kept_cb, d); /* rule 4 */
    if (o)
        ids_put(&srv->ids, o);
    if (kept)
        return; /* idsdrop_kept_cb ends d once the link moved */
    store_unlinkat(&srv->st, &d->sop, idsdrop_unlink_cb, srv->st.ids_fd,
                   d->idpath, 0);
}

/* The object (type, fd) just lost a name: remove its ids/ entry if that is
 * all that is left (rule 1) or if it is a directory (rule 2). */
static void idsdrop_start(struct idsdrop *d, struct server *srv,
                          const struct rfs_id *id, mode_t type, int fd,
                          idsdrop_cb cb)
{
    d->srv = srv;
    d->id = *id;
    d->type = type;
    d->fd = fd;
    d->cb = cb;
    ids_path(id, d->idpath);
    if (type == S_IFDIR) {
        store_unlinkat(&srv->st, &d->sop, idsdrop_unlink_cb, srv->st.ids_fd,
                       d->idpath, 0);
        return;
    }
    store_statx(&srv->st, &d->sop, idsdrop_stat_cb, fd, "",
                AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, &d->stx);
}

/* ---- UNLINK and RMDIR ---- */

struct op_unlink {
    struct get1 g;
    struct probe p;
    struct store_op sop;
    struct store_work w;         /* the debris sweep (rmdir) */
    struct idsdrop drop;
    struct req *r;
    struct obj *parent;          /* referenced */
    bool rmdir;
    bool swept;                  /* rule 6: once */
    int rc;                      /* the sweep's result */
    int fd;                      /* the victim, owned */
};

static void unlink_finish(struct op_unlink *op, int rc)
{
    struct req *r = op->r;
    struct server *srv = r->srv;

    if (rc == 0)
        server_inval(srv, r->c, &op->p.id, INVAL_ATTR | INVAL_ENTRY,
                     &op->parent->id, REQ_MSG(r, unlink_req)->name,
                     op->rmdir ? NULL : r);
    if (op->fd >= 0)
        store_close_fd(&srv->st, op->fd);
    ids_put(&srv->ids, op->parent);
    free(op);
    req_reply(r, rc, NULL);
}

static void unlink_dropped_cb(struct idsdrop *d)
{
    unlink_finish(container_of(d, struct op_unlink, drop), 0);
}

static void unlink_done_cb(struct store_op *sop, int res);

/*
 * On the pool: remove what a directory holds if all of it is crash debris
 * (names without trusted.rfs.id, ops_create.c invariant 1): invisible to
 * clients, it must not make their rmdir fail.  Anything with an id, or a
 * debris directory that is not empty, leaves the directory alone.
 */
static void sweep_work(struct store_work *w)
{
    struct op_unlink *op = container_of(w, struct op_unlink, w);
    const char *name = REQ_MSG(op->r, unlink_req)->name;
    int dfd = openat(op->parent->fd, name,
                     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    struct dirent *de;
    DIR *d;

    op->rc = -ENOTEMPTY;
    if (dfd < 0)
        return;
    d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return;
    }
    /* Two rounds: look first, remove only if everything is debris. */
    for (int round = 0; round < 2; round++) {
        rewinddir(d);
        while ((de = readdir(d)) != NULL) {
            struct stat st;

            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            if (ids_debris_at(dfd, de->d_name, &st) != 1)
                goto out; /* an object of ours: really not empty */
            if (round == 1 &&
                unlinkat(dfd, de->d_name,
                         S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0) < 0)
                goto out;
        }
    }
    op->rc = 0;
out:
    closedir(d);
}

static void sweep_done(struct store_work *w)
{
    struct op_unlink *op = container_of(w, struct op_unlink, w);
    const struct unlink_req *m = REQ_MSG(op->r, unlink_req);

    if (op->rc < 0) {
        unlink_finish(op, op->rc);
        return;
    }
    log_warn("rmdir '%s': removed names without an id left by a crash",
             m->name);
    store_unlinkat(&op->r->srv->st, &op->sop, unlink_done_cb, op->parent->fd,
                   m->name, AT_REMOVEDIR);
}

static void unlink_done_cb(struct store_op *sop, int res)
{
    struct op_unlink *op = container_of(sop, struct op_unlink, sop);

    if (res == -ENOTEMPTY && op->rmdir && !op->swept &&
        !ops_creating_in(op->r->srv, &op->p.id)) { /* rule 6 */
        op->swept = true;
        store_queue_work(&op->r->srv->st, &op->w, sweep_work, sweep_done);
        return;
    }
    if (res < 0) {
        unlink_finish(op, res);
        return;
    }
    idsdrop_start(&op->drop, op->r->srv, &op->p.id, op->p.type, op->fd,
                  unlink_dropped_cb);
}

static void unlink_probe_cb(struct probe *p, int status)
{
    struct op_unlink *op = container_of(p, struct op_unlink, p);
    const struct unlink_req *m = REQ_MSG(op->r, unlink_req);

    if (status < 0) {
        unlink_finish(op, status);
        return;
    }
    op->fd = p->fd;
    if (op->rmdir != (p->type == S_IFDIR)) {
        unlink_finish(op, op->rmdir ? -ENOTDIR : -EISDIR);
        return;
    }
    store_unlinkat(&op->r->srv->st, &op->sop, unlink_done_cb, op->parent->fd,
                   m->name, op->rmdir ? AT_REMOVEDIR : 0);
}

static void unlink_parent_cb(struct get1 *g, struct obj *o)
{
    struct op_unlink *op = container_of(g, struct op_unlink, g);
    const struct unlink_req *m = REQ_MSG(op->r, unlink_req);
    struct server *srv = op->r->srv;

    if (!o) {
        free(op);
        return;
    }
    op->parent = o;
    if (o->type != S_IFDIR) {
        unlink_finish(op, -ENOTDIR);
        return;
    }
    if (is_meta_name(srv, o, m->name)) { /* rule 3 */
        unlink_finish(op, -ENOENT);
        return;
    }
    probe_start(&op->p, &srv->st, o->fd, m->name, unlink_probe_cb);
}

static void unlink_start(struct req *r, bool rmdir)
{
    struct op_unlink *op = calloc(1, sizeof(*op));

    if (!op) {
        req_reply(r, -ENOMEM, NULL);
        return;
    }
    op->r = r;
    op->rmdir = rmdir;
    op->fd = -1;
    get1_start(&op->g, r, &REQ_MSG(r, unlink_req)->parent, unlink_parent_cb);
}

void op_unlink(struct req *r)
{
    unlink_start(r, false);
}

void op_rmdir(struct req *r)
{
    unlink_start(r, true);
}

/* ---- RENAME ----
 *
 *   parent --> newparent --> probe source --> probe target (may be absent)
 *     --> renameat2 --> [dir moved: symlink in tmp/, rename over ids/ link]
 *     --> [a target was replaced: idsdrop] --> reply
 */

struct op_rename {
    struct get1 g;
    struct ids_wait w2;
    struct probe p;              /* source, then target */
    struct store_op sop;
    struct idsdrop drop;
    struct req *r;
    struct obj *sp;              /* referenced: source parent */
    struct obj *dp;              /* referenced: target parent */
    struct rfs_id sid;
    mode_t stype;
    int sfd;                     /* owned */
    bool victim;                 /* the target name existed (with an id) */
    struct rfs_id vid;
    mode_t vtype;
    int vfd;                     /* owned */
    char idpath[IDS_PATH_LEN];
    char tmpname[80];
    char dirlink[PROTO_PATH_MAX];
};

static void rename_finish(struct op_rename *op, int rc)
{
    struct req *r = op->r;
    struct server *srv = r->srv;
    const struct rename_req *m = REQ_MSG(r, rename_req);

    if (rc == 0) {
        server_inval(srv, r->c, &op->sid, INVAL_ENTRY, &op->sp->id, m->name,
                     NULL);
        server_inval(srv, r->c, &op->sid, INVAL_ENTRY, &op->dp->id, m->newname,
                     NULL);
        if (op->victim) /* its opens from a lease must end */
            server_inval(srv, r->c, &op->vid, INVAL_ATTR, NULL, NULL, r);
    }
    if (op->sfd >= 0)
        store_close_fd(&srv->st, op->sfd);
    if (op->vfd >= 0)
        store_close_fd(&srv->st, op->vfd);
    if (op->sp)
        ids_put(&srv->ids, op->sp);
    if (op->dp)
        ids_put(&srv->ids, op->dp);
    free(op);
    req_reply(r, rc, NULL);
}

static void rename_dropped_cb(struct idsdrop *d)
{
    rename_finish(container_of(d, struct op_rename, drop), 0);
}

static void rename_victim(struct op_rename *op)
{
    if (!op->victim || rfs_id_eq(&op->vid, &op->sid)) {
        rename_finish(op, 0); /* nothing replaced (or a link onto itself) */
        return;
    }
    idsdrop_start(&op->drop, op->r->srv, &op->vid, op->vtype, op->vfd,
                  rename_dropped_cb);
}

static void rename_relinked_cb(struct store_op *sop, int res)
{
    struct op_rename *op = container_of(sop, struct op_rename, sop);

    if (res < 0) /* the rename is done; the dir is found again by LOOKUP */
        log_err("rename: cannot update ids/%s: %s", op->idpath, strerror(-res));
    rename_victim(op);
}

static void rename_tmplink_cb(struct store_op *sop, int res)
{
    struct op_rename *op = container_of(sop, struct op_rename, sop);
    struct store *st = &op->r->srv->st;

    if (res < 0) {
        rename_relinked_cb(sop, res);
        return;
    }
    /* Rule 2: atomic replace, the ids/ link is never missing. */
    store_renameat(st, &op->sop, rename_relinked_cb, st->tmp_fd, op->tmpname,
                   st->ids_fd, op->idpath, 0);
}

static void rename_done_cb(struct store_op *sop, int res)
{
    struct op_rename *op = container_of(sop, struct op_rename, sop);
    const struct rename_req *m = REQ_MSG(op->r, rename_req);
    struct store *st = &op->r->srv->st;
    char hex[RFS_ID_HEX_LEN + 1];

    if (res < 0) {
        rename_finish(op, res);
        return;
    }
    if (op->stype != S_IFDIR) {
        rename_victim(op);
        return;
    }
    ids_path(&op->sid, op->idpath);
    rfs_id_to_hex(&op->sid, hex);
    snprintf(op->tmpname, sizeof(op->tmpname), "dirlink.%s.%llx", hex,
             (unsigned long long)uv_hrtime());
    ids_format_dirlink(&op->dp->id, m->newname, op->dirlink);
    store_symlinkat(st, &op->sop, rename_tmplink_cb, op->dirlink, st->tmp_fd,
                    op->tmpname);
}

static void rename_target_cb(struct probe *p, int status)
{
    struct op_rename *op = container_of(p, struct op_rename, p);
    const struct rename_req *m = REQ_MSG(op->r, rename_req);

    if (status < 0 && status != -ENOENT) {
        rename_finish(op, status);
        return;
    }
    if (status == 0) {
        op->victim = true;
        op->vid = p->id;
        op->vtype = p->type;
        op->vfd = p->fd;
    }
    store_renameat(&op->r->srv->st, &op->sop, rename_done_cb, op->sp->fd,
                   m->name, op->dp->fd, m->newname,
                   (m->flags & RENAME_FLAG_NOREPLACE) ? RENAME_NOREPLACE : 0);
}

static void rename_source_cb(struct probe *p, int status)
{
    struct op_rename *op = container_of(p, struct op_rename, p);
    const struct rename_req *m = REQ_MSG(op->r, rename_req);

    if (status < 0) {
        rename_finish(op, status);
        return;
    }
    op->sid = p->id;
    op->stype = p->type;
    op->sfd = p->fd;
    probe_start(&op->p, &op->r->srv->st, op->dp->fd, m->newname,
                rename_target_cb);
}

static void rename_dp_cb(struct ids_wait *w, struct obj *dp, int status)
{
    struct op_rename *op = container_of(w, struct op_rename, w2);
    const struct rename_req *m = REQ_MSG(op->r, rename_req);
    struct server *srv = op->r->srv;

    if (status < 0) {
        rename_finish(op, status);
        return;
    }
    op->dp = dp;
    if (dp->type != S_IFDIR) {
        rename_finish(op, -ENOTDIR);
        return;
    }
    if (is_meta_name(srv, dp, m->newname)) { /* rule 3 */
        rename_finish(op, -EPERM);
        return;
    }
    probe_start(&op->p, &srv->st, op->sp->fd, m->name, rename_source_cb);
}

static void rename_sp_cb(struct get1 *g, struct obj *sp)
{
    struct op_rename *op = container_of(g, struct op_rename, g);
    const struct rename_req *m = REQ_MSG(op->r, rename_req);
    struct server *srv = op->r->srv;

    if (!sp) {
        free(op);
        return;
    }
    op->sp = sp;
    if (sp->type != S_IFDIR) {
        rename_finish(op, -ENOTDIR);
        return;
    }
    if (is_meta_name(srv, sp, m->name)) { /* rule 3 */
        rename_finish(op, -ENOENT);
        return;
    }
    ids_get(&srv->ids, &m->newparent, &op->w2, rename_dp_cb);
}

void op_rename(struct req *r)
{
    struct op_rename *op = calloc(1, sizeof(*op));

    if (!op) {
        req_reply(r, -ENOMEM, NULL);
        return;
    }
    op->r = r;
    op->sfd = op->vfd = -1;
    get1_start(&op->g, r, &REQ_MSG(r, rename_req)->parent, rename_sp_cb);
}
