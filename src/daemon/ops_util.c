/*
 * Helpers shared by the operations: attr conversion, the "what is this name"
 * probe, reply-with-attr, and get-one-object-or-fail.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>

#include "common/log.h"
#include "conn.h"
#include "ops.h"

void attr_from_statx(struct proto_attr *a, const struct rfs_id *id,
                     const struct statx *stx)
{
    memset(a, 0, sizeof(*a));
    a->id = *id;
    a->mode = stx->stx_mode;
    a->nlink = stx->stx_nlink;
    if (!S_ISDIR(stx->stx_mode) && a->nlink > 0)
        a->nlink--; /* the ids/ hard link */
    a->uid = stx->stx_uid;
    a->gid = stx->stx_gid;
    a->rdev = (uint32_t)makedev(stx->stx_rdev_major, stx->stx_rdev_minor);
    a->size = stx->stx_size;
    a->blocks = stx->stx_blocks;
    a->atime.sec = stx->stx_atime.tv_sec;
    a->atime.nsec = stx->stx_atime.tv_nsec;
    a->mtime.sec = stx->stx_mtime.tv_sec;
    a->mtime.nsec = stx->stx_mtime.tv_nsec;
    a->ctime.sec = stx->stx_ctime.tv_sec;
    a->ctime.nsec = stx->stx_ctime.tv_nsec;
}

void attr_from_stat(struct proto_attr *a, const struct rfs_id *id,
                    const struct stat *st)
{
    memset(a, 0, sizeof(*a));
    a->id = *id;
    a->mode = st->st_mode;
    a->nlink = (uint32_t)st->st_nlink;
    if (!S_ISDIR(st->st_mode) && a->nlink > 0)
        a->nlink--; /* the ids/ hard link */
    a->uid = st->st_uid;
    a->gid = st->st_gid;
    a->rdev = (uint32_t)st->st_rdev;
    a->size = (uint64_t)st->st_size;
    a->blocks = (uint64_t)st->st_blocks;
    a->atime = (struct proto_time){st->st_atim.tv_sec, (uint32_t)st->st_atim.tv_nsec};
    a->mtime = (struct proto_time){st->st_mtim.tv_sec, (uint32_t)st->st_mtim.tv_nsec};
    a->ctime = (struct proto_time){st->st_ctim.tv_sec, (uint32_t)st->st_ctim.tv_nsec};
}

bool is_meta_name(const struct server *srv, const struct obj *parent,
                  const char *name)
{
    return parent == srv->ids.root && strcmp(name, META_NAME) == 0;
}

int obj_open_flags(mode_t type)
{
    /* Never O_NONBLOCK on files: io_uring would then answer -EAGAIN on a
     * page-cache miss instead of handing the I/O to its workers. */
    if (type == S_IFREG)
        return O_RDWR | O_NOFOLLOW;
    if (type == S_IFDIR)
        return O_RDONLY | O_DIRECTORY | O_NOFOLLOW;
    return O_PATH | O_NOFOLLOW;
}

/* ---- probe ---- */

static void probe_finish(struct probe *p, int status)
{
    if (status < 0 && p->fd >= 0) {
        store_close_fd(p->st, p->fd);
        p->fd = -1;
    }
    p->cb(p, status);
}

static void probe_id(struct probe *p, ssize_t n)
{
    if (n == 16) {
        ids_id_decode(p->idbuf, &p->id);
        probe_finish(p, 0);
        return;
    }
    if (n == -ENODATA || n >= 0) {
        log_debug("'%s' has no trusted.rfs.id: not ours, hidden", p->name);
        n = -ENOENT;
    }
    probe_finish(p, (int)n);
}

static void probe_xattr_cb(struct store_op *sop, int res)
{
    probe_id(container_of(sop, struct probe, sop), res);
}

static void probe_open_cb(struct store_op *sop, int res)
{
    struct probe *p = container_of(sop, struct probe, sop);

    if (res < 0) { /* replaced under us by a symlink, a dir... */
        probe_finish(p, res == -ELOOP ? -ENOENT : res);
        return;
    }
    p->fd = res;
    if (p->opath) {
        probe_id(p, ids_opath_getxattr(p->fd, IDS_XATTR_ID, p->idbuf,
                                       sizeof(p->idbuf)));
        return;
    }
    store_fgetxattr(p->st, &p->sop, probe_xattr_cb, p->fd, IDS_XATTR_ID,
                    p->idbuf, sizeof(p->idbuf));
}

static void probe_stat_cb(struct store_op *sop, int res)
{
    struct probe *p = container_of(sop, struct probe, sop);

    if (res < 0) {
        probe_finish(p, res);
        return;
    }
    p->type = p->stx.stx_mode & S_IFMT;
    p->opath = p->type != S_IFREG && p->type != S_IFDIR;
    p->how = (struct open_how){.flags = obj_open_flags(p->type),
                               .resolve = STORE_RESOLVE};
    store_openat2(p->st, &p->sop, probe_open_cb, p->dirfd, p->name, &p->how);
}

void probe_start(struct probe *p, struct store *st, int dirfd,
                 const char *name, probe_cb cb)
{
    p->st = st;
    p->dirfd = dirfd;
    p->name = name;
    p->cb = cb;
    p->fd = -1;
    store_statx(st, &p->sop, probe_stat_cb, dirfd, name, AT_SYMLINK_NOFOLLOW,
                &p->stx);
}

/* ---- reply with attr ---- */

struct attr_reply {
    struct store_op sop;
    struct req *r;
    struct obj *o;       /* referenced */
    struct statx stx;
};

static void attr_reply_stat_cb(struct store_op *sop, int res)
{
    struct attr_reply *a = container_of(sop, struct attr_reply, sop);
    struct server *srv = a->r->srv;
    struct attr_rep rep;

    if (res == 0)
        attr_from_statx(&rep.attr, &a->o->id, &a->stx);
    req_reply(a->r, res, &rep);
    ids_put(&srv->ids, a->o);
    free(a);
}

void reply_attr_of(struct req *r, struct obj *o)
{
    struct attr_reply *a = calloc(1, sizeof(*a));

    if (!a) {
        ids_put(&r->srv->ids, o);
        req_reply(r, -ENOMEM, NULL);
        return;
    }
    a->r = r;
    a->o = o;
    store_statx(&r->srv->st, &a->sop, attr_reply_stat_cb, o->fd, "",
                AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, &a->stx);
}

/* ---- get one object ---- */

static void get1_ids_cb(struct ids_wait *w, struct obj *o, int status)
{
    struct get1 *g = container_of(w, struct get1, w);

    if (status < 0) {
        struct req *r = g->r;

        g->cb(g, NULL); /* lets the op free itself; it must not reply */
        req_reply(r, status, NULL);
        return;
    }
    g->cb(g, o);
}

void get1_start(struct get1 *g, struct req *r, const struct rfs_id *id,
                get1_cb cb)
{
    g->r = r;
    g->cb = cb;
    ids_get(&r->srv->ids, id, &g->w, get1_ids_cb);
}
