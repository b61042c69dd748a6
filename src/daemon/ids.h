/*
 * Objects by id: resolution of an rfs_id to an open fd on the brick, and the
 * LRU cache of those fds (never one fd per inode: the cache has a fixed cap).
 * See ids.c for the design block and docs/brick-layout.md for the on-disk
 * side (.replicafs/ids/).
 */
#ifndef RFS_DAEMON_IDS_H
#define RFS_DAEMON_IDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "list.h"
#include "replicafs/proto.h"

struct store;
struct obj;

#define IDS_XATTR_ID "trusted.rfs.id"
#define IDS_PATH_LEN 36 /* "hh/" + 32 hex + NUL */
#define IDS_DEFAULT_CAP 1024

enum obj_orphan { /* pins.c: an object that lost its last name while open */
    ORPHAN_NO = 0,    /* it has a name (or nobody pins it) */
    ORPHAN_MOVING,    /* its ids/ link is being renamed to orphans/ */
    ORPHAN_LINKED,    /* its link is orphans/<hex> */
    ORPHAN_IDS,       /* the move failed: its link is still ids/hh/<hex> */
    ORPHAN_BARE,      /* no link at all (the fd keeps it alive) */
};

enum obj_state {
    OBJ_RESOLVING = 0, /* a resolve op runs; users wait on `waiters` */
    OBJ_READY,         /* fd is open */
};

struct ids_wait;
/* status 0: o is referenced for the caller (release with ids_put()); else
 * -errno and o is NULL.  May run before ids_get() returns. */
typedef void (*ids_cb)(struct ids_wait *w, struct obj *o, int status);

struct ids_wait { /* embedded in the waiting op; no allocation */
    struct ids_wait *next;
    ids_cb cb;
};

struct obj {
    struct rfs_id id;
    int fd;                  /* owned; -1 while RESOLVING */
    mode_t type;             /* S_IFMT bits */
    bool opath;              /* fd is O_PATH: no fgetxattr/read/write */
    bool hashed;             /* findable by id; false once forgotten */
    enum obj_state state;
    unsigned refs;           /* users; the root holds one forever */
    struct obj *hnext;       /* hash chain; owned by ids */
    struct list lru;         /* on ids.lru iff READY && refs == 0 && hashed */
    struct ids_wait *waiters;/* RESOLVING: callers to wake */
    struct obj *waiting_on;  /* RESOLVING dir: the parent it waits for */
    struct list xops;        /* markers.c: queued xattrops, head runs */
    unsigned pins;           /* pins.c: connections that have it OPEN; each
                                holds one of `refs` */
    uint8_t orphan;          /* enum obj_orphan; pins.c */
    bool reap_pending;       /* pins.c: unpinned while ORPHAN_MOVING */
    uint8_t sums_state;      /* ops_csum.c: enum csum_state */
    unsigned sums_busy;      /* ops_csum.c: data changes in flight */
    uint32_t sums_gen;       /* ops_csum.c: bumped by every data change */
};

struct ids {
    struct store *st;        /* borrowed */
    struct obj **tab;        /* owned; hash buckets */
    size_t nbuckets;         /* power of two */
    size_t count;            /* hashed objects */
    size_t nopen;            /* objects holding an fd (incl. forgotten) */
    size_t cap;              /* target max of nopen */
    struct list lru;         /* idle objects, coldest first */
    struct obj *root;        /* owned; the brick root, never evicted */
    uint64_t hits, misses, evictions;
};

/*
 * Set up an empty cache over st with room for `cap` open fds (0: default).
 * The root object uses a dup of st->root_fd.  0 or -ENOMEM/-errno.
 */
int ids_init(struct ids *ids, struct store *st, size_t cap);
/* Close every cached fd and free the table.  No object may be in use. */
void ids_fini(struct ids *ids);

/*
 * Find or resolve id; w->cb is called exactly once (maybe before return)
 * with a referenced object or -ENOENT (no such id, or it fails
 * verification), -ELOOP, -ENOMEM, -EIO...
 */
void ids_get(struct ids *ids, const struct rfs_id *id, struct ids_wait *w,
             ids_cb cb);
/* A referenced READY object for id if cached, else NULL.  Never blocks. */
struct obj *ids_find(struct ids *ids, const struct rfs_id *id);
void ids_ref(struct obj *o);
/* Drop a reference; an idle object goes to the LRU (or closes if forgotten). */
void ids_put(struct ids *ids, struct obj *o);
/*
 * Cache an fd the caller just opened for a verified id (LOOKUP, CREATE...).
 * Consumes fd: it is closed if id is already cached or being resolved.
 * Returns the cached object (not referenced: use it before the loop turns),
 * or NULL when it could not be cached.
 */
struct obj *ids_insert_take(struct ids *ids, const struct rfs_id *id, int fd,
                            mode_t type, bool opath);
/* The object is gone from the namespace: stop finding it by id; its fd is
 * closed once unreferenced.  No-op for NULL. */
void ids_forget(struct ids *ids, struct obj *o);
/* ids_forget() of the cached object of id, if any. */
void ids_forget_id(struct ids *ids, const struct rfs_id *id);
/* RELEASE hint: if cached and idle, make it the next to evict. */
void ids_cool(struct ids *ids, const struct rfs_id *id);

/* "hh/<32hex>" (the ids/ entry path relative to ids_fd) into out. */
void ids_path(const struct rfs_id *id, char out[IDS_PATH_LEN]);
/* Parse a dir id symlink text "<32hex>/<name>".  0 or -EINVAL. */
int ids_parse_dirlink(const char *text, size_t len, struct rfs_id *parent,
                      char name[PROTO_NAME_MAX + 1]);
/* Compose a dir id symlink text into out[PROTO_PATH_MAX]. */
void ids_format_dirlink(const struct rfs_id *parent, const char *name,
                        char out[PROTO_PATH_MAX]);
/* Wire form of an id for the trusted.rfs.id xattr (hi LE, lo LE). */
void ids_id_encode(const struct rfs_id *id, uint8_t out[16]);
void ids_id_decode(const uint8_t in[16], struct rfs_id *id);

/*
 * xattrs of objects whose fd is O_PATH (symlinks, fifos): fgetxattr refuses
 * O_PATH fds, so these go through /proc/self/fd/N, which names the inode
 * itself.  Synchronous: only used for the rare non-regular objects (see the
 * comment in ids.c).  Return like getxattr/setxattr but -errno.
 */
ssize_t ids_opath_getxattr(int fd, const char *name, void *buf, size_t len);
/*
 * Is dfd/name crash debris: a name without trusted.rfs.id (ops_create.c
 * invariant 1)?  1 (st filled, for its type), 0 when it is an object of
 * ours or cannot be told, -errno when it cannot be opened.  Blocking: for
 * the thread pool.
 */
int ids_debris_at(int dfd, const char *name, struct stat *st);
int ids_opath_setxattr(int fd, const char *name, const void *buf, size_t len);

#endif
