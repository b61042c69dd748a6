/*
 * The brick's disk engine: one io_uring ring whose completions are reaped on
 * the libuv loop, plus libuv's thread pool for what io_uring cannot do.
 *
 * An operation embeds a struct store_op (or a struct store_work for the
 * thread pool), calls one of the store_<syscall>() preps, and gets its
 * callback exactly once with the result (>= 0, or -errno).  The op owns the
 * memory its SQE points to (paths, buffers, struct statx, struct open_how)
 * until that callback.  See store.c for the design block.
 */
#ifndef RFS_DAEMON_STORE_H
#define RFS_DAEMON_STORE_H

#include <fcntl.h>
#include <liburing.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <uv.h>

struct store_op;
/* res: cqe->res (>= 0 or -errno); -EAGAIN when the ring had no free SQE. */
typedef void (*store_cb)(struct store_op *op, int res);

struct store_op {
    store_cb cb;            /* set by the prep; called exactly once */
    struct store_op *next;  /* on store.deferred while waiting to fail */
    int res;                /* result for a deferred completion */
};

struct store_work;
typedef void (*store_work_fn)(struct store_work *w); /* runs on a pool thread */
typedef void (*store_done_fn)(struct store_work *w); /* back on the loop */

struct store_work {
    uv_work_t req;          /* libuv's; req.data unused */
    struct store *st;       /* borrowed */
    store_work_fn work;
    store_done_fn done;
};

struct store {
    uv_loop_t *loop;            /* borrowed */
    struct io_uring ring;       /* owned; torn down in store_close() */
    bool ring_ok;               /* ring initialised */
    int efd;                    /* owned eventfd registered with the ring */
    uv_poll_t poll;             /* watches efd; closed in store_close() */
    uv_prepare_t prepare;       /* submits the batch once per iteration */
    uv_idle_t idle;             /* delivers `deferred` (store.c) */
    unsigned unsubmitted;       /* SQEs prepared since the last submit */
    uint64_t inflight;          /* SQEs + pool works not yet completed */
    struct store_op *deferred;  /* completions for idle_cb, in order */
    struct store_op *deferred_tail;
    bool inline_meta;           /* metadata calls on the loop thread */
    int root_fd;                /* owned: brick root, O_RDONLY|O_DIRECTORY */
    int meta_fd;                /* owned: .replicafs */
    int ids_fd;                 /* owned: .replicafs/ids */
    int heal_fd;                /* owned: .replicafs/heal */
    int tmp_fd;                 /* owned: .replicafs/tmp */
    int orphans_fd;             /* owned: .replicafs/orphans (made if missing) */
    int sums_fd;                /* owned: .replicafs/sums (made if missing) */
    uint64_t nsubmit;           /* io_uring_submit calls (metrics) */
};

/* RESOLVE_* flags used for every client-named path: stay beneath the dirfd,
 * follow no symlinks at all (also not /proc magic links), no mount crossing. */
#define STORE_RESOLVE                                                           \
    (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |           \
     RESOLVE_NO_XDEV)

/*
 * Open the brick's directories under dir (which must already be a stamped
 * brick: .replicafs/{ids,heal,tmp} exist; orphans/ and sums/ are made if
 * missing, for bricks stamped before they existed), set up a ring of `depth` entries
 * with an eventfd watched by the loop.  Returns 0 or -errno; on failure
 * nothing is left open and no handle is registered.
 */
int store_open(struct store *st, uv_loop_t *loop, const char *dir,
               unsigned depth);
/*
 * Tear down: must be called with inflight == 0.  Closes the uv handles (their
 * close callbacks run on the next loop turn; st must stay allocated until
 * then), the ring and the directory fds.
 */
void store_close(struct store *st);

/* ---- io_uring preps: each arranges exactly one later call of cb ---- */
void store_openat2(struct store *st, struct store_op *op, store_cb cb, int dfd,
                   const char *path, struct open_how *how);
void store_statx(struct store *st, struct store_op *op, store_cb cb, int dfd,
                 const char *path, int flags, struct statx *stx);
void store_read(struct store *st, struct store_op *op, store_cb cb, int fd,
                void *buf, unsigned len, uint64_t off);
void store_write(struct store *st, struct store_op *op, store_cb cb, int fd,
                 const void *buf, unsigned len, uint64_t off);
void store_fsync(struct store *st, struct store_op *op, store_cb cb, int fd,
                 bool datasync);
void store_mkdirat(struct store *st, struct store_op *op, store_cb cb, int dfd,
                   const char *path, mode_t mode);
void store_symlinkat(struct store *st, struct store_op *op, store_cb cb,
                     const char *target, int dfd, const char *path);
void store_linkat(struct store *st, struct store_op *op, store_cb cb,
                  int olddfd, const char *oldpath, int newdfd,
                  const char *newpath, int flags);
void store_unlinkat(struct store *st, struct store_op *op, store_cb cb, int dfd,
                    const char *path, int flags);
void store_renameat(struct store *st, struct store_op *op, store_cb cb,
                    int olddfd, const char *oldpath, int newdfd,
                    const char *newpath, unsigned flags);
void store_fgetxattr(struct store *st, struct store_op *op, store_cb cb, int fd,
                     const char *name, void *value, unsigned len);
void store_fsetxattr(struct store *st, struct store_op *op, store_cb cb, int fd,
                     const char *name, const void *value, unsigned len,
                     int flags);
/* Close fd through the ring, result ignored (the last close of an unlinked
 * file frees its blocks, which must not stall the loop). */
void store_close_fd(struct store *st, int fd);

/* Run w->work on libuv's thread pool, then w->done on the loop. */
void store_queue_work(struct store *st, struct store_work *w,
                      store_work_fn work, store_done_fn done);

#endif
