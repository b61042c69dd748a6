/*
 * The replication engine: one volume = one brick_conn per brick, and every
 * filesystem operation turned into brick calls (docs/client.md).
 *
 * Everything runs on one libuv loop thread.  Operations are asynchronous:
 * each volume_*() call either returns -errno at once (and never calls its
 * callback), or returns 0 and calls its callback exactly once, always later
 * from the loop, never from inside the volume_*() call itself.  Pointers
 * passed to a callback are valid only during the callback.
 *
 * Objects are named by `struct vinode` (one per object id, reference
 * counted); open files by `struct vfile`.  The engine keeps per-object
 * replication state there: which bricks the others blame (read policy), and
 * the eager inode lock of the write transaction (txn.c).
 *
 * Changes (setattr, write, create, mkdir, ...) follow the write transaction
 * of docs/architecture.md and need a majority of bricks: without it they fail
 * with -EROFS.  Reads go to one good brick and fail over to another.
 */
#ifndef RFS_CLIENT_VOLUME_H
#define RFS_CLIENT_VOLUME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "replicafs/proto.h"

struct vol_config;
struct volume;
struct vinode;
struct vfile;
struct vdir;

#define VOLUME_POST_OP_DELAY_MS 20u /* idle time before the post-op */
#define VOLUME_MAX_HOLD_MS 300u     /* longest one eager lock is kept */

struct volume_opts {
    unsigned ping_timeout_ms;  /* 0: 5000 */
    unsigned prefer_brick;     /* 1-based brick preferred for reads; 0: none */
    unsigned post_op_delay_ms; /* 0: VOLUME_POST_OP_DELAY_MS */
    unsigned max_hold_ms;      /* 0: VOLUME_MAX_HOLD_MS */
    bool read_only;            /* every change fails with -EROFS */
    bool no_leases;            /* never open from a read lease */
    /* An INVAL event from a brick (another client changed something);
     * may be NULL.  msg is valid during the call. */
    void (*on_inval)(const struct inval_event *msg, void *arg);
    /* A brick link came up or went down: INVAL events may have been
     * missed meanwhile, and reads may go to another brick; may be NULL. */
    void (*on_links_changed)(void *arg);
    /* The engine met an object some brick is blamed for (it needs heal);
     * may be NULL.  Called often: the callee rate-limits. */
    void (*on_heal_needed)(void *arg);
    void *arg;
};

/* One directory entry as volume_readdir() hands it out. */
struct vdirent {
    const char *name; /* NUL-terminated; valid during the callback */
    struct proto_attr attr;
    uint64_t next_off; /* offset to resume after this entry */
    /* Listed from a copy of the folder with a change under way or left
     * undecided: the name may be one heal will undo, so nothing about it
     * may be cached (it is looked up, by a quorum, when used). */
    bool unsure;
    int brick; /* 0-based: the brick the attributes come from */
};

typedef void (*vol_status_cb)(int status, void *arg);
/* attr is NULL unless status == 0. */
typedef void (*vol_attr_cb)(int status, const struct proto_attr *attr,
                            void *arg);
/* An object that was looked up or made: vi is borrowed (take a reference
 * with volume_inode_ref() to keep it); created is false when CREATE found
 * an existing file.  vi and attr are NULL unless status == 0. */
typedef void (*vol_entry_cb)(int status, struct vinode *vi,
                             const struct proto_attr *attr, bool created,
                             void *arg);
/* volume_create: as vol_entry_cb, and f the file opened with it when it
 * was made (NULL when created is false, or on failure). */
typedef void (*vol_create_cb)(int status, struct vinode *vi,
                              const struct proto_attr *attr, bool created,
                              struct vfile *f, void *arg);
typedef void (*vol_data_cb)(int status, const uint8_t *data, size_t len,
                            void *arg);
typedef void (*vol_write_cb)(int status, uint32_t count,
                             const struct proto_attr *attr, void *arg);
typedef void (*vol_open_cb)(int status, struct vfile *f,
                            const struct proto_attr *attr, void *arg);
typedef void (*vol_readdir_cb)(int status, const struct vdirent *ents,
                               size_t n, bool eof, void *arg);
typedef void (*vol_statfs_cb)(int status, const struct statfs_rep *st,
                              void *arg);

/* ---- lifecycle ---- */

/*
 * Make a volume for cfg (copied) on loop.  Nothing happens on the network
 * until volume_start().  Returns 0 or -ENOMEM/-EINVAL; *out untouched on
 * failure.
 */
int volume_new(uv_loop_t *loop, const struct vol_config *cfg,
               const struct volume_opts *opts, struct volume **out);
/* Connect to every brick; each link reconnects by itself from then on. */
void volume_start(struct volume *v);
/*
 * Run the loop until every brick is up, or timeout_ms passes.  Returns the
 * number of bricks up.  For start-up only (it runs the loop).
 */
unsigned volume_wait_ready(struct volume *v, unsigned timeout_ms);
/*
 * Fail every outstanding call (their callbacks run, with errors), close the
 * links, free v once its handles are closed, then call done(arg) (may be
 * NULL).  Open vfiles and vinode references must have been dropped first
 * or be dropped from those callbacks; v is dead after done.
 */
void volume_close(struct volume *v, void (*done)(void *), void *arg);

unsigned volume_nbricks(const struct volume *v);
unsigned volume_quorum(const struct volume *v);
/* Bricks that are UP now, as a bit mask (bit i = brick i+1). */
uint32_t volume_up_mask(const struct volume *v);
const char *volume_name(const struct volume *v);
/*
 * Until when (uv_hrtime() / 1000) the mount has heard enough to vouch for
 * what INVAL events would have told it: a quorum of UP bricks answered a
 * request sent at or after T, so every change a quorum committed before T
 * had its INVAL handed out (brick_conn_fresh_us); the result is T + the
 * ping timeout, the staleness allowed to a mount cut off from the bricks.
 * 0 with fewer than a quorum up.
 */
uint64_t volume_vouch_until_us(const struct volume *v);

/* ---- objects ---- */

/*
 * The vinode for id, made if needed, with one more reference (drop it with
 * volume_inode_put()).  Returns 0 or -ENOMEM.
 */
int volume_inode_get(struct volume *v, const struct rfs_id *id,
                     struct vinode **out);
/* One more reference to vi (e.g. one borrowed from a callback). */
void volume_inode_ref(struct vinode *vi);
/* Drop one reference; vi may be freed. */
void volume_inode_put(struct vinode *vi);
const struct rfs_id *volume_inode_id(const struct vinode *vi);
/* The attributes handed to the kernel for vi came from brick (0-based; a
 * listing's vdirent.brick): vi's attributes are asked of it from now on
 * while it is good (bricks' times differ; volume_int.h, attr_brick). */
void volume_inode_attrs_from(struct vinode *vi, int brick);
/* Bricks the others blame for vi, as far as this client knows (bit mask). */
uint32_t volume_inode_blamed(const struct vinode *vi);

/* ---- reads: one good brick, failing over ---- */

int volume_lookup(struct volume *v, struct vinode *parent, const char *name,
                  vol_entry_cb cb, void *arg);
int volume_getattr(struct volume *v, struct vinode *vi, vol_attr_cb cb,
                   void *arg);
/* data is the NUL-terminated target, len its length. */
int volume_readlink(struct volume *v, struct vinode *vi, vol_data_cb cb,
                    void *arg);
/* size is not limited by PROTO_MAX_IO: larger reads are split.  Short only
 * at end of file. */
int volume_read(struct volume *v, struct vinode *vi, uint64_t off,
                size_t size, vol_data_cb cb, void *arg);
int volume_statfs(struct volume *v, vol_statfs_cb cb, void *arg);

/*
 * Directory listing.  volume_opendir() makes a handle (no network); each
 * volume_readdir() gives the entries from offset off (0 = start, else a
 * vdirent.next_off seen before), at most max_bytes of them counted as
 * proto_dirent_size() (at least one entry).  A listing stays on one brick;
 * if that brick fails it restarts on another and skips the names already
 * given out.
 */
int volume_opendir(struct volume *v, struct vinode *vi, struct vdir **out);
int volume_readdir(struct volume *v, struct vdir *d, uint64_t off,
                   size_t max_bytes, vol_readdir_cb cb, void *arg);
/* Free d; an outstanding volume_readdir() still gets its callback. */
void volume_closedir(struct vdir *d);

/* ---- changes: write transactions, quorum ---- */

/* req->id is ignored (vi's id is used). */
int volume_setattr(struct volume *v, struct vinode *vi,
                   const struct setattr_req *req, vol_attr_cb cb, void *arg);
int volume_mkdir(struct volume *v, struct vinode *parent, const char *name,
                 uint32_t mode, uint32_t uid, uint32_t gid, vol_entry_cb cb,
                 void *arg);
/* mode: S_IFREG or S_IFIFO (the brick refuses others). */
int volume_mknod(struct volume *v, struct vinode *parent, const char *name,
                 uint32_t mode, uint32_t rdev, uint32_t uid, uint32_t gid,
                 vol_entry_cb cb, void *arg);
int volume_symlink(struct volume *v, struct vinode *parent, const char *name,
                   const char *target, uint32_t uid, uint32_t gid,
                   vol_entry_cb cb, void *arg);
/* excl: fail with -EEXIST if the name exists; else an existing regular
 * file is returned with created = false.  A file it makes it also opens
 * (oflags: open(2) flags, as volume_open) in the same request (CREATE_OPEN):
 * the callback's f, to free with volume_release().  An existing file is
 * not opened: the caller opens it (after truncating it, maybe). */
int volume_create(struct volume *v, struct vinode *parent, const char *name,
                  uint32_t mode, uint32_t uid, uint32_t gid, bool excl,
                  uint32_t oflags, vol_create_cb cb, void *arg);
int volume_link(struct volume *v, struct vinode *vi, struct vinode *newparent,
                const char *newname, vol_entry_cb cb, void *arg);
int volume_unlink(struct volume *v, struct vinode *parent, const char *name,
                  vol_status_cb cb, void *arg);
int volume_rmdir(struct volume *v, struct vinode *parent, const char *name,
                 vol_status_cb cb, void *arg);
/* flags: enum rename_flags. */
int volume_rename(struct volume *v, struct vinode *parent, const char *name,
                  struct vinode *newparent, const char *newname,
                  uint32_t flags, vol_status_cb cb, void *arg);

/* ---- open files ---- */

/*
 * Open vi (flags: open(2) flags; only O_ACCMODE travels).  On success the
 * callback gets a vfile that holds a reference to vi; free it with
 * volume_release().
 */
int volume_open(struct volume *v, struct vinode *vi, uint32_t flags,
                vol_open_cb cb, void *arg);
struct vinode *volume_file_inode(const struct vfile *f);
/* Was f opened for writing?  (Only then does its close() acknowledge.) */
bool volume_file_writes(const struct vfile *f);
/* No change of vi by this client is open or on its way: no file open for
 * writing, no eager lock (whose post-op still changes the copies' ctime). */
bool volume_inode_quiet(const struct vinode *vi);
/* off VOLUME_APPEND: at the end of the file as the bricks have it (an
 * O_APPEND write), whatever the caller believes the size is. */
#define VOLUME_APPEND UINT64_MAX
/* data (len <= PROTO_MAX_IO) is borrowed until cb.  The reply's attr is
 * the file's after the write (its size ends the written range). */
int volume_write(struct volume *v, struct vfile *f, uint64_t off,
                 const void *data, size_t len, vol_write_cb cb, void *arg);
/* Wait for this file's queued changes and end its eager lock (post-op). */
int volume_flush(struct volume *v, struct vfile *f, vol_status_cb cb,
                 void *arg);
int volume_fsync(struct volume *v, struct vfile *f, bool datasync,
                 vol_status_cb cb, void *arg);
/* Like flush, then tell the bricks and free f; cb may be NULL. */
void volume_release(struct volume *v, struct vfile *f, vol_status_cb cb,
                    void *arg);

#endif
