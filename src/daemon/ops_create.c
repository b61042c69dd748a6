/*
 * Making objects: MKDIR, CREATE, MKNOD (regular files and fifos), SYMLINK.
 * One step machine serves all four, since they differ only in the syscall
 * that makes the name:
 *
 *   parent --new_parent_cb--> id free? (statx ids/hh/hex)
 *     --new_idcheck_cb--> make the name (openat2 O_CREAT|O_EXCL / mkdirat /
 *                         symlinkat / mknodat on the pool) and open it
 *     --new_made_cb--> trusted.rfs.id (fsetxattr) --new_tagged_cb--> owner
 *                      and mode (fchown/fchmod) [CREATE_LOCK: heal index
 *                      entry and dirty = 1, markers_birth --new_born_cb-->]
 *                      then the ids/ entry (linkat, or symlinkat
 *                      "<parent>/<name>" for a directory)
 *     --new_linked_cb--> statx --new_stat_cb--> fd into the cache, pinned
 *                      for the connection with CREATE_OPEN (as OPEN pins),
 *                      reply
 *   any failure after the name exists --> rollback (unlinkat) --> reply
 *   CREATE without CREATE_EXCL on an existing file --> open it, reply
 *   created = 0 (new_existing_*).
 *
 * Invariants:
 *  1. An object gets a name only with its id xattr and ids/ entry made in
 *     the same op; if that fails the name is removed again (a crash in
 *     between leaves a name without ids/ entry or without id: invisible to
 *     clients, see brick-layout.md).
 *  2. An id that already exists is never given to a new object: -EEXIST.
 *  3. mode/uid/gid come from the request, so every brick agrees; the umask
 *     plays no part (main.c sets it to 0).
 *  4. A name without trusted.rfs.id that blocks a new object (EEXIST) is
 *     the debris of a crash inside invariant 1's window: it is removed and
 *     the object made, once, unless another op of this brick is making that
 *     same name right now (srv->creating).  Clients hold the entry lock
 *     for the name, so no other client can be making it.
 *  5. CREATE_LOCK: a reply of 0 leaves the lock held and dirty = 1 on disk
 *     (written before the ids/ entry, so no one can reach the file
 *     unmarked); every other ending releases the lock before its reply
 *     (both or neither: new_unlock).  The lock is taken at dispatch, while
 *     the connection is open, so a connection that closes later drops it
 *     with its other locks (lockmgr_conn_gone).
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/id.h"
#include "common/log.h"
#include "conn.h"
#include "ops.h"

struct op_new {
    struct get1 g;
    struct store_op sop;
    struct store_work w;         /* fifo: mknodat on the pool */
    struct req *r;
    struct obj *parent;          /* referenced */
    mode_t type;                 /* S_IFREG, S_IFDIR, S_IFLNK, S_IFIFO */
    const char *name;            /* borrowed from the request */
    const char *target;          /* symlink target, borrowed */
    struct rfs_id id;
    uint32_t mode, uid, gid;
    bool is_create;              /* CREATE (reply create_rep) */
    bool excl;
    bool made;                   /* the name exists: roll back on failure */
    bool debris_tried;           /* invariant 4: once */
    bool birth_lock;             /* CREATE_LOCK held (invariant 5) */
    struct markers_birth birth;  /* CREATE_LOCK: the dirty mark */
    struct list creating;        /* on srv->creating while making a name */
    int fd;                      /* owned until cached */
    int rc;                      /* the error to reply after a rollback */
    char idpath[IDS_PATH_LEN];
    char dirlink[PROTO_PATH_MAX];
    struct statx stx;
    struct open_how how;
    uint8_t idbuf[16];
    struct rfs_id got;           /* existing file's id */
};

static void new_untrack(struct op_new *op)
{
    if (!list_empty(&op->creating))
        list_del(&op->creating);
    list_init(&op->creating);
}

/* Invariant 5: a CREATE that does not succeed holds no lock. */
static void new_unlock(struct op_new *op, struct req *r)
{
    const struct create_req *m = REQ_MSG(r, create_req);

    if (!op->birth_lock)
        return;
    op->birth_lock = false;
    (void)lockmgr_unlock(&r->srv->locks, r->c, m->lk_owner, LK_DOM_INODE,
                         &m->id, "");
}

static void new_free(struct op_new *op)
{
    new_unlock(op, op->r);
    new_untrack(op);
    if (op->fd >= 0)
        store_close_fd(&op->r->srv->st, op->fd);
    if (op->parent)
        ids_put(&op->r->srv->ids, op->parent);
    free(op);
}

static void new_fail(struct op_new *op, int rc)
{
    struct req *r = op->r;

    new_free(op);
    req_reply(r, rc, NULL);
}

static void new_exists(struct op_new *op);

static void new_rollback_cb(struct store_op *sop, int res)
{
    struct op_new *op = container_of(sop, struct op_new, sop);

    if (res < 0)
        log_warn("rollback of '%s' failed: %s", op->name, strerror(-res));
    new_fail(op, op->rc);
}

/* Invariant 1: the name goes away again. */
static void new_rollback(struct op_new *op, int rc)
{
    struct server *srv = op->r->srv;

    if (!op->made) {
        new_fail(op, rc);
        return;
    }
    op->rc = rc;
    store_unlinkat(&srv->st, &op->sop, new_rollback_cb, op->parent->fd,
                   op->name, op->type == S_IFDIR ? AT_REMOVEDIR : 0);
}

static void new_reply(struct op_new *op, const struct rfs_id *id,
                      uint32_t created)
{
    struct server *srv = op->r->srv;
    struct create_rep crep;
    struct attr_rep arep;
    struct obj *o;

    attr_from_statx(&arep.attr, id, &op->stx);
    crep.attr = arep.attr;
    crep.created = created;
    if (created)
        server_inval(srv, op->r->c, &op->parent->id, INVAL_ENTRY,
                     &op->parent->id, op->name, NULL);
    new_untrack(op);
    o = ids_insert_take(&srv->ids, id, op->fd, op->type,
                        op->type != S_IFREG && op->type != S_IFDIR);
    op->fd = -1; /* now the cache's */
    if (created && op->is_create && op->r->c &&
        (REQ_MSG(op->r, create_req)->flags & CREATE_OPEN) &&
        (!o || pins_add(srv, &op->r->c->pins, o) < 0))
        /* Only memory can fail here: the client holds the file open as
         * if pinned; if its last name goes, this brick may drop it. */
        log_warn("create: cannot pin the new file for its opener");
    req_reply(op->r, 0, op->is_create ? (const void *)&crep
                                      : (const void *)&arep);
    /* r is freed: only srv below */
    if (op->parent)
        ids_put(&srv->ids, op->parent);
    free(op);
}

static void new_stat_cb(struct store_op *sop, int res)
{
    struct op_new *op = container_of(sop, struct op_new, sop);

    if (res < 0) {
        new_rollback(op, res);
        return;
    }
    new_reply(op, &op->id, 1);
}

static void new_linked_cb(struct store_op *sop, int res)
{
    struct op_new *op = container_of(sop, struct op_new, sop);

    if (res < 0) { /* -EEXIST: the id appeared meanwhile (invariant 2) */
        new_rollback(op, res);
        return;
    }
    store_statx(&op->r->srv->st, &op->sop, new_stat_cb, op->fd, "",
                AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, &op->stx);
}

/*
 * Why synchronous: there is no io_uring fchown/fchmod, and a pool round
 * trip would double the latency of every create.  Both are in-memory inode
 * updates on an inode we just made and hold open (no path walk, no read);
 * the journal commit happens later in the background.
 */
static int new_set_owner_mode(struct op_new *op)
{
    char proc[64];

    if (fchownat(op->fd, "", op->uid, op->gid,
                 AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
        return -errno;
    if (op->type == S_IFLNK)
        return 0;
    if (op->type == S_IFIFO) {
        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", op->fd);
        return chmod(proc, op->mode & 07777) < 0 ? -errno : 0;
    }
    return fchmod(op->fd, op->mode & 07777) < 0 ? -errno : 0;
}

/* The ids/ entry: from here on the object is reachable by id. */
static void new_link(struct op_new *op)
{
    struct store *st = &op->r->srv->st;

    if (op->type == S_IFDIR) {
        ids_format_dirlink(&op->parent->id, op->name, op->dirlink);
        store_symlinkat(st, &op->sop, new_linked_cb, op->dirlink, st->ids_fd,
                        op->idpath);
        return;
    }
    store_linkat(st, &op->sop, new_linked_cb, op->parent->fd, op->name,
                 st->ids_fd, op->idpath, 0);
}

static void new_born_cb(struct markers_birth *b, int status)
{
    struct op_new *op = container_of(b, struct op_new, birth);

    if (status < 0) {
        new_rollback(op, status);
        return;
    }
    new_link(op);
}

static void new_tagged_cb(struct store_op *sop, int res)
{
    struct op_new *op = container_of(sop, struct op_new, sop);

    if (res == 0)
        res = new_set_owner_mode(op);
    if (res < 0) {
        new_rollback(op, res);
        return;
    }
    if (op->birth_lock) { /* invariant 5: marked before reachable */
        markers_birth(op->r->srv, &op->birth, op->fd, &op->id, new_born_cb);
        return;
    }
    new_link(op);
}

static void new_made_cb(struct store_op *sop, int res)
{
    struct op_new *op = container_of(sop, struct op_new, sop);

    if (res < 0) {
        new_rollback(op, res);
        return;
    }
    op->fd = res;
    op->made = true;
    ids_id_encode(&op->id, op->idbuf);
    if (op->type == S_IFLNK || op->type == S_IFIFO) { /* O_PATH fd */
        new_tagged_cb(&op->sop, ids_opath_setxattr(op->fd, IDS_XATTR_ID,
                                                   op->idbuf, 16));
        return;
    }
    store_fsetxattr(&op->r->srv->st, &op->sop, new_tagged_cb, op->fd,
                    IDS_XATTR_ID, op->idbuf, 16, 0);
}

/* ---- CREATE without CREATE_EXCL of an existing regular file ---- */

static void new_existing_stat_cb(struct store_op *sop, int res)
{
    struct op_new *op = container_of(sop, struct op_new, sop);

    if (res == 0 && !S_ISREG(op->stx.stx_mode))
        res = -EEXIST; /* a fifo opens O_RDWR too; it is not a file */
    if (res < 0) {
        new_fail(op, res);
        return;
    }
    new_reply(op, &op->got, 0);
}

static void new_existing_id_cb(struct store_op *sop, int res)
{
    struct op_new *op = container_of(sop, struct op_new, sop);

    if (res == -ENODATA) { /* no id: not an object of ours */
        new_exists(op);
        return;
    }
    if (res != 16) {
        new_fail(op, res < 0 ? res : -EEXIST);
        return;
    }
    ids_id_decode(op->idbuf, &op->got);
    store_statx(&op->r->srv->st, &op->sop, new_existing_stat_cb, op->fd, "",
                AT_EMPTY_PATH, &op->stx);
}

static void new_existing_open_cb(struct store_op *sop, int res)
{
    struct op_new *op = container_of(sop, struct op_new, sop);

    if (res < 0) {
        /* ELOOP: a symlink; ENOENT: the id exists but not under this name */
        new_fail(op, res == -EISDIR ? -EISDIR : res == -ELOOP || res == -ENOENT
                                                    ? -EEXIST : res);
        return;
    }
    op->fd = res;
    store_fgetxattr(&op->r->srv->st, &op->sop, new_existing_id_cb, op->fd,
                    IDS_XATTR_ID, op->idbuf, 16);
}

static void new_open_existing(struct op_new *op)
{
    op->how = (struct open_how){.flags = O_RDWR | O_NOFOLLOW,
                                .resolve = STORE_RESOLVE};
    store_openat2(&op->r->srv->st, &op->sop, new_existing_open_cb,
                  op->parent->fd, op->name, &op->how);
}

/* ---- debris of a crash (invariant 4) ---- */

static void new_make(struct op_new *op);

/* Is an op of this brick making a name in dir (name NULL: any) right now,
 * other than except? */
static bool creating(struct server *srv, const struct rfs_id *dir,
                     const char *name, const struct op_new *except)
{
    struct list *pos, *tmp;

    list_for_each_safe(pos, tmp, &srv->creating) {
        const struct op_new *o = container_of(pos, struct op_new, creating);

        if (o != except && rfs_id_eq(&o->parent->id, dir) &&
            (!name || strcmp(o->name, name) == 0))
            return true;
    }
    return false;
}

bool ops_creating_in(struct server *srv, const struct rfs_id *dir)
{
    return creating(srv, dir, NULL, NULL);
}

/* On the pool: remove parent/name if it carries no id. */
static void new_debris_work(struct store_work *w)
{
    struct op_new *op = container_of(w, struct op_new, w);
    int dfd = op->parent->fd;
    struct stat st;
    int rc = ids_debris_at(dfd, op->name, &st);

    if (rc <= 0) {
        op->rc = rc < 0 ? rc : -EEXIST; /* an object of ours: leave it */
        return;
    }
    op->rc = unlinkat(dfd, op->name, S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0)
                 < 0 ? -errno : 0;
}

static void new_debris_done(struct store_work *w)
{
    struct op_new *op = container_of(w, struct op_new, w);

    if (op->rc < 0) {
        new_fail(op, op->rc == -ENOTEMPTY ? -EEXIST : op->rc);
        return;
    }
    log_warn("removed '%s', a name without an id left by a crash, to make "
             "it again", op->name);
    new_make(op);
}

/* EEXIST while making the name: debris, or a real object. */
static void new_exists(struct op_new *op)
{
    if (op->debris_tried ||
        creating(op->r->srv, &op->parent->id, op->name, op)) {
        new_fail(op, -EEXIST);
        return;
    }
    op->debris_tried = true;
    if (op->fd >= 0) {
        store_close_fd(&op->r->srv->st, op->fd);
        op->fd = -1;
    }
    store_queue_work(&op->r->srv->st, &op->w, new_debris_work,
                     new_debris_done);
}

/* ---- making the name ---- */

static void new_named_cb(struct store_op *sop, int res)
{
    struct op_new *op = container_of(sop, struct op_new, sop);

    if (res == -EEXIST) {
        new_exists(op);
        return;
    }
    if (res < 0) {
        new_fail(op, res);
        return;
    }
    op->made = true; /* from here on a failure removes the name */
    op->how = (struct open_how){.flags = obj_open_flags(op->type),
                                .resolve = STORE_RESOLVE};
    store_openat2(&op->r->srv->st, &op->sop, new_made_cb, op->parent->fd,
                  op->name, &op->how);
}

static void new_regular_cb(struct store_op *sop, int res)
{
    struct op_new *op = container_of(sop, struct op_new, sop);

    if (res == -EEXIST && op->is_create && !op->excl) {
        new_open_existing(op);
        return;
    }
    if (res == -EEXIST) {
        new_exists(op);
        return;
    }
    if (res < 0) {
        new_fail(op, res);
        return;
    }
    new_made_cb(sop, res);
}

static void new_fifo_work(struct store_work *w)
{
    struct op_new *op = container_of(w, struct op_new, w);

    op->rc = mknodat(op->parent->fd, op->name, S_IFIFO | 0600, 0) < 0 ? -errno
                                                                      : 0;
}

static void new_fifo_done(struct store_work *w)
{
    struct op_new *op = container_of(w, struct op_new, w);

    new_named_cb(&op->sop, op->rc);
}

static void new_make(struct op_new *op)
{
    struct store *st = &op->r->srv->st;
    int dfd = op->parent->fd;

    if (list_empty(&op->creating))
        list_add_tail(&op->r->srv->creating, &op->creating);

    switch (op->type) {
    case S_IFREG:
        op->how = (struct open_how){
            .flags = O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW,
            .mode = 0600, .resolve = STORE_RESOLVE};
        store_openat2(st, &op->sop, new_regular_cb, dfd, op->name, &op->how);
        return;
    case S_IFDIR:
        store_mkdirat(st, &op->sop, new_named_cb, dfd, op->name, 0700);
        return;
    case S_IFLNK:
        store_symlinkat(st, &op->sop, new_named_cb, op->target, dfd, op->name);
        return;
    default: /* S_IFIFO: io_uring has no mknodat */
        store_queue_work(st, &op->w, new_fifo_work, new_fifo_done);
        return;
    }
}

static void new_idcheck_cb(struct store_op *sop, int res)
{
    struct op_new *op = container_of(sop, struct op_new, sop);

    if (res == -ENOENT) {
        new_make(op);
        return;
    }
    if (res == 0 && op->is_create && !op->excl) {
        new_open_existing(op); /* a retried CREATE finds its own file */
        return;
    }
    new_fail(op, res == 0 ? -EEXIST : res); /* invariant 2 */
}

static void new_parent_cb(struct get1 *g, struct obj *o)
{
    struct op_new *op = container_of(g, struct op_new, g);
    struct server *srv = op->r->srv;
    struct obj *cached;

    if (!o) {
        /* get1 replies with the error after this: release first. */
        new_unlock(op, op->r);
        op->r = NULL;
        free(op);
        return;
    }
    op->parent = o;
    if (o->type != S_IFDIR) {
        new_fail(op, -ENOTDIR);
        return;
    }
    if (is_meta_name(srv, o, op->name)) {
        new_fail(op, -EPERM);
        return;
    }
    if ((cached = ids_find(&srv->ids, &op->id)) != NULL) {
        ids_put(&srv->ids, cached);
        if (op->is_create && !op->excl)
            new_open_existing(op);
        else
            new_fail(op, -EEXIST);
        return;
    }
    ids_path(&op->id, op->idpath);
    store_statx(&srv->st, &op->sop, new_idcheck_cb, srv->st.ids_fd,
                op->idpath, AT_SYMLINK_NOFOLLOW, &op->stx);
}

static struct op_new *new_alloc(struct req *r)
{
    struct op_new *op = calloc(1, sizeof(*op));

    if (!op) {
        req_reply(r, -ENOMEM, NULL);
        return NULL;
    }
    op->r = r;
    op->fd = -1;
    list_init(&op->creating);
    return op;
}

static void new_start(struct op_new *op, const struct rfs_id *parent)
{
    if (rfs_id_is_zero(&op->id) || rfs_id_is_root(&op->id)) {
        new_fail(op, -EINVAL);
        return;
    }
    get1_start(&op->g, op->r, parent, new_parent_cb);
}

void op_mkdir(struct req *r)
{
    const struct mkdir_req *m = REQ_MSG(r, mkdir_req);
    struct op_new *op = new_alloc(r);

    if (!op)
        return;
    op->type = S_IFDIR;
    op->name = m->name;
    op->id = m->id;
    op->mode = m->mode;
    op->uid = m->uid;
    op->gid = m->gid;
    new_start(op, &m->parent);
}

void op_create(struct req *r)
{
    const struct create_req *m = REQ_MSG(r, create_req);
    struct op_new *op = new_alloc(r);

    if (!op)
        return;
    op->type = S_IFREG;
    op->is_create = true;
    op->excl = m->flags & CREATE_EXCL;
    op->name = m->name;
    op->id = m->id;
    op->mode = m->mode;
    op->uid = m->uid;
    op->gid = m->gid;
    if ((m->flags & CREATE_LOCK) && !rfs_id_is_zero(&m->id) &&
        !rfs_id_is_root(&m->id)) { /* else new_start refuses it */
        /* Lock first, as XO_LOCK does; the codec let CREATE_LOCK through
         * only with EXCL and OPEN, so no existing file is ever locked.
         * Non-blocking: a fresh id is free unless someone guessed it. */
        struct lk_req lk;
        int rc = ops_lock_take(r, &lk, LK_DOM_INODE, &m->id, "", m->lk_owner,
                               LK_WR, LK_NONBLOCK, NULL);

        if (rc < 0) {
            new_fail(op, rc);
            return;
        }
        assert(rc == 0); /* LK_NONBLOCK never queues */
        op->birth_lock = true;
    }
    new_start(op, &m->parent);
}

void op_mknod(struct req *r)
{
    const struct mknod_req *m = REQ_MSG(r, mknod_req);
    mode_t type = m->mode & S_IFMT;
    struct op_new *op;

    if (type != 0 && type != S_IFREG && type != S_IFIFO) {
        req_reply(r, -EPERM, NULL); /* no devices or sockets on a brick */
        return;
    }
    op = new_alloc(r);
    if (!op)
        return;
    op->type = type == S_IFIFO ? S_IFIFO : S_IFREG;
    op->excl = true;
    op->name = m->name;
    op->id = m->id;
    op->mode = m->mode;
    op->uid = m->uid;
    op->gid = m->gid;
    new_start(op, &m->parent);
}

void op_symlink(struct req *r)
{
    const struct symlink_req *m = REQ_MSG(r, symlink_req);
    struct op_new *op = new_alloc(r);

    if (!op)
        return;
    op->type = S_IFLNK;
    op->name = m->name;
    op->target = m->target;
    op->id = m->id;
    op->mode = 0777;
    op->uid = m->uid;
    op->gid = m->gid;
    new_start(op, &m->parent);
}
