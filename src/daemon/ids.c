/*
 * Id -> open fd: resolution and the LRU fd cache.
 *
 * Design.  A client names objects by 128-bit id.  On the brick,
 * .replicafs/ids/hh/<hex> is a hard link to every non-directory object and,
 * for a directory, a symlink whose text is "<parent hex>/<name>" (never
 * followed by the kernel: we parse it and open the name beneath the parent).
 * Resolving an id is therefore at most: statx the ids entry, open it (or
 * resolve the parent and open the name under it), verify trusted.rfs.id.
 *
 * Telling a dir link from a symlink object: both are symlinks in ids/.  A
 * symlink object's ids entry is a hard link, so its nlink is >= 2 while the
 * object has a name; a dir link is its own inode, nlink 1.  A symlink object
 * left with nlink 1 (crash between unlink and ids cleanup) is read as a dir
 * link, fails the id verification and resolves to -ENOENT, which is right.
 *
 * Object states (which function moves it):
 *
 *   (absent) --ids_get: miss--> RESOLVING --resolve_done(0)--> READY
 *                                   |                            |
 *                     resolve_done(-errno): freed       ids_forget: unhashed,
 *                                                       freed at refs == 0
 *   READY && refs == 0  <-> on the LRU; evicted (fd closed) when nopen > cap
 *
 * Invariants:
 *  1. An object is on the LRU iff READY, hashed and refs == 0; only LRU
 *     objects are evicted, so an fd in use (by an SQE or a pool thread) is
 *     never closed under it.
 *  2. Every waiter of a RESOLVING object is called exactly once.
 *  3. No id resolves into .replicafs/: the root's child ".replicafs" is
 *     refused, every open is openat2 RESOLVE_BENEATH|NO_SYMLINKS from a
 *     directory fd, and the result must carry the id asked for.
 *  4. A chain of RESOLVING dirs waiting on each other never closes a cycle
 *     (checked through waiting_on): a corrupt ids/ gives -ELOOP, not a hang.
 *  5. The root object is hashed, READY and referenced from init to fini.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "common/id.h"
#include "common/log.h"
#include "idhash.h"
#include "ids.h"
#include "store.h"

struct resolve { /* one cache miss being resolved */
    struct store_op sop;
    struct ids *ids;             /* borrowed */
    struct obj *o;               /* borrowed: RESOLVING, in the table */
    char path[IDS_PATH_LEN];
    struct statx stx;
    struct open_how how;
    char name[PROTO_NAME_MAX + 1];
    struct obj *parent;          /* referenced while held */
    struct ids_wait pwait;
    uint8_t idbuf[16];
};

/* ---- small helpers ---- */

void ids_path(const struct rfs_id *id, char out[IDS_PATH_LEN])
{
    char hex[RFS_ID_HEX_LEN + 1];

    rfs_id_to_hex(id, hex);
    snprintf(out, IDS_PATH_LEN, "%.2s/%s", hex, hex);
}

void ids_id_encode(const struct rfs_id *id, uint8_t out[16])
{
    for (int i = 0; i < 8; i++) {
        out[i] = (uint8_t)(id->hi >> (8 * i));
        out[8 + i] = (uint8_t)(id->lo >> (8 * i));
    }
}

void ids_id_decode(const uint8_t in[16], struct rfs_id *id)
{
    id->hi = id->lo = 0;
    for (int i = 0; i < 8; i++) {
        id->hi |= (uint64_t)in[i] << (8 * i);
        id->lo |= (uint64_t)in[8 + i] << (8 * i);
    }
}

int ids_parse_dirlink(const char *text, size_t len, struct rfs_id *parent,
                      char name[PROTO_NAME_MAX + 1])
{
    char hex[RFS_ID_HEX_LEN + 1];
    size_t nlen;

    if (len < RFS_ID_HEX_LEN + 2 || text[RFS_ID_HEX_LEN] != '/')
        return -EINVAL;
    nlen = len - RFS_ID_HEX_LEN - 1;
    if (proto_name_check(text + RFS_ID_HEX_LEN + 1, nlen) < 0)
        return -EINVAL;
    memcpy(hex, text, RFS_ID_HEX_LEN);
    hex[RFS_ID_HEX_LEN] = '\0';
    if (rfs_id_from_hex(hex, parent) < 0)
        return -EINVAL;
    memcpy(name, text + RFS_ID_HEX_LEN + 1, nlen);
    name[nlen] = '\0';
    return 0;
}

void ids_format_dirlink(const struct rfs_id *parent, const char *name,
                        char out[PROTO_PATH_MAX])
{
    char hex[RFS_ID_HEX_LEN + 1];

    rfs_id_to_hex(parent, hex);
    snprintf(out, PROTO_PATH_MAX, "%s/%s", hex, name);
}

/*
 * Why synchronous: fgetxattr(2) refuses O_PATH fds and io_uring's path
 * getxattr follows symlinks, so there is no async way to read a symlink's
 * own xattrs.  Only symlinks and fifos take this path (rare in upload
 * trees), the inode is already open (so in the inode cache) and the call
 * does no path walk beyond /proc's magic link.
 */
ssize_t ids_opath_getxattr(int fd, const char *name, void *buf, size_t len)
{
    char p[64];
    ssize_t n;

    snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
    n = getxattr(p, name, buf, len);
    return n < 0 ? -errno : n;
}

int ids_debris_at(int dfd, const char *name, struct stat *st)
{
    uint8_t id[16];
    int fd = openat(dfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    int debris;

    if (fd < 0)
        return -errno;
    debris = ids_opath_getxattr(fd, IDS_XATTR_ID, id, sizeof(id)) == -ENODATA &&
             fstat(fd, st) == 0;
    close(fd);
    return debris;
}

int ids_opath_setxattr(int fd, const char *name, const void *buf, size_t len)
{
    char p[64];

    snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
    return setxattr(p, name, buf, len, 0) < 0 ? -errno : 0;
}

/* ---- the table ---- */

static size_t bucket(const struct ids *ids, const struct rfs_id *id)
{
    return rfs_id_hash(id) & (ids->nbuckets - 1);
}

static struct obj *lookup(const struct ids *ids, const struct rfs_id *id)
{
    struct obj *o = ids->tab[bucket(ids, id)];

    while (o && !rfs_id_eq(&o->id, id))
        o = o->hnext;
    return o;
}

static void grow(struct ids *ids)
{
    size_t n = ids->nbuckets * 2;
    struct obj **tab = calloc(n, sizeof(*tab));

    if (!tab)
        return; /* keep the longer chains; still correct */
    IDHASH_REHASH(struct obj, ids->tab, ids->nbuckets, tab, n, hnext, id);
    free(ids->tab);
    ids->tab = tab;
    ids->nbuckets = n;
}

static void hash_add(struct ids *ids, struct obj *o)
{
    size_t b;

    if (ids->count >= ids->nbuckets)
        grow(ids);
    b = bucket(ids, &o->id);
    o->hnext = ids->tab[b];
    ids->tab[b] = o;
    o->hashed = true;
    ids->count++;
}

static void hash_del(struct ids *ids, struct obj *o)
{
    struct obj **pp = &ids->tab[bucket(ids, &o->id)];

    if (!o->hashed)
        return;
    while (*pp != o)
        pp = &(*pp)->hnext;
    *pp = o->hnext;
    o->hashed = false;
    ids->count--;
}

static struct obj *obj_new(const struct rfs_id *id)
{
    struct obj *o = calloc(1, sizeof(*o));

    if (!o)
        return NULL;
    o->id = *id;
    o->fd = -1;
    list_init(&o->lru);
    list_init(&o->xops);
    return o;
}

static void obj_free(struct ids *ids, struct obj *o)
{
    if (o->fd >= 0) {
        store_close_fd(ids->st, o->fd);
        ids->nopen--;
    }
    free(o);
}

static void evict(struct ids *ids)
{
    while (ids->nopen > ids->cap && !list_empty(&ids->lru)) {
        struct obj *o = container_of(ids->lru.next, struct obj, lru);

        list_del(&o->lru);
        hash_del(ids, o);
        ids->evictions++;
        obj_free(ids, o);
    }
}

int ids_init(struct ids *ids, struct store *st, size_t cap)
{
    struct rfs_id root = RFS_ROOT_ID;

    memset(ids, 0, sizeof(*ids));
    ids->st = st;
    ids->cap = cap ? cap : IDS_DEFAULT_CAP;
    ids->nbuckets = 256;
    list_init(&ids->lru);
    ids->tab = calloc(ids->nbuckets, sizeof(*ids->tab));
    if (!ids->tab)
        return -ENOMEM;
    ids->root = obj_new(&root);
    if (!ids->root)
        goto err_free_tab;
    ids->root->fd = dup(st->root_fd);
    if (ids->root->fd < 0)
        goto err_free_root;
    ids->root->type = S_IFDIR;
    ids->root->state = OBJ_READY;
    ids->root->refs = 1; /* invariant 5 */
    ids->nopen = 1;
    hash_add(ids, ids->root);
    return 0;
err_free_root:
    free(ids->root);
err_free_tab:
    free(ids->tab);
    ids->tab = NULL;
    return -ENOMEM;
}

void ids_fini(struct ids *ids)
{
    if (!ids->tab)
        return;
    for (size_t i = 0; i < ids->nbuckets; i++) {
        while (ids->tab[i]) {
            struct obj *o = ids->tab[i];

            ids->tab[i] = o->hnext;
            assert(o->state == OBJ_READY);
            if (o->fd >= 0)
                close(o->fd);
            free(o);
        }
    }
    free(ids->tab);
    ids->tab = NULL;
    ids->count = ids->nopen = 0;
    list_init(&ids->lru);
}

void ids_ref(struct obj *o)
{
    if (o->refs++ == 0)
        list_del(&o->lru); /* invariant 1 */
}

void ids_put(struct ids *ids, struct obj *o)
{
    assert(o->refs > 0);
    if (--o->refs > 0)
        return;
    if (!o->hashed) {
        obj_free(ids, o);
        return;
    }
    list_add_tail(&ids->lru, &o->lru);
    evict(ids);
}

struct obj *ids_find(struct ids *ids, const struct rfs_id *id)
{
    struct obj *o = lookup(ids, id);

    if (!o || o->state != OBJ_READY)
        return NULL;
    ids_ref(o);
    return o;
}

struct obj *ids_insert_take(struct ids *ids, const struct rfs_id *id, int fd,
                            mode_t type, bool opath)
{
    struct obj *o;

    if (lookup(ids, id) || !(o = obj_new(id))) {
        store_close_fd(ids->st, fd);
        return NULL;
    }
    o->fd = fd;
    o->type = type;
    o->opath = opath;
    o->state = OBJ_READY;
    ids->nopen++;
    hash_add(ids, o);
    evict(ids); /* the others: o is not on the LRU yet, so it stays */
    list_add_tail(&ids->lru, &o->lru);
    return o;
}

void ids_forget(struct ids *ids, struct obj *o)
{
    if (!o || o == ids->root || !o->hashed)
        return;
    hash_del(ids, o);
    if (o->refs == 0) { /* idle: it was on the LRU */
        list_del(&o->lru);
        obj_free(ids, o);
    }
}

void ids_forget_id(struct ids *ids, const struct rfs_id *id)
{
    struct obj *o = lookup(ids, id);

    if (o && o->state == OBJ_READY)
        ids_forget(ids, o);
}

void ids_cool(struct ids *ids, const struct rfs_id *id)
{
    struct obj *o = lookup(ids, id);

    if (o && o->state == OBJ_READY && o->refs == 0) {
        list_del(&o->lru);
        list_add_head(&ids->lru, &o->lru);
    }
}

/* ---- resolution of a cache miss ---- */

static void resolve_done(struct resolve *r, int status)
{
    struct ids *ids = r->ids;
    struct obj *o = r->o;
    struct ids_wait *w = o->waiters;
    unsigned n = 0;

    if (r->parent)
        ids_put(ids, r->parent);
    o->waiters = NULL;
    o->waiting_on = NULL;
    free(r);
    if (status < 0) {
        /* Invariant 2: every waiter hears the error; nobody holds o. */
        hash_del(ids, o);
        if (o->fd >= 0)
            ids->nopen++; /* balanced by obj_free() */
        obj_free(ids, o);
        for (struct ids_wait *next; w; w = next) {
            next = w->next;
            w->cb(w, NULL, status);
        }
        return;
    }
    o->state = OBJ_READY;
    ids->nopen++;
    for (struct ids_wait *x = w; x; x = x->next)
        n++;
    o->refs += n; /* hand out all references before any callback runs */
    for (struct ids_wait *next; w; w = next) {
        next = w->next;
        w->cb(w, o, 0);
    }
    evict(ids);
}

static void resolve_verify_id(struct resolve *r, ssize_t n)
{
    struct rfs_id got;

    if (n == -ENODATA || n == 16) {
        if (n == 16)
            ids_id_decode(r->idbuf, &got);
        if (n == 16 && rfs_id_eq(&got, &r->o->id)) {
            resolve_done(r, 0);
            return;
        }
        log_debug("ids: %s: object without matching trusted.rfs.id", r->path);
        resolve_done(r, -ENOENT);
        return;
    }
    resolve_done(r, n < 0 ? (int)n : -EIO);
}

static void resolve_verify_cb(struct store_op *sop, int res)
{
    struct resolve *r = container_of(sop, struct resolve, sop);

    resolve_verify_id(r, res);
}

static void resolve_open_cb(struct store_op *sop, int res)
{
    struct resolve *r = container_of(sop, struct resolve, sop);
    struct obj *o = r->o;

    if (res < 0) {
        resolve_done(r, res == -ELOOP || res == -ENOTDIR ? -ENOENT : res);
        return;
    }
    o->fd = res;
    if (o->opath) {
        resolve_verify_id(r, ids_opath_getxattr(o->fd, IDS_XATTR_ID, r->idbuf,
                                                sizeof(r->idbuf)));
        return;
    }
    store_fgetxattr(r->ids->st, &r->sop, resolve_verify_cb, o->fd, IDS_XATTR_ID,
                    r->idbuf, sizeof(r->idbuf));
}

static void resolve_parent_cb(struct ids_wait *w, struct obj *p, int status)
{
    struct resolve *r = container_of(w, struct resolve, pwait);
    bool meta;

    r->o->waiting_on = NULL;
    if (status < 0) {
        resolve_done(r, status);
        return;
    }
    r->parent = p;
    meta = p == r->ids->root && strcmp(r->name, ".replicafs") == 0;
    if (p->type != S_IFDIR || meta) { /* invariant 3 */
        resolve_done(r, -ENOENT);
        return;
    }
    r->how = (struct open_how){.flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW,
                               .resolve = STORE_RESOLVE};
    store_openat2(r->ids->st, &r->sop, resolve_open_cb, p->fd, r->name,
                  &r->how);
}

static void get_inner(struct ids *ids, const struct rfs_id *id,
                      struct ids_wait *w, ids_cb cb, struct obj *child);

static void resolve_dir(struct resolve *r)
{
    char text[PROTO_PATH_MAX];
    struct rfs_id parent;
    ssize_t n;

    /* Why synchronous: io_uring has no readlink.  The statx just before
     * brought this dentry and its tiny inode into the cache, so this is a
     * memory copy, not disk I/O. */
    n = readlinkat(r->ids->st->ids_fd, r->path, text, sizeof(text) - 1);
    if (n < 0) {
        resolve_done(r, -errno);
        return;
    }
    if (ids_parse_dirlink(text, (size_t)n, &parent, r->name) < 0) {
        log_warn("ids: %s: malformed dir link", r->path);
        resolve_done(r, -ENOENT);
        return;
    }
    r->o->type = S_IFDIR;
    get_inner(r->ids, &parent, &r->pwait, resolve_parent_cb, r->o);
}

static void resolve_stat_cb(struct store_op *sop, int res)
{
    struct resolve *r = container_of(sop, struct resolve, sop);
    mode_t type = r->stx.stx_mode & S_IFMT;
    int flags = O_PATH | O_NOFOLLOW;

    if (res < 0) {
        resolve_done(r, res);
        return;
    }
    if (type == S_IFLNK && r->stx.stx_nlink == 1) {
        resolve_dir(r);
        return;
    }
    if (type == S_IFDIR) { /* ids/ never holds a directory itself */
        resolve_done(r, -ENOENT);
        return;
    }
    r->o->type = type;
    r->o->opath = type != S_IFREG;
    if (type == S_IFREG)
        flags = O_RDWR | O_NOFOLLOW;
    r->how = (struct open_how){.flags = flags, .resolve = STORE_RESOLVE};
    store_openat2(r->ids->st, &r->sop, resolve_open_cb, r->ids->st->ids_fd,
                  r->path, &r->how);
}

static bool would_cycle(const struct obj *p, const struct obj *child)
{
    for (const struct obj *x = p; x; x = x->waiting_on)
        if (x == child)
            return true;
    return false;
}

static void start_resolve(struct ids *ids, const struct rfs_id *id,
                          struct ids_wait *w, ids_cb cb)
{
    struct obj *o = obj_new(id);
    struct resolve *r = calloc(1, sizeof(*r));

    if (!o || !r) {
        free(o);
        free(r);
        cb(w, NULL, -ENOMEM);
        return;
    }
    ids->misses++;
    hash_add(ids, o);
    w->cb = cb;
    w->next = NULL;
    o->waiters = w;
    r->ids = ids;
    r->o = o;
    ids_path(id, r->path);
    store_statx(ids->st, &r->sop, resolve_stat_cb, ids->st->ids_fd, r->path,
                AT_SYMLINK_NOFOLLOW, &r->stx);
}

static void get_inner(struct ids *ids, const struct rfs_id *id,
                      struct ids_wait *w, ids_cb cb, struct obj *child)
{
    struct obj *o = lookup(ids, id);

    if (rfs_id_is_zero(id)) {
        cb(w, NULL, -ENOENT);
        return;
    }
    if (!o) {
        start_resolve(ids, id, w, cb);
        if (child && (o = lookup(ids, id)) && o->state == OBJ_RESOLVING)
            child->waiting_on = o;
        return;
    }
    if (o->state == OBJ_READY) {
        ids->hits++;
        ids_ref(o);
        cb(w, o, 0);
        return;
    }
    if (child && would_cycle(o, child)) { /* invariant 4 */
        log_warn("ids: directory link cycle through an id being resolved");
        cb(w, NULL, -ELOOP);
        return;
    }
    if (child)
        child->waiting_on = o;
    w->cb = cb;
    w->next = o->waiters;
    o->waiters = w;
}

void ids_get(struct ids *ids, const struct rfs_id *id, struct ids_wait *w,
             ids_cb cb)
{
    get_inner(ids, id, w, cb, NULL);
}
