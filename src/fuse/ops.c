/*
 * The FUSE low-level operations of mount.replicafs, over the volume engine.
 *
 * Design
 * ======
 * Everything runs on the one loop thread (main.c reads the session fd from
 * the loop).  A handler checks its arguments, copies what it needs (names
 * are copied by the engine before the volume_*() call returns; write data
 * here), starts one asynchronous volume operation and returns.  The reply
 * is sent from that operation's callback:
 *
 *   kernel request --handler--> volume_*() --...loop...--> callback
 *        |                          | -errno at once            |
 *        +-- fuse_reply_err --------+                fuse_reply_* (once)
 *
 * Inode numbers come from the inode table (client/inotab.c): each entry
 * holds one vinode reference and the kernel's lookup count; an entry is
 * dropped by forget.  Every successful lookup/mkdir/mknod/symlink/link/
 * create reply and every readdirplus entry counts one lookup, taken back if
 * the reply does not reach the kernel (an interrupted request).
 *
 * Invariants:
 *  1. Every fuse_req_t gets exactly one reply: either in the handler (when
 *     the volume call failed at once, then the callback never runs) or in
 *     the callback.
 *  2. nlookup of an entry == the number of references the kernel holds.
 *  3. While stopping (fs->stopping) no new inode table entry is made and
 *     open files are released at once: the replies go nowhere.
 *  4. ENOENT for an object addressed by inode (getattr, setattr, open...)
 *     is answered ESTALE: the name was valid when the kernel looked it up,
 *     and ESTALE makes the VFS look the path up again (rename over a file
 *     must never show "no such file" to a reader, tests/integration/
 *     rename_atomic.sh).
 *  5. An open keeps the kernel's cached pages (keep_cache) only when the
 *     size and times a good brick gives now (or, for an open answered
 *     from a read lease, gave when the lease was granted: nothing has
 *     changed since, client/volume_int.h) equal those the kernel was
 *     last told (inotab kstamp) and no invalidation of the inode waits in
 *     notify.c's queue (its invariant 4: until then the kernel may hold
 *     less than it was told); otherwise the pages are dropped and the
 *     attributes invalidated before open() returns, so a read after
 *     open() never returns bytes older than the last close() anywhere.
 *     Invalidating attributes alone takes no kernel lock the loop could be
 *     waiting behind; everything else goes through notify.c's thread.
 *  6. Every opendir lets the kernel cache the listing (cache_readdir); it
 *     keeps what it cached before (keep_cache) only while the directory's
 *     listing is vouched for: inotab listing.epoch == fs->list_epoch, and
 *     begun less than entry_timeout ago (listing_keep()).  An opendir that
 *     does not keep it vouches anew: the kernel drops its pages at open
 *     and fills them from the bricks.  The vouch is withdrawn when a name
 *     in the directory changes, through this mount (the handler, before
 *     going async; the kernel itself drops its cache when the reply
 *     arrives) or another (INVAL entry, notify.c), and for every directory
 *     at once (list_epoch++) when an INVAL may have been missed: a brick
 *     link went down or came up, or the notifier dropped an invalidation;
 *     and when a listing came from a dirty copy of the folder (unsure
 *     names, which heal may undo: listing_check_sure()).
 *     The age limit bounds what a race can leave behind (a brick's stale
 *     READDIR reply overtaken by its INVAL) as for cached names.  Offsets
 *     are the same in every listing of an unchanged directory read from
 *     the same brick (rdir numbers entries in the order the brick gives
 *     them), which the kernel needs to finish a half-cached listing from a
 *     new handle.
 *  7. A kernel LOOKUP of a file or directory, or a GETATTR of one, is answered
 *     from fs->names (the name, the child and the attributes a brick last
 *     answered, ncache.h) without asking a brick only while all of these
 *     hold:
 *     - the entry was learned at the current nc_epoch: no brick link went
 *       down or up and no invalidation was dropped since (those bump it
 *       with list_epoch), and no change by this mount started or ended
 *       since (own_change(): the bricks send no INVAL to the changer, so
 *       any own change, to any object, makes every name ask again);
 *     - no INVAL event at all arrived while its LOOKUP was on the way
 *       (inval_gen unchanged), so no answer older than an INVAL that came
 *       first is kept; INVALs after it drop the name (an entry change of
 *       the name) or the child (any change of it) in fs_on_inval();
 *     - no invalidation of the child waits in notify.c's queue, and this
 *       mount has no change of the child open or on its way
 *       (volume_inode_quiet(): a writer's post-op changes ctime);
 *     - a quorum of bricks answered a request sent less than the ping
 *       timeout ago (volume_vouch_until_us()), and the kernel is told to
 *       keep the answer no longer than that vouch lasts: a mount cut off
 *       from the bricks stops serving what it knew within the ping
 *       timeout, as the kernel's own caches do.
 *     A directory's entry goes too when a name in it changes (its times
 *     and link count change with it).  Symlinks and the rest always ask
 *     (few, and rarely looked up twice).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>

#include "common/id.h"
#include "fuse/fs.h"

#define RFS_BLKSIZE (128 * 1024) /* st_blksize: makes cp and friends use
                                    big writes (one round trip each) */
#define HIDDEN_NAME ".replicafs"

static struct rfs_fs *req_fs(fuse_req_t req)
{
    return fuse_req_userdata(req);
}

static struct vinode *ino_vi(struct rfs_fs *fs, fuse_ino_t ino)
{
    struct inotab_ent *e = inotab_by_ino(&fs->inodes, ino);

    return e ? e->data : NULL;
}

static int stale(int status)
{
    return status == -ENOENT ? -ESTALE : status;
}

static void attr_to_stat(const struct proto_attr *a, fuse_ino_t ino,
                         struct stat *st)
{
    memset(st, 0, sizeof(*st));
    st->st_ino = ino;
    st->st_mode = a->mode;
    st->st_nlink = a->nlink;
    st->st_uid = a->uid;
    st->st_gid = a->gid;
    st->st_rdev = a->rdev;
    st->st_size = (off_t)a->size;
    st->st_blocks = (blkcnt_t)a->blocks;
    st->st_blksize = RFS_BLKSIZE;
    st->st_atim.tv_sec = a->atime.sec;
    st->st_atim.tv_nsec = a->atime.nsec;
    st->st_mtim.tv_sec = a->mtime.sec;
    st->st_mtim.tv_nsec = a->mtime.nsec;
    st->st_ctim.tv_sec = a->ctime.sec;
    st->st_ctim.tv_nsec = a->ctime.nsec;
}

/* ---- what the kernel caches (see open_cb) ---- */

static bool time_eq(struct proto_time a, struct proto_time b)
{
    return a.sec == b.sec && a.nsec == b.nsec;
}

static void kstamp_set(struct inotab_ent *ent, const struct proto_attr *a)
{
    ent->kstamp.size = a->size;
    ent->kstamp.mtime = a->mtime;
    ent->kstamp.ctime = a->ctime;
    ent->kstamp.valid = true;
}

static bool kstamp_same(const struct inotab_ent *ent,
                        const struct proto_attr *a)
{
    return ent->kstamp.valid && ent->kstamp.size == a->size &&
           time_eq(ent->kstamp.mtime, a->mtime) &&
           time_eq(ent->kstamp.ctime, a->ctime);
}

/* Reject names the volume can never hold before going async. */
static int name_ok(fuse_ino_t parent, const char *name, bool creating)
{
    size_t len = strlen(name);

    if (len > PROTO_NAME_MAX)
        return -ENAMETOOLONG;
    if (parent == FUSE_ROOT_ID && strcmp(name, HIDDEN_NAME) == 0)
        return creating ? -EPERM : -ENOENT;
    return 0;
}

/* The vinode of a directory a name is about to change in, through this
 * mount: the kernel's cached listing of it is no longer vouched for
 * (invariant 6).  NULL when the kernel's inode is unknown. */
/* A change by this mount starts or ends: no name answered before may be
 * answered again without a brick (invariant 7). */
static void own_change(struct rfs_fs *fs)
{
    fs->nc_epoch++;
}

static struct vinode *dir_to_change(struct rfs_fs *fs, fuse_ino_t parent)
{
    struct inotab_ent *ent = inotab_by_ino(&fs->inodes, parent);

    own_change(fs);
    if (!ent)
        return NULL;
    fs_listing_unvouch(ent);
    return ent->data;
}

/*
 * The inode table entry for vi (made if new, holding its own vinode
 * reference), and e filled for a reply.  The caller takes the lookup
 * reference with inotab_ref() when it replies.  -ENOMEM, or -ESHUTDOWN
 * while stopping (invariant 3).
 */
static int entry_fill(struct rfs_fs *fs, struct vinode *vi,
                      const struct proto_attr *a, struct fuse_entry_param *e,
                      struct inotab_ent **out)
{
    struct inotab_ent *ent = inotab_by_id(&fs->inodes, &a->id);
    int rc;

    if (fs->stopping)
        return -ESHUTDOWN;
    if (!ent) {
        rc = inotab_add(&fs->inodes, &a->id, vi, &ent);
        if (rc < 0)
            return rc;
        volume_inode_ref(vi);
    }
    memset(e, 0, sizeof(*e));
    e->ino = ent->ino;
    e->generation = 1;
    e->attr_timeout = fs->opts->attr_timeout;
    e->entry_timeout = fs->opts->entry_timeout;
    attr_to_stat(a, ent->ino, &e->attr);
    kstamp_set(ent, a);
    *out = ent;
    return 0;
}

/* Give a lookup reference back (the reply did not reach the kernel). */
static void entry_unref(struct rfs_fs *fs, struct inotab_ent *ent, uint64_t n)
{
    uint64_t ino = ent->ino;
    struct vinode *vi = inotab_forget(&fs->inodes, ent, n);

    if (vi) /* the entry is gone: so is any name that led to it */
        ncache_drop_ino(&fs->names, ino);
    volume_inode_put(vi);
}

/* Reply with the entry of vi; the table entry, or NULL when the kernel
 * got nothing.  `vouch_s` >= 0 caps the kernel's timeouts (invariant 7). */
static struct inotab_ent *reply_entry(struct rfs_fs *fs, fuse_req_t req,
                                      struct vinode *vi,
                                      const struct proto_attr *a,
                                      double vouch_s)
{
    struct fuse_entry_param e;
    struct inotab_ent *ent;
    int rc = entry_fill(fs, vi, a, &e, &ent);

    if (rc < 0) {
        fuse_reply_err(req, rc == -ESHUTDOWN ? EIO : -rc);
        return NULL;
    }
    if (vouch_s >= 0 && e.entry_timeout > vouch_s)
        e.entry_timeout = vouch_s;
    if (vouch_s >= 0 && e.attr_timeout > vouch_s)
        e.attr_timeout = vouch_s;
    inotab_ref(ent);
    if (fuse_reply_entry(req, &e) != 0) {
        entry_unref(fs, ent, 1); /* interrupted: the kernel has nothing */
        return NULL;
    }
    return ent;
}

/* ---- lookup, forget ---- */

/* A change this mount made (mkdir, mknod, symlink, link) is done. */
static void entry_cb(int status, struct vinode *vi, const struct proto_attr *a,
                     bool created, void *arg)
{
    fuse_req_t req = arg;

    (void)created;
    own_change(req_fs(req));
    if (status < 0)
        fuse_reply_err(req, -status);
    else
        reply_entry(req_fs(req), req, vi, a, -1);
}

struct fop_lookup {
    fuse_req_t req;
    fuse_ino_t parent;
    uint64_t nc_epoch;  /* fs's when the LOOKUP was sent */
    uint64_t inval_gen; /* likewise */
    char name[];
};

/* May n be answered from (invariant 7)?  Then its table entry, with the
 * attributes in *a and how long the answer may be kept in *vouch_s. */
static struct inotab_ent *cached_ok(struct rfs_fs *fs,
                                    const struct ncache_ent *n,
                                    struct proto_attr *a, double *vouch_s)
{
    struct inotab_ent *ent;
    uint64_t until, now;

    if (!n || fs->opts->no_namecache)
        return NULL;
    ent = inotab_by_ino(&fs->inodes, n->ino);
    if (n->epoch != fs->nc_epoch || !ent || fs_inval_pending(fs, ent) ||
        !volume_inode_quiet(ent->data)) {
        ncache_drop_ino(&fs->names, n->ino);
        return NULL;
    }
    until = volume_vouch_until_us(fs->vol);
    now = uv_hrtime() / 1000;
    if (until < now + 10000) /* less than 10 ms left: not worth it */
        return NULL;
    *a = n->attr;
    *vouch_s = (double)(until - now) / 1e6;
    return ent;
}

/* Answer a LOOKUP from fs->names if invariant 7 allows; false: ask. */
static bool lookup_cached(struct rfs_fs *fs, fuse_req_t req,
                          fuse_ino_t parent, const char *name)
{
    struct proto_attr a;
    double vouch_s;
    struct inotab_ent *ent =
        cached_ok(fs, ncache_get(&fs->names, parent, name), &a, &vouch_s);

    if (!ent)
        return false;
    reply_entry(fs, req, ent->data, &a, vouch_s);
    return true;
}

static void lookup_cb(int status, struct vinode *vi, const struct proto_attr *a,
                      bool created, void *arg)
{
    struct fop_lookup *l = arg;
    struct rfs_fs *fs = req_fs(l->req);
    struct inotab_ent *ent;

    (void)created;
    if (status < 0) {
        fuse_reply_err(l->req, -status);
        free(l);
        return;
    }
    ent = reply_entry(fs, l->req, vi, a, -1);
    if (ent && (S_ISREG(a->mode) || S_ISDIR(a->mode)) &&
        !fs->opts->no_namecache &&
        !fs->stopping && l->nc_epoch == fs->nc_epoch &&
        l->inval_gen == fs->inval_gen && volume_inode_quiet(vi))
        (void)ncache_put(&fs->names, l->parent, l->name, ent->ino,
                         l->nc_epoch, a); /* -ENOMEM: not remembered */
    free(l);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    struct rfs_fs *fs = req_fs(req);
    struct vinode *pvi = ino_vi(fs, parent);
    int rc = name_ok(parent, name, false);
    struct fop_lookup *l;
    size_t len;

    if (rc == 0 && !pvi)
        rc = -ESTALE;
    if (rc < 0) {
        fuse_reply_err(req, -rc);
        return;
    }
    if (lookup_cached(fs, req, parent, name))
        return;
    len = strlen(name);
    l = malloc(sizeof(*l) + len + 1);
    if (!l) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    l->req = req;
    l->parent = parent;
    l->nc_epoch = fs->nc_epoch;
    l->inval_gen = fs->inval_gen;
    memcpy(l->name, name, len + 1);
    rc = volume_lookup(fs->vol, pvi, name, lookup_cb, l);
    if (rc < 0) {
        fuse_reply_err(req, -rc);
        free(l);
    }
}

static void forget_one(struct rfs_fs *fs, fuse_ino_t ino, uint64_t n)
{
    struct inotab_ent *ent = inotab_by_ino(&fs->inodes, ino);

    if (ent)
        entry_unref(fs, ent, n);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
    forget_one(req_fs(req), ino, nlookup);
    fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count,
                            struct fuse_forget_data *forgets)
{
    struct rfs_fs *fs = req_fs(req);

    for (size_t i = 0; i < count; i++)
        forget_one(fs, forgets[i].ino, forgets[i].nlookup);
    fuse_reply_none(req);
}

/* ---- attributes ---- */

static void attr_cb(int status, const struct proto_attr *a, void *arg)
{
    fuse_req_t req = arg;
    struct rfs_fs *fs = req_fs(req);
    struct inotab_ent *ent;
    struct stat st;

    if (status < 0) {
        fuse_reply_err(req, -stale(status));
        return;
    }
    ent = inotab_by_id(&fs->inodes, &a->id);
    if (ent)
        kstamp_set(ent, a);
    attr_to_stat(a, ent ? ent->ino : 0, &st);
    fuse_reply_attr(req, &st, fs->opts->attr_timeout);
}

/* The root has no name to look up, yet with default_permissions every
 * path walk asks for its attributes once they expire: they are kept in
 * fs->names under (0, "") by the same rules (invariant 7). */
struct fop_rootattr {
    fuse_req_t req;
    uint64_t nc_epoch;
    uint64_t inval_gen;
};

static void rootattr_cb(int status, const struct proto_attr *a, void *arg)
{
    struct fop_rootattr *r = arg;
    struct rfs_fs *fs = req_fs(r->req);
    struct vinode *root = ino_vi(fs, FUSE_ROOT_ID);

    if (status == 0 && root && !fs->opts->no_namecache && !fs->stopping &&
        r->nc_epoch == fs->nc_epoch && r->inval_gen == fs->inval_gen &&
        volume_inode_quiet(root))
        (void)ncache_put(&fs->names, 0, "", FUSE_ROOT_ID, r->nc_epoch, a);
    attr_cb(status, a, r->req);
    free(r);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino,
                       struct fuse_file_info *fi)
{
    struct rfs_fs *fs = req_fs(req);
    struct vinode *vi = ino_vi(fs, ino);
    struct proto_attr a;
    struct inotab_ent *ent;
    struct stat st;
    double vouch_s;
    int rc;

    (void)fi;
    ent = cached_ok(fs, ncache_get_ino(&fs->names, ino), &a, &vouch_s);
    if (ent) { /* invariant 7 */
        kstamp_set(ent, &a);
        attr_to_stat(&a, ent->ino, &st);
        fuse_reply_attr(req, &st, fs->opts->attr_timeout < vouch_s
                                      ? fs->opts->attr_timeout
                                      : vouch_s);
        return;
    }
    if (vi && ino == FUSE_ROOT_ID) {
        struct fop_rootattr *r = malloc(sizeof(*r));

        if (!r) {
            fuse_reply_err(req, ENOMEM);
            return;
        }
        *r = (struct fop_rootattr){req, fs->nc_epoch, fs->inval_gen};
        rc = volume_getattr(fs->vol, vi, rootattr_cb, r);
        if (rc < 0) {
            free(r);
            fuse_reply_err(req, -rc);
        }
        return;
    }
    rc = vi ? volume_getattr(fs->vol, vi, attr_cb, req) : -ESTALE;
    if (rc < 0)
        fuse_reply_err(req, -rc);
}

static void setattr_cb(int status, const struct proto_attr *a, void *arg)
{
    own_change(req_fs(arg));
    attr_cb(status, a, arg);
}

static struct proto_time now_time(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (struct proto_time){ts.tv_sec, (uint32_t)ts.tv_nsec};
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
                       int to_set, struct fuse_file_info *fi)
{
    struct rfs_fs *fs = req_fs(req);
    struct vinode *vi = ino_vi(fs, ino);
    struct setattr_req r = {0};
    int rc;

    (void)fi;
    if (!vi) {
        fuse_reply_err(req, ESTALE);
        return;
    }
    if (to_set & FUSE_SET_ATTR_MODE) {
        r.valid |= SETATTR_MODE;
        r.mode = attr->st_mode & 07777;
    }
    if (to_set & FUSE_SET_ATTR_UID) {
        r.valid |= SETATTR_UID;
        r.uid = attr->st_uid;
    }
    if (to_set & FUSE_SET_ATTR_GID) {
        r.valid |= SETATTR_GID;
        r.gid = attr->st_gid;
    }
    if (to_set & FUSE_SET_ATTR_SIZE) {
        r.valid |= SETATTR_SIZE;
        r.size = (uint64_t)attr->st_size;
    }
    /* "Now" is taken here and sent as a value, so that every brick stores
     * the same time. */
    if (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_ATIME_NOW)) {
        r.valid |= SETATTR_ATIME;
        r.atime = (to_set & FUSE_SET_ATTR_ATIME_NOW)
                      ? now_time()
                      : (struct proto_time){attr->st_atim.tv_sec,
                                            (uint32_t)attr->st_atim.tv_nsec};
    }
    if (to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW)) {
        r.valid |= SETATTR_MTIME;
        r.mtime = (to_set & FUSE_SET_ATTR_MTIME_NOW)
                      ? now_time()
                      : (struct proto_time){attr->st_mtim.tv_sec,
                                            (uint32_t)attr->st_mtim.tv_nsec};
    }
    if (r.valid == 0) { /* only ctime (or nothing): a getattr */
        rc = volume_getattr(fs->vol, vi, attr_cb, req);
    } else {
        own_change(fs);
        rc = volume_setattr(fs->vol, vi, &r, setattr_cb, req);
    }
    if (rc < 0)
        fuse_reply_err(req, -stale(rc));
}

/* ---- namespace ---- */

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
                     mode_t mode)
{
    struct rfs_fs *fs = req_fs(req);
    const struct fuse_ctx *ctx = fuse_req_ctx(req);
    struct vinode *pvi = dir_to_change(fs, parent);
    int rc = name_ok(parent, name, true);

    if (rc == 0 && !pvi)
        rc = -ESTALE;
    if (rc == 0)
        rc = volume_mkdir(fs->vol, pvi, name, S_IFDIR | (mode & 07777),
                          ctx->uid, ctx->gid, entry_cb, req);
    if (rc < 0)
        fuse_reply_err(req, -rc);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
                     mode_t mode, dev_t rdev)
{
    struct rfs_fs *fs = req_fs(req);
    const struct fuse_ctx *ctx = fuse_req_ctx(req);
    struct vinode *pvi = dir_to_change(fs, parent);
    int rc = name_ok(parent, name, true);

    if (rc == 0 && !S_ISREG(mode) && !S_ISFIFO(mode))
        rc = -EPERM; /* devices and sockets do not replicate */
    if (rc == 0 && !pvi)
        rc = -ESTALE;
    if (rc == 0)
        rc = volume_mknod(fs->vol, pvi, name, mode, (uint32_t)rdev, ctx->uid,
                          ctx->gid, entry_cb, req);
    if (rc < 0)
        fuse_reply_err(req, -rc);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
                       const char *name)
{
    struct rfs_fs *fs = req_fs(req);
    const struct fuse_ctx *ctx = fuse_req_ctx(req);
    struct vinode *pvi = dir_to_change(fs, parent);
    int rc = name_ok(parent, name, true);

    if (rc == 0 && !pvi)
        rc = -ESTALE;
    if (rc == 0)
        rc = volume_symlink(fs->vol, pvi, name, link, ctx->uid, ctx->gid,
                            entry_cb, req);
    if (rc < 0)
        fuse_reply_err(req, -rc);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
                    const char *newname)
{
    struct rfs_fs *fs = req_fs(req);
    struct vinode *vi = ino_vi(fs, ino);
    struct vinode *pvi = dir_to_change(fs, newparent);
    int rc = name_ok(newparent, newname, true);

    if (rc == 0 && (!vi || !pvi))
        rc = -ESTALE;
    if (rc == 0)
        rc = volume_link(fs->vol, vi, pvi, newname, entry_cb, req);
    if (rc < 0)
        fuse_reply_err(req, -rc);
}

/* unlink, rmdir, rename, flush, fsync: done (the first three and a
 * writer's flush changed something). */
static void status_cb(int status, void *arg)
{
    own_change(req_fs(arg));
    fuse_reply_err(arg, -status);
}

/* unlink and rmdir differ only in the volume call that removes the entry. */
typedef int (*remove_fn)(struct volume *, struct vinode *, const char *,
                         vol_status_cb, void *);

static void remove_entry(fuse_req_t req, fuse_ino_t parent, const char *name,
                         remove_fn fn)
{
    struct rfs_fs *fs = req_fs(req);
    struct vinode *pvi = dir_to_change(fs, parent);
    int rc = name_ok(parent, name, false);

    if (rc == 0 && !pvi)
        rc = -ESTALE;
    if (rc == 0)
        rc = fn(fs->vol, pvi, name, status_cb, req);
    if (rc < 0)
        fuse_reply_err(req, -rc);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    remove_entry(req, parent, name, volume_unlink);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
    remove_entry(req, parent, name, volume_rmdir);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
                      fuse_ino_t newparent, const char *newname,
                      unsigned int flags)
{
    struct rfs_fs *fs = req_fs(req);
    struct vinode *pvi = dir_to_change(fs, parent);
    struct vinode *npvi = dir_to_change(fs, newparent);
    int rc = name_ok(parent, name, false);

    if (rc == 0)
        rc = name_ok(newparent, newname, true);
    if (rc == 0 && (flags & ~(unsigned)RENAME_NOREPLACE))
        rc = -EINVAL; /* RENAME_EXCHANGE, RENAME_WHITEOUT */
    if (rc == 0 && (!pvi || !npvi))
        rc = -ESTALE;
    if (rc == 0)
        rc = volume_rename(fs->vol, pvi, name, npvi, newname,
                           (flags & RENAME_NOREPLACE) ? RENAME_FLAG_NOREPLACE
                                                      : 0,
                           status_cb, req);
    if (rc < 0)
        fuse_reply_err(req, -rc);
}

static void readlink_cb(int status, const uint8_t *data, size_t len, void *arg)
{
    fuse_req_t req = arg;

    (void)len;
    if (status < 0)
        fuse_reply_err(req, -stale(status));
    else
        fuse_reply_readlink(req, (const char *)data);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
    struct rfs_fs *fs = req_fs(req);
    struct vinode *vi = ino_vi(fs, ino);
    int rc = vi ? volume_readlink(fs->vol, vi, readlink_cb, req) : -ESTALE;

    if (rc < 0)
        fuse_reply_err(req, -rc);
}

/* ---- open files ---- */

static void open_cb(int status, struct vfile *f, const struct proto_attr *a,
                    void *arg)
{
    fuse_req_t req = arg;
    struct rfs_fs *fs = req_fs(req);
    struct fuse_file_info fi = {0};
    struct inotab_ent *ent;

    if (status < 0) {
        fuse_reply_err(req, -stale(status));
        return;
    }
    if (fs->stopping) { /* invariant 3 */
        volume_release(fs->vol, f, NULL, NULL);
        fuse_reply_err(req, EIO);
        return;
    }
    fi.fh = (uintptr_t)f;
    /* Close-to-open coherence (invariant 5): the kernel's pages and size
     * are kept only when they belong to the version the brick has now. */
    ent = inotab_by_id(&fs->inodes, volume_inode_id(volume_file_inode(f)));
    if (ent && kstamp_same(ent, a) && !fs_inval_pending(fs, ent)) {
        fi.keep_cache = 1;
    } else {
        fi.keep_cache = 0;
        if (ent) {
            ent->kstamp.valid = false;
            fuse_lowlevel_notify_inval_inode(fs->se, ent->ino, -1, 0);
            /* A lost invalidation is made good by this one and by the
             * pages dropped at open. */
            if (ent->kstamp.inval_seq == INVAL_DROPPED)
                ent->kstamp.inval_seq = 0;
        }
    }
    /* Closing a file opened for reading acknowledges nothing, so the
     * kernel need not ask (one request less per open+read+close; the
     * release still comes).  A writer's flush is its close() answer. */
    fi.noflush = !volume_file_writes(f);
    if (fuse_reply_open(req, &fi) != 0)
        volume_release(fs->vol, f, NULL, NULL);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct rfs_fs *fs = req_fs(req);
    struct vinode *vi = ino_vi(fs, ino);
    int rc = vi ? volume_open(fs->vol, vi, (uint32_t)fi->flags, open_cb, req)
                : -ESTALE;

    if (rc < 0)
        fuse_reply_err(req, -rc);
}

/* create: make (or find) the file, maybe truncate it, open it, reply. */
struct fop_create {
    fuse_req_t req;
    struct rfs_fs *fs;
    struct vinode *vi;        /* a reference once made */
    struct proto_attr attr;
    struct fuse_file_info fi; /* copy of the kernel's */
};

static void create_free(struct fop_create *c)
{
    volume_inode_put(c->vi);
    free(c);
}

static void create_open_cb(int status, struct vfile *f,
                           const struct proto_attr *a, void *arg)
{
    struct fop_create *c = arg;
    struct rfs_fs *fs = c->fs;
    struct fuse_entry_param e;
    struct inotab_ent *ent;
    int rc;

    (void)a;
    if (status < 0) {
        fuse_reply_err(c->req, -status);
        create_free(c);
        return;
    }
    rc = entry_fill(fs, c->vi, &c->attr, &e, &ent);
    if (rc < 0) {
        volume_release(fs->vol, f, NULL, NULL);
        fuse_reply_err(c->req, rc == -ESHUTDOWN ? EIO : -rc);
        create_free(c);
        return;
    }
    inotab_ref(ent);
    c->fi.fh = (uintptr_t)f;
    c->fi.keep_cache = 0;
    if (fuse_reply_create(c->req, &e, &c->fi) != 0) {
        entry_unref(fs, ent, 1);
        volume_release(fs->vol, f, NULL, NULL);
    }
    create_free(c);
}

static void create_open(struct fop_create *c)
{
    int rc = volume_open(c->fs->vol, c->vi, (uint32_t)c->fi.flags,
                         create_open_cb, c);

    if (rc < 0) {
        fuse_reply_err(c->req, -rc);
        create_free(c);
    }
}

static void create_trunc_cb(int status, const struct proto_attr *a, void *arg)
{
    struct fop_create *c = arg;

    own_change(c->fs);
    if (status < 0) {
        fuse_reply_err(c->req, -status);
        create_free(c);
        return;
    }
    c->attr = *a;
    create_open(c);
}

static void create_cb(int status, struct vinode *vi, const struct proto_attr *a,
                      bool created, struct vfile *f, void *arg)
{
    struct fop_create *c = arg;
    struct setattr_req r = {0};
    int rc;

    own_change(c->fs);
    if (status < 0) {
        fuse_reply_err(c->req, -status);
        create_free(c);
        return;
    }
    volume_inode_ref(vi);
    c->vi = vi;
    c->attr = *a;
    if (f) { /* made and opened in one request (CREATE_OPEN) */
        create_open_cb(0, f, a, c);
        return;
    }
    if (created || !(c->fi.flags & O_TRUNC) || a->size == 0) {
        create_open(c);
        return;
    }
    /* It existed (another node made it first) and O_TRUNC asks for it
     * empty: the kernel believes it created the file and will not. */
    r.valid = SETATTR_SIZE;
    r.size = 0;
    rc = volume_setattr(c->fs->vol, vi, &r, create_trunc_cb, c);
    if (rc < 0) {
        fuse_reply_err(c->req, -rc);
        create_free(c);
    }
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
                      mode_t mode, struct fuse_file_info *fi)
{
    struct rfs_fs *fs = req_fs(req);
    const struct fuse_ctx *ctx = fuse_req_ctx(req);
    struct vinode *pvi = dir_to_change(fs, parent);
    struct fop_create *c;
    int rc = name_ok(parent, name, true);

    if (rc == 0 && !pvi)
        rc = -ESTALE;
    if (rc == 0 && !S_ISREG(mode) && (mode & S_IFMT))
        rc = -EINVAL;
    if (rc < 0) {
        fuse_reply_err(req, -rc);
        return;
    }
    c = calloc(1, sizeof(*c));
    if (!c) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    c->req = req;
    c->fs = fs;
    c->fi = *fi;
    rc = volume_create(fs->vol, pvi, name, S_IFREG | (mode & 07777), ctx->uid,
                       ctx->gid, (fi->flags & O_EXCL) != 0,
                       (uint32_t)fi->flags, create_cb, c);
    if (rc < 0) {
        fuse_reply_err(req, -rc);
        free(c);
    }
}

static void read_cb(int status, const uint8_t *data, size_t len, void *arg)
{
    fuse_req_t req = arg;

    if (status < 0)
        fuse_reply_err(req, -status);
    else
        fuse_reply_buf(req, (const char *)data, len);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi)
{
    struct rfs_fs *fs = req_fs(req);
    struct vfile *f = (struct vfile *)(uintptr_t)fi->fh;
    int rc;

    (void)ino;
    if (off < 0) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    rc = volume_read(fs->vol, volume_file_inode(f), (uint64_t)off, size,
                     read_cb, req);
    if (rc < 0)
        fuse_reply_err(req, -rc);
}

struct fop_write {
    fuse_req_t req;
    fuse_ino_t ino;
    uint64_t off;   /* where the kernel believes it writes */
    bool append;
    uint8_t data[]; /* the kernel's buffer is reused for the next request */
};

static void write_cb(int status, uint32_t count, const struct proto_attr *a,
                     void *arg)
{
    struct fop_write *w = arg;

    own_change(req_fs(w->req));
    if (status < 0) {
        fuse_reply_err(w->req, -status);
    } else {
        /* An append went to the bricks' end, not to the kernel's idea of
         * it: its cached pages and size for this file are wrong now. */
        if (w->append && a->size != w->off + count)
            fs_inval_inode(req_fs(w->req), w->ino);
        fuse_reply_write(w->req, count);
    }
    free(w);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
                     size_t size, off_t off, struct fuse_file_info *fi)
{
    struct rfs_fs *fs = req_fs(req);
    struct vfile *f = (struct vfile *)(uintptr_t)fi->fh;
    struct fop_write *w;
    int rc;

    if (off < 0 || size > PROTO_MAX_IO) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    w = malloc(sizeof(*w) + size);
    if (!w) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    w->req = req;
    w->ino = ino;
    w->off = (uint64_t)off;
    /* fi->flags are the file's flags at this write (FUSE 7.9+). */
    w->append = (fi->flags & O_APPEND) != 0;
    memcpy(w->data, buf, size);
    own_change(fs);
    rc = volume_write(fs->vol, f, w->append ? VOLUME_APPEND : (uint64_t)off,
                      w->data, size, write_cb, w);
    if (rc < 0) {
        fuse_reply_err(req, -rc);
        free(w);
    }
}

static void op_flush(fuse_req_t req, fuse_ino_t ino,
                     struct fuse_file_info *fi)
{
    struct rfs_fs *fs = req_fs(req);
    struct vfile *f = (struct vfile *)(uintptr_t)fi->fh;
    int rc = volume_flush(fs->vol, f, status_cb, req);

    (void)ino;
    if (rc < 0)
        fuse_reply_err(req, -rc);
}

static void op_release(fuse_req_t req, fuse_ino_t ino,
                       struct fuse_file_info *fi)
{
    struct rfs_fs *fs = req_fs(req);
    struct vfile *f = (struct vfile *)(uintptr_t)fi->fh;

    (void)ino;
    /* The kernel does not wait for this answer's content: reply now and
     * let the post-op run behind it. */
    volume_release(fs->vol, f, NULL, NULL);
    fuse_reply_err(req, 0);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
                     struct fuse_file_info *fi)
{
    struct rfs_fs *fs = req_fs(req);
    struct vfile *f = (struct vfile *)(uintptr_t)fi->fh;
    int rc = volume_fsync(fs->vol, f, datasync != 0, status_cb, req);

    (void)ino;
    if (rc < 0)
        fuse_reply_err(req, -rc);
}

/* ---- directories ---- */

/* Whether the kernel may keep its cached listing of ent at this opendir
 * (invariant 6); when not, the listing it makes now is vouched for. */
static bool listing_keep(struct rfs_fs *fs, struct inotab_ent *ent)
{
    uint64_t now = uv_now(fs->loop);
    double age_s = (double)(now - ent->listing.since_ms) / 1000.0;

    if (ent->listing.epoch != 0 && ent->listing.epoch == fs->list_epoch &&
        age_s < fs->opts->entry_timeout)
        return true;
    ent->listing.epoch = fs->list_epoch;
    ent->listing.since_ms = now;
    return false;
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino,
                       struct fuse_file_info *fi)
{
    struct rfs_fs *fs = req_fs(req);
    struct inotab_ent *ent = inotab_by_ino(&fs->inodes, ino);
    struct vdir *d;
    int rc = ent ? volume_opendir(fs->vol, ent->data, &d) : -ESTALE;

    if (rc < 0) {
        fuse_reply_err(req, -rc);
        return;
    }
    fi->fh = (uintptr_t)d;
    /* Invariant 6: an unchanged directory is listed by the kernel alone. */
    fi->cache_readdir = 1;
    fi->keep_cache = listing_keep(fs, ent);
    if (fuse_reply_open(req, fi) != 0)
        volume_closedir(d);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino,
                          struct fuse_file_info *fi)
{
    (void)ino;
    volume_closedir((struct vdir *)(uintptr_t)fi->fh);
    fuse_reply_err(req, 0);
}

/* FUSE offsets: 1 after ".", 2 after "..", 2 + k after the volume's
 * entry with next_off k. */
#define DOTS 2

struct fop_readdir {
    fuse_req_t req;
    struct rfs_fs *fs;
    fuse_ino_t ino;
    bool plus;
    size_t size;       /* the kernel's buffer */
    off_t off;
};

static size_t add_dots(struct fop_readdir *r, char *buf, size_t pos)
{
    static const char *const names[DOTS] = {".", ".."};
    struct fuse_entry_param e;

    for (off_t i = r->off; i < DOTS; i++) {
        size_t need;

        memset(&e, 0, sizeof(e));
        e.attr.st_ino = r->ino;
        e.attr.st_mode = S_IFDIR;
        /* For "." and ".." the kernel takes no lookup reference. */
        if (r->plus)
            need = fuse_add_direntry_plus(r->req, buf + pos, r->size - pos,
                                          names[i], &e, i + 1);
        else
            need = fuse_add_direntry(r->req, buf + pos, r->size - pos,
                                     names[i], &e.attr, i + 1);
        if (need > r->size - pos)
            break;
        pos += need;
    }
    return pos;
}

/* Take back the lookup references of entries the kernel did not get. */
static void undo_plus(struct rfs_fs *fs, struct inotab_ent **added, size_t n)
{
    for (size_t i = 0; i < n; i++)
        entry_unref(fs, added[i], 1);
}

/* What a listing tells the kernel of an entry it makes no inode for: the
 * inode number it already knows, or one made from the id. */
static void dirent_stat(struct rfs_fs *fs, const struct proto_attr *a,
                        struct stat *st)
{
    struct inotab_ent *known = inotab_by_id(&fs->inodes, &a->id);

    attr_to_stat(a, known ? known->ino : (rfs_id_hash(&a->id) | 1ull << 63),
                 st);
}

/* Names listed from a dirty copy of the folder may be ones heal undoes:
 * the kernel may cache them for this opendir only (invariant 6). */
static void listing_check_sure(struct rfs_fs *fs, fuse_ino_t ino,
                               const struct vdirent *ents, size_t n)
{
    struct inotab_ent *ent = inotab_by_ino(&fs->inodes, ino);

    for (size_t i = 0; ent && i < n; i++) {
        if (ents[i].unsure) {
            fs_listing_unvouch(ent);
            return;
        }
    }
}

static void readdir_cb(int status, const struct vdirent *ents, size_t n,
                       bool eof, void *arg)
{
    struct fop_readdir *r = arg;
    struct rfs_fs *fs = r->fs;
    struct inotab_ent **added = NULL;
    size_t pos, nadded = 0;
    char *buf;

    (void)eof;
    if (status < 0) {
        fuse_reply_err(r->req, -stale(status));
        free(r);
        return;
    }
    listing_check_sure(fs, r->ino, ents, n);
    buf = malloc(r->size ? r->size : 1);
    if (r->plus && n)
        added = calloc(n, sizeof(*added));
    if (!buf || (r->plus && n && !added)) {
        fuse_reply_err(r->req, ENOMEM);
        goto out;
    }
    pos = add_dots(r, buf, 0);
    for (size_t i = 0; i < n; i++) {
        struct fuse_entry_param e;
        struct inotab_ent *ent = NULL;
        off_t next = (off_t)(ents[i].next_off + DOTS);
        size_t need;

        if (!r->plus) {
            struct stat st;

            dirent_stat(fs, &ents[i].attr, &st);
            need = fuse_add_direntry(r->req, buf + pos, r->size - pos,
                                     ents[i].name, &st, next);
        } else if (ents[i].unsure) {
            /* nodeid 0: the kernel lists the name but makes no entry of
             * it, so a later use of the name is a (quorum) LOOKUP. */
            memset(&e, 0, sizeof(e));
            dirent_stat(fs, &ents[i].attr, &e.attr);
            need = fuse_add_direntry_plus(r->req, buf + pos, r->size - pos,
                                          ents[i].name, &e, next);
        } else {
            struct vinode *vi;

            if (volume_inode_get(fs->vol, &ents[i].attr.id, &vi) < 0)
                break;
            volume_inode_attrs_from(vi, ents[i].brick);
            status = entry_fill(fs, vi, &ents[i].attr, &e, &ent);
            volume_inode_put(vi); /* the table holds its own */
            if (status < 0)
                break;
            need = fuse_add_direntry_plus(r->req, buf + pos, r->size - pos,
                                          ents[i].name, &e, next);
            if (need <= r->size - pos) {
                inotab_ref(ent);
                added[nadded++] = ent;
            } else if (ent->nlookup == 0) {
                entry_unref(fs, ent, 0); /* made for nothing */
            }
        }
        if (need > r->size - pos)
            break;
        pos += need;
    }
    if (fuse_reply_buf(r->req, buf, pos) != 0)
        undo_plus(fs, added, nadded);
out:
    free(added);
    free(buf);
    free(r);
}

static void readdir_common(fuse_req_t req, fuse_ino_t ino, size_t size,
                           off_t off, struct fuse_file_info *fi, bool plus)
{
    struct rfs_fs *fs = req_fs(req);
    struct vdir *d = (struct vdir *)(uintptr_t)fi->fh;
    struct fop_readdir *r = calloc(1, sizeof(*r));
    uint64_t voff = off > DOTS ? (uint64_t)(off - DOTS) : 0;
    int rc;

    if (!r) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    r->req = req;
    r->fs = fs;
    r->ino = ino;
    r->plus = plus;
    r->size = size;
    r->off = off < 0 ? 0 : off;
    rc = volume_readdir(fs->vol, d, voff, size, readdir_cb, r);
    if (rc < 0) {
        fuse_reply_err(req, -rc);
        free(r);
    }
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
    readdir_common(req, ino, size, off, fi, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
                           off_t off, struct fuse_file_info *fi)
{
    readdir_common(req, ino, size, off, fi, true);
}

/* ---- the rest ---- */

static void statfs_cb(int status, const struct statfs_rep *s, void *arg)
{
    fuse_req_t req = arg;
    struct statvfs st;

    if (status < 0) {
        fuse_reply_err(req, -status);
        return;
    }
    memset(&st, 0, sizeof(st));
    st.f_bsize = s->bsize;
    st.f_frsize = s->bsize;
    st.f_blocks = s->blocks;
    st.f_bfree = s->bfree;
    st.f_bavail = s->bavail;
    st.f_files = s->files;
    st.f_ffree = s->ffree;
    st.f_favail = s->ffree;
    st.f_namemax = s->namemax;
    fuse_reply_statfs(req, &st);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
    int rc = volume_statfs(req_fs(req)->vol, statfs_cb, req);

    (void)ino;
    if (rc < 0)
        fuse_reply_err(req, -rc);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
    struct rfs_fs *fs = userdata;

    /* The kernel sets the readahead from this reply (never above its own
     * 128 KiB): ours goes in after it (main.c poll_cb). */
    fs->init_seen = true;
    /* One WRITE frame per kernel write: both are 1 MiB at most. */
    if (conn->max_write > PROTO_MAX_IO)
        conn->max_write = PROTO_MAX_IO;
    /* O_TRUNC arrives as a setattr (one change, one transaction) rather
     * than hidden in open. */
    conn->want &= ~FUSE_CAP_ATOMIC_O_TRUNC;
    /* Locks stay local to one node (documented in docs/client.md). */
    conn->want &= ~(FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS);
    conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
    /* A getattr that shows a new mtime drops the cached pages: with it,
     * the pages always belong to the attributes the kernel holds, which is
     * what open_cb's keep_cache decision relies on (invariant 5). */
    if (conn->capable & FUSE_CAP_AUTO_INVAL_DATA)
        conn->want |= FUSE_CAP_AUTO_INVAL_DATA;
    conn->time_gran = 1;
}

const struct fuse_lowlevel_ops rfs_ll_ops = {
    .init = op_init,
    .lookup = op_lookup,
    .forget = op_forget,
    .forget_multi = op_forget_multi,
    .getattr = op_getattr,
    .setattr = op_setattr,
    .readlink = op_readlink,
    .mknod = op_mknod,
    .mkdir = op_mkdir,
    .unlink = op_unlink,
    .rmdir = op_rmdir,
    .symlink = op_symlink,
    .rename = op_rename,
    .link = op_link,
    .open = op_open,
    .read = op_read,
    .write = op_write,
    .flush = op_flush,
    .release = op_release,
    .fsync = op_fsync,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .readdirplus = op_readdirplus,
    .releasedir = op_releasedir,
    .statfs = op_statfs,
    .create = op_create,
};

static void put_vinode(void *data)
{
    volume_inode_put(data);
}

void fs_drop_inodes(struct rfs_fs *fs)
{
    ncache_fini(&fs->names);
    inotab_fini(&fs->inodes, put_vinode);
}
