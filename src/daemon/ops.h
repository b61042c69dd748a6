/*
 * The brick operations (one handler per opcode, in ops_*.c) and the small
 * helpers they share.  Each handler gets a decoded request, runs as a step
 * machine over the store (io_uring) or the thread pool, and ends in exactly
 * one req_reply().  Callbacks are named <op>_<step>_cb.
 */
#ifndef RFS_DAEMON_OPS_H
#define RFS_DAEMON_OPS_H

#include <stdbool.h>
#include <sys/stat.h>

#include "ids.h"
#include "req.h"
#include "server.h"
#include "store.h"

#define META_NAME ".replicafs"

/* handlers: ops_attr.c */
void op_ping(struct req *r);
void op_getattr(struct req *r);
void op_setattr(struct req *r);
void op_open(struct req *r);
void op_openx(struct req *r);
void op_readlink(struct req *r);
void op_statfs(struct req *r);
void op_release(struct req *r);
void op_lease_ack(struct req *r);
void op_lookup(struct req *r);
/* ops_create.c */
void op_mkdir(struct req *r);
void op_create(struct req *r);
void op_mknod(struct req *r);
void op_symlink(struct req *r);
/* ops_ns.c */
void op_link(struct req *r);
void op_unlink(struct req *r);
void op_rmdir(struct req *r);
void op_rename(struct req *r);
/* ops_io.c */
void op_read(struct req *r);
void op_write(struct req *r);
void op_fsync(struct req *r);
/* ops_csum.c */
void op_checksum(struct req *r);
/* ops_dir.c */
void op_readdir(struct req *r);
void op_heal_list(struct req *r);
/* ops_lock.c, markers.c */
void op_inodelk(struct req *r);
void op_entrylk(struct req *r);
void op_xattrop(struct req *r);
/*
 * Ask the lock manager for (dom, id, name) on behalf of r's connection and
 * `owner`, with cb for a queued grant (ops_lock.c): lockmgr_lock's result
 * (0 granted, 1 queued, -errno).  lk is the caller's and must stay alive
 * until cb when queued.  INODELK, ENTRYLK and XATTROP's XO_LOCK all take
 * their locks here.
 */
int ops_lock_take(struct req *r, struct lk_req *lk, enum lk_domain dom,
                  const struct rfs_id *id, const char *name, uint64_t owner,
                  uint32_t type, uint32_t flags, lk_cb cb);

/* ---- shared helpers: ops_util.c ---- */

/* Fill a wire attr from statx; non-directories show nlink - 1 (the ids/
 * link is not a name a client can see). */
void attr_from_statx(struct proto_attr *a, const struct rfs_id *id,
                     const struct statx *stx);
/* The same from a struct stat (pool threads use fstatat). */
void attr_from_stat(struct proto_attr *a, const struct rfs_id *id,
                    const struct stat *st);
/* Is name the hidden metadata dir of the brick root? */
bool is_meta_name(const struct server *srv, const struct obj *parent,
                  const char *name);
/* Open flags to cache an object of this type: regular files O_RDWR,
 * directories O_RDONLY|O_DIRECTORY, everything else O_PATH. */
int obj_open_flags(mode_t type);

/*
 * probe: find out what `name` under directory fd `dirfd` is: statx, open it
 * (flags by type, openat2 beneath, no symlinks), read its trusted.rfs.id.
 * cb(p, 0) with p->fd (owned by the caller now), p->id, p->type, p->stx;
 * or -ENOENT (absent, or no id: an object the daemon did not make) or
 * another -errno, with nothing left open.
 */
struct probe;
typedef void (*probe_cb)(struct probe *p, int status);
struct probe {
    struct store_op sop;
    struct store *st;          /* borrowed */
    int dirfd;                 /* borrowed */
    const char *name;          /* borrowed; lives in the request */
    probe_cb cb;
    struct statx stx;
    struct open_how how;
    int fd;
    mode_t type;
    bool opath;
    struct rfs_id id;
    uint8_t idbuf[16];
};
void probe_start(struct probe *p, struct store *st, int dirfd,
                 const char *name, probe_cb cb);

/*
 * Reply to r with the attr of o (statx on its fd), then drop the reference
 * on o.  Consumes both.
 */
void reply_attr_of(struct req *r, struct obj *o);

/* Get the object of id for r; on failure replies -errno itself. */
struct get1;
typedef void (*get1_cb)(struct get1 *g, struct obj *o);
struct get1 {
    struct ids_wait w;
    struct req *r;
    get1_cb cb;
};
void get1_start(struct get1 *g, struct req *r, const struct rfs_id *id,
                get1_cb cb);

/* ---- block sums upkeep (ops_csum.c; sums.c has the design) ----
 * csum_write_begin: before WRITE/truncating SETATTR changes o's data in
 * [off, off + len) (len CSUM_TO_END: a truncate to off): voids the stored
 * sums of the touched blocks (sums.c invariant 2).  csum_write_end: after
 * the change (rc: its result), stamps the sums file with the file's new
 * state.  Calls pair up exactly.  csum_forget: the object of id is gone;
 * remove its sums file (async, best effort). */
#define CSUM_TO_END UINT64_MAX
void csum_write_begin(struct server *srv, struct obj *o, uint64_t off,
                      uint64_t len);
void csum_write_end(struct server *srv, struct obj *o);
void csum_forget(struct server *srv, const struct rfs_id *id);

/* A directory's dirty counter, read now (markers.c): 0 or -errno. */
int markers_dirty_now(const struct obj *o, int64_t *dirty);
/*
 * The dirty mark a CREATE_LOCK file is born with (markers.c): its heal
 * index entry, then trusted.rfs.dirty = 1 on fd (markers.c invariant 2),
 * as XATTROP dirty+1 would leave a new, unmarked file.  cb gets 0 or
 * -errno; on failure the index entry may stay (a superset is allowed:
 * HEAL_LIST drops entries whose id resolves nowhere).  The caller owns b
 * and fd until cb.
 */
struct markers_birth;
typedef void (*markers_birth_cb)(struct markers_birth *b, int status);
struct markers_birth { /* embedded in the caller's op */
    struct healidx_op hop;
    struct store_op sop;
    struct server *srv;        /* borrowed */
    int fd;                    /* borrowed */
    markers_birth_cb cb;
    uint8_t dbuf[8];
};
void markers_birth(struct server *srv, struct markers_birth *b, int fd,
                   const struct rfs_id *id, markers_birth_cb cb);
/*
 * Read o's markers as an all-zero XATTROP would, in line with the
 * xattrops queued on o (markers.c invariant 1), for OPENX.  cb runs
 * exactly once (maybe before this returns), with rc 0 or -errno and the
 * reply an XATTROP would have sent; r is the caller's request, still
 * unanswered, and o stays referenced by the caller.
 */
struct markers_read;
typedef void (*markers_read_cb)(struct markers_read *mr, int rc,
                                const struct xattrop_rep *rep);
struct markers_read { /* embedded in the caller's op */
    markers_read_cb cb;
};
void markers_read(struct req *r, struct obj *o, struct markers_read *mr,
                  markers_read_cb cb);
/* Does this XATTROP change some pending counter (markers.c)? */
bool xattrop_pending_delta(const struct xattrop_req *m);
/* Is some MKDIR/CREATE/... of this brick making a name in dir right now
 * (ops_create.c invariant 4)? */
bool ops_creating_in(struct server *srv, const struct rfs_id *dir);
/*
 * INVAL events to the other clients after a change (server.c).  With
 * recall_by (the change's request, its reply not yet sent), every read
 * lease on id is recalled too, the changer's own included, and that reply
 * waits until they are given back (leases.c).
 */
void server_inval(struct server *srv, const struct conn *except,
                  const struct rfs_id *id, uint32_t what,
                  const struct rfs_id *parent, const char *name,
                  struct req *recall_by);

#endif
