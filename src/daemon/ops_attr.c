/*
 * Attribute and lookup operations: PING, LOOKUP, GETATTR, SETATTR, OPEN,
 * OPENX, READLINK, STATFS, RELEASE.
 *
 * SETATTR, READLINK and STATFS run on the thread pool (io_uring has no
 * fchmod/fchown/ftruncate/utimensat/readlink/statfs); the others are
 * io_uring step machines.  Each op holds a reference on its object while
 * a pool thread or an SQE uses the fd (ids.c invariant 1).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "common/log.h"
#include "conn.h"
#include "leases.h"
#include "ops.h"
#include "pins.h"

/* ---- PING ---- */

void op_ping(struct req *r)
{
    struct ping_rep rep = {.stamp = REQ_MSG(r, ping_req)->stamp};

    req_reply(r, 0, &rep);
}

/* ---- RELEASE: the client closed one handle it OPENed here ---- */

void op_release(struct req *r)
{
    const struct rfs_id *id = &REQ_MSG(r, release_req)->id;

    if (r->c)
        pins_drop(r->srv, &r->c->pins, id); /* -ENOENT: no pin, a hint */
    ids_cool(&r->srv->ids, id);
    req_reply(r, 0, NULL);
}

void op_lease_ack(struct req *r)
{
    if (r->c)
        leases_ack(r->srv, r->c, &REQ_MSG(r, lease_ack_req)->id);
    req_reply(r, 0, NULL);
}

/* ---- GETATTR ---- */

struct op_getattr {
    struct get1 g;
};

static void getattr_obj_cb(struct get1 *g, struct obj *o)
{
    struct req *r = g->r;

    free(g);
    if (o)
        reply_attr_of(r, o);
}

void op_getattr(struct req *r)
{
    struct op_getattr *op = malloc(sizeof(*op));

    if (!op) {
        req_reply(r, -ENOMEM, NULL);
        return;
    }
    get1_start(&op->g, r, &REQ_MSG(r, getattr_req)->id, getattr_obj_cb);
}

/* ---- OPEN: the brick opens lazily; this checks existence and type ---- */

/* Check o can be opened so, and pin a regular file for this connection:
 * it stays usable by id after its last name goes, until RELEASE
 * (pins.c).  0 or -errno. */
static int open_pin(struct req *r, struct obj *o)
{
    uint32_t acc = REQ_MSG(r, open_req)->flags & O_ACCMODE;

    if (o->type == S_IFDIR && acc != O_RDONLY)
        return -EISDIR;
    if (o->type == S_IFLNK)
        return -ELOOP; /* clients resolve symlinks themselves */
    if (o->type == S_IFREG && r->c)
        return pins_add(r->srv, &r->c->pins, o);
    return 0;
}

static void open_obj_cb(struct get1 *g, struct obj *o)
{
    struct req *r = g->r;
    int rc;

    free(g);
    if (!o)
        return;
    rc = open_pin(r, o);
    if (rc < 0) {
        ids_put(&r->srv->ids, o);
        req_reply(r, rc, NULL);
        return;
    }
    reply_attr_of(r, o);
}

void op_open(struct req *r)
{
    struct get1 *g = malloc(sizeof(*g));

    if (!g) {
        req_reply(r, -ENOMEM, NULL);
        return;
    }
    get1_start(g, r, &REQ_MSG(r, open_req)->id, open_obj_cb);
}

/* ---- OPENX: OPEN, then the markers and the attributes, one reply ---- */

struct op_openx {
    struct get1 g;
    struct markers_read mr;
    struct store_op sop;
    struct obj *o;               /* referenced */
    bool pinned;                 /* a failure after the pin undoes it */
    struct statx stx;
    struct openx_rep rep;
};

static void openx_finish(struct op_openx *op, int rc)
{
    struct req *r = op->g.r;
    struct server *srv = r->srv;

    if (rc < 0 && op->pinned)
        (void)pins_drop(srv, &r->c->pins, &op->o->id);
    req_reply(r, rc, &op->rep);
    ids_put(&srv->ids, op->o);
    free(op);
}

static void openx_stat_cb(struct store_op *sop, int res)
{
    struct op_openx *op = container_of(sop, struct op_openx, sop);

    if (res == 0)
        attr_from_statx(&op->rep.attr, &op->o->id, &op->stx);
    openx_finish(op, res);
}

static void openx_markers_cb(struct markers_read *mr, int rc,
                             const struct xattrop_rep *mk)
{
    struct op_openx *op = container_of(mr, struct op_openx, mr);

    if (rc < 0) {
        openx_finish(op, rc);
        return;
    }
    op->rep.dirty = mk->dirty;
    op->rep.npending = mk->npending;
    memcpy(op->rep.pending, mk->pending, sizeof(op->rep.pending));
    op->rep.suspect = mk->suspect;
    /* The attributes after the markers: a change that the markers show
     * done is in them too. */
    store_statx(&op->g.r->srv->st, &op->sop, openx_stat_cb, op->o->fd, "",
                AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, &op->stx);
}

static void openx_obj_cb(struct get1 *g, struct obj *o)
{
    struct op_openx *op = container_of(g, struct op_openx, g);
    struct req *r = g->r;
    int rc;

    if (!o) {
        free(op);
        return;
    }
    op->o = o;
    rc = open_pin(r, o);
    if (rc < 0) {
        openx_finish(op, rc);
        return;
    }
    op->pinned = o->type == S_IFREG && r->c;
    markers_read(r, o, &op->mr, openx_markers_cb);
}

void op_openx(struct req *r)
{
    const struct open_req *m = REQ_MSG(r, open_req);
    struct op_openx *op = calloc(1, sizeof(*op));

    if (!op) {
        req_reply(r, -ENOMEM, NULL);
        return;
    }
    /* Granted before the attributes are read: a change that ends while
     * this runs recalls it (leases.c).  Refused, the INVAL says so ahead
     * of the reply. */
    if ((m->flags & OPEN_LEASE) && r->c && r->c->version >= 3 &&
        leases_grant(r->srv, r->c, &m->id) < 0)
        leases_refuse(r->srv, r->c, &m->id);
    get1_start(&op->g, r, &REQ_MSG(r, open_req)->id, openx_obj_cb);
}

/* ---- SETATTR (thread pool) ---- */

struct op_setattr {
    struct get1 g;
    struct store_work w;
    struct req *r;
    struct obj *o;               /* referenced */
    int rc;
    bool sums_begun;             /* a truncate: csum_write_end at done */
    struct statx stx;
};

static struct timespec setattr_time(uint32_t valid, uint32_t set,
                                    uint32_t now, const struct proto_time *t)
{
    if (valid & now)
        return (struct timespec){.tv_nsec = UTIME_NOW};
    if (valid & set)
        return (struct timespec){.tv_sec = t->sec, .tv_nsec = t->nsec};
    return (struct timespec){.tv_nsec = UTIME_OMIT};
}

static int setattr_owner_mode(const struct obj *o, const struct setattr_req *m,
                              const char *proc)
{
    uid_t uid = (m->valid & SETATTR_UID) ? m->uid : (uid_t)-1;
    gid_t gid = (m->valid & SETATTR_GID) ? m->gid : (gid_t)-1;

    /* chown first: it may clear set-id bits that a chmod then sets. */
    if ((m->valid & (SETATTR_UID | SETATTR_GID)) &&
        fchownat(o->fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
        return -errno;
    if (!(m->valid & SETATTR_MODE) || o->type == S_IFLNK)
        return 0; /* symlinks have no mode of their own */
    if (o->opath ? chmod(proc, m->mode & 07777) < 0
                 : fchmod(o->fd, m->mode & 07777) < 0)
        return -errno;
    return 0;
}

static int setattr_size_times(const struct obj *o, const struct setattr_req *m,
                              const char *proc)
{
    struct timespec ts[2];

    if (m->valid & SETATTR_SIZE) {
        if (o->type == S_IFDIR)
            return -EISDIR;
        if (o->type != S_IFREG)
            return -EINVAL;
        if (ftruncate(o->fd, (off_t)m->size) < 0)
            return -errno;
    }
    if (!(m->valid & (SETATTR_ATIME | SETATTR_MTIME | SETATTR_ATIME_NOW |
                      SETATTR_MTIME_NOW)))
        return 0;
    ts[0] = setattr_time(m->valid, SETATTR_ATIME, SETATTR_ATIME_NOW, &m->atime);
    ts[1] = setattr_time(m->valid, SETATTR_MTIME, SETATTR_MTIME_NOW, &m->mtime);
    /* An O_PATH fd takes no futimens; /proc/self/fd/N names the inode itself
     * (for a symlink too: the magic link is not followed further). */
    if (o->opath ? utimensat(AT_FDCWD, proc, ts, 0) < 0 : futimens(o->fd, ts) < 0)
        return -errno;
    return 0;
}

static void setattr_work(struct store_work *w)
{
    struct op_setattr *op = container_of(w, struct op_setattr, w);
    const struct setattr_req *m = REQ_MSG(op->r, setattr_req);
    char proc[64];

    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", op->o->fd);
    op->rc = setattr_owner_mode(op->o, m, proc);
    if (op->rc == 0)
        op->rc = setattr_size_times(op->o, m, proc);
    if (op->rc == 0 &&
        statx(op->o->fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW,
              STATX_BASIC_STATS, &op->stx) < 0)
        op->rc = -errno;
}

static void setattr_done(struct store_work *w)
{
    struct op_setattr *op = container_of(w, struct op_setattr, w);
    struct server *srv = op->r->srv;
    struct attr_rep rep;

    if (op->sums_begun)
        csum_write_end(srv, op->o);
    if (op->rc == 0) {
        attr_from_statx(&rep.attr, &op->o->id, &op->stx);
        server_inval(op->r->srv, op->r->c, &op->o->id, INVAL_ATTR |
                     ((REQ_MSG(op->r, setattr_req)->valid & SETATTR_SIZE)
                          ? INVAL_DATA : 0), NULL, NULL, op->r);
    }
    req_reply(op->r, op->rc, &rep);
    ids_put(&srv->ids, op->o);
    free(op);
}

static void setattr_obj_cb(struct get1 *g, struct obj *o)
{
    struct op_setattr *op = container_of(g, struct op_setattr, g);

    if (!o) {
        free(op);
        return;
    }
    op->o = o;
    if ((REQ_MSG(op->r, setattr_req)->valid & SETATTR_SIZE) &&
        o->type == S_IFREG) { /* blocks from the new end on change */
        csum_write_begin(op->r->srv, o, REQ_MSG(op->r, setattr_req)->size,
                         CSUM_TO_END);
        op->sums_begun = true;
    }
    store_queue_work(&op->r->srv->st, &op->w, setattr_work, setattr_done);
}

void op_setattr(struct req *r)
{
    struct op_setattr *op = calloc(1, sizeof(*op));

    if (!op) {
        req_reply(r, -ENOMEM, NULL);
        return;
    }
    op->r = r;
    get1_start(&op->g, r, &REQ_MSG(r, setattr_req)->id, setattr_obj_cb);
}

/* ---- READLINK (thread pool: io_uring has no readlink) ---- */

struct op_readlink {
    struct get1 g;
    struct store_work w;
    struct req *r;
    struct obj *o;               /* referenced */
    ssize_t n;
    struct readlink_rep rep;
};

static void readlink_work(struct store_work *w)
{
    struct op_readlink *op = container_of(w, struct op_readlink, w);

    op->n = readlinkat(op->o->fd, "", op->rep.target,
                       sizeof(op->rep.target) - 1);
    if (op->n < 0)
        op->n = -errno;
    else if (op->n == 0)
        op->n = -EIO; /* an empty target is not a valid wire path */
    else
        op->rep.target[op->n] = '\0';
}

static void readlink_done(struct store_work *w)
{
    struct op_readlink *op = container_of(w, struct op_readlink, w);
    struct server *srv = op->r->srv;

    req_reply(op->r, op->n < 0 ? (int)op->n : 0, &op->rep);
    ids_put(&srv->ids, op->o);
    free(op);
}

static void readlink_obj_cb(struct get1 *g, struct obj *o)
{
    struct op_readlink *op = container_of(g, struct op_readlink, g);
    struct req *r = op->r;

    if (!o) {
        free(op);
        return;
    }
    if (o->type != S_IFLNK) {
        ids_put(&r->srv->ids, o);
        free(op);
        req_reply(r, -EINVAL, NULL);
        return;
    }
    op->o = o;
    store_queue_work(&r->srv->st, &op->w, readlink_work, readlink_done);
}

void op_readlink(struct req *r)
{
    struct op_readlink *op = calloc(1, sizeof(*op));

    if (!op) {
        req_reply(r, -ENOMEM, NULL);
        return;
    }
    op->r = r;
    get1_start(&op->g, r, &REQ_MSG(r, readlink_req)->id, readlink_obj_cb);
}

/* ---- STATFS (thread pool) ---- */

struct op_statfs {
    struct store_work w;
    struct req *r;
    int rc;
    struct statfs_rep rep;
};

static void statfs_work(struct store_work *w)
{
    struct op_statfs *op = container_of(w, struct op_statfs, w);
    struct statfs s;

    if (fstatfs(w->st->root_fd, &s) < 0) {
        op->rc = -errno;
        return;
    }
    op->rep = (struct statfs_rep){
        .bsize = (uint64_t)s.f_bsize, .blocks = s.f_blocks,
        .bfree = s.f_bfree, .bavail = s.f_bavail, .files = s.f_files,
        .ffree = s.f_ffree, .namemax = (uint32_t)s.f_namelen};
    if (s.f_frsize) /* blocks are counted in fragment size units */
        op->rep.bsize = (uint64_t)s.f_frsize;
}

static void statfs_done(struct store_work *w)
{
    struct op_statfs *op = container_of(w, struct op_statfs, w);

    req_reply(op->r, op->rc, &op->rep);
    free(op);
}

void op_statfs(struct req *r)
{
    struct op_statfs *op = calloc(1, sizeof(*op));

    if (!op) {
        req_reply(r, -ENOMEM, NULL);
        return;
    }
    op->r = r;
    store_queue_work(&r->srv->st, &op->w, statfs_work, statfs_done);
}

/* ---- LOOKUP ---- */

struct op_lookup {
    struct get1 g;
    struct probe p;
    struct req *r;
    struct obj *parent;          /* referenced during the probe */
};

static void lookup_probe_cb(struct probe *p, int status)
{
    struct op_lookup *op = container_of(p, struct op_lookup, p);
    struct server *srv = op->r->srv;
    struct attr_rep rep;

    if (status == 0) {
        attr_from_statx(&rep.attr, &p->id, &p->stx);
        /* Keep the fd: the client is about to use this object. */
        ids_insert_take(&srv->ids, &p->id, p->fd, p->type, p->opath);
    }
    req_reply(op->r, status, &rep);
    ids_put(&srv->ids, op->parent);
    free(op);
}

/* Why parent o cannot answer LOOKUP m, or 0: not a folder; the hidden
 * .replicafs; a dirty copy under LOOKUP_CLEAN, which may hold a change no
 * quorum made, so the client must hear more than this brick (proto.h). */
static int lookup_refusal(const struct server *srv, const struct obj *o,
                          const struct lookup_req *m)
{
    int64_t dirty = 0;
    int rc;

    if (o->type != S_IFDIR)
        return -ENOTDIR;
    if (is_meta_name(srv, o, m->name))
        return -ENOENT;
    if (!(m->flags & LOOKUP_CLEAN))
        return 0;
    rc = markers_dirty_now(o, &dirty);
    if (rc == 0 && dirty > ((m->flags & LOOKUP_OWN_MARK) ? 1 : 0))
        rc = -EAGAIN;
    return rc;
}

static void lookup_parent_cb(struct get1 *g, struct obj *o)
{
    struct op_lookup *op = container_of(g, struct op_lookup, g);
    const struct lookup_req *m = REQ_MSG(op->r, lookup_req);
    struct req *r = op->r;
    int rc;

    if (!o) {
        free(op);
        return;
    }
    rc = lookup_refusal(r->srv, o, m);
    if (rc < 0) {
        ids_put(&r->srv->ids, o);
        free(op);
        req_reply(r, rc, NULL);
        return;
    }
    op->parent = o;
    probe_start(&op->p, &r->srv->st, o->fd, m->name, lookup_probe_cb);
}

void op_lookup(struct req *r)
{
    struct op_lookup *op = calloc(1, sizeof(*op));

    if (!op) {
        req_reply(r, -ENOMEM, NULL);
        return;
    }
    op->r = r;
    get1_start(&op->g, r, &REQ_MSG(r, lookup_req)->parent, lookup_parent_cb);
}
