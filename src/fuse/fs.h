/*
 * mount.replicafs internals: the filesystem state shared by main.c (process,
 * loop, session), opts.c (command line) and ops.c (FUSE low-level ops).
 */
#ifndef RFS_FUSE_FS_H
#define RFS_FUSE_FS_H

#define FUSE_USE_VERSION 314

#include <fuse_lowlevel.h>
#include <stdbool.h>
#include <uv.h>

#include "client/inotab.h"
#include "client/ncache.h"
#include "client/volume.h"
#include "common/log.h"

/* What the command line asks for (opts.c). */
struct mount_opts {
    char *volfile;            /* owned: absolute path */
    char *mountpoint;         /* owned: absolute path */
    bool foreground;          /* -f or -d */
    bool debug;               /* -d: debug log */
    bool read_only;           /* ro */
    double attr_timeout;      /* s */
    double entry_timeout;     /* s */
    unsigned ping_timeout_ms;
    unsigned prefer_brick;    /* 0: none */
    unsigned readahead_kb;    /* 0: the kernel's own (128 KiB) */
    bool self_heal;           /* run heal in the background (selfheal.c) */
    bool no_leases;           /* every open asks the bricks */
    bool no_namecache;        /* every kernel LOOKUP asks a brick */
    enum log_level log_level;
    struct fuse_args fargs;   /* owned: argv for fuse_session_new() */
};

/*
 * Parse `mount.replicafs VOLFILE MOUNTPOINT [-o opts] [-f] [-d]` (as
 * mount(8) calls it too).  Returns 0; 1 when it printed help or version
 * (exit 0); -EINVAL after printing the error to stderr.  On failure o holds
 * nothing to free.
 */
int mount_opts_parse(int argc, char **argv, struct mount_opts *o);
void mount_opts_free(struct mount_opts *o);

/* The mounted filesystem: one per process. */
struct rfs_fs {
    uv_loop_t *loop;            /* borrowed: main's */
    struct mount_opts *opts;    /* borrowed: main's */
    struct volume *vol;         /* owned: closed in fs_stop() */
    struct fuse_session *se;    /* owned by main */
    struct inotab inodes;       /* entries hold a vinode reference */
    uv_poll_t poll;             /* on fuse_session_fd() */
    bool poll_started;
    struct fuse_buf buf;        /* receive buffer, reused */
    uv_signal_t sig[3];         /* INT, TERM, HUP */
    unsigned nsig;              /* of sig[] initialised */
    bool stopping;              /* fs_stop() ran: answer, do not grow */
    bool unmounted;
    bool init_seen;             /* FUSE INIT answered (op_init) */
    bool readahead_done;        /* opts->readahead_kb applied or tried */
    unsigned inflight;          /* requests not yet answered */
    struct notifier *notifier;  /* owned: kernel invalidations (notify.c) */
    uint64_t list_epoch;        /* cached listings are vouched for only at
                                   this epoch; bumped whenever an INVAL may
                                   have been missed (ops.c invariant 6) */
    struct ncache names;        /* names LOOKUP may be answered from
                                   (ops.c invariant 7) */
    uint64_t nc_epoch;          /* names are vouched for only at this
                                   epoch; bumped as list_epoch is, and when
                                   a change by this mount starts or ends */
    uint64_t inval_gen;         /* INVAL events received */
    uv_process_t heal_proc;     /* background heal (selfheal.c) */
    bool heal_running;          /* heal_proc is a live child */
    uint64_t heal_last;         /* loop ms of the last start; 0: never */
    bool heal_again;            /* asked again since the last start */
    uv_timer_t heal_timer;      /* the next start, when asked too soon */
    bool heal_timer_ok;         /* heal_timer initialised, not closed */
};

/* The notifier thread (notify.c): start once the session is mounted;
 * stop before it is unmounted.  0 or -errno. */
int notifier_start(struct rfs_fs *fs);
void notifier_stop(struct rfs_fs *fs);
/* volume_opts.on_inval: another client changed an object (arg: the fs). */
void fs_on_inval(const struct inval_event *ev, void *arg);
/* Drop the kernel's cached pages and attributes of ino, soon (from the
 * notifier thread: safe while a request on it is in flight). */
void fs_inval_inode(struct rfs_fs *fs, fuse_ino_t ino);
/* An invalidation of ent is queued and not applied yet (notify.c
 * invariant 4): what the kernel holds of it may be older than kstamp. */
bool fs_inval_pending(struct rfs_fs *fs, const struct inotab_ent *ent);
/* kstamp.inval_seq of an inode one of whose invalidations was lost. */
#define INVAL_DROPPED UINT64_MAX
/* volume_opts.on_links_changed: INVAL events may have been missed, so no
 * cached directory listing is vouched for any more (arg: the fs). */
void fs_on_links_changed(void *arg);

/* A name in the directory ent changed: the kernel's cached listing of it
 * may not be kept at the next opendir (ops.c invariant 6). */
static inline void fs_listing_unvouch(struct inotab_ent *ent)
{
    ent->listing.epoch = 0;
}

/* The guard process (guard.c): start once mounted, from main's thread;
 * it aborts the FUSE connection if that thread ends without
 * guard_release() (kill -9).  0 or -errno; *bye_fd is the guard's pipe. */
int guard_start(const char *mountpoint, int *bye_fd);
/* mountdev.c: the device numbers of the FUSE mount on mountpoint (from
 * mountinfo; never stat()s it), and setting its readahead.  0 or -errno. */
int mount_dev(const char *mountpoint, unsigned *maj, unsigned *min);
int mount_set_readahead(const char *mountpoint, unsigned kb);
/* A clean exit: the guard leaves the connection alone. */
void guard_release(int *bye_fd);

/* volume_opts.on_heal_needed: run `replicafs heal` in the background,
 * rate-limited (selfheal.c). */
void fs_heal_needed(void *arg);
/* Set up (once the loop runs the session); end a background heal still
 * running and close the timer (stopping). */
void fs_heal_init(struct rfs_fs *fs);
void fs_heal_stop(struct rfs_fs *fs);

/* The low-level operations (ops.c). */
extern const struct fuse_lowlevel_ops rfs_ll_ops;

/* Release everything the kernel referenced (inode table entries).  Called
 * once when stopping, before the volume is closed. */
void fs_drop_inodes(struct rfs_fs *fs);

/* Begin the orderly stop: stop reading the session, unmount, close the
 * volume; uv_run() returns when everything is closed (main.c). */
void fs_stop(struct rfs_fs *fs, const char *why);

#endif
