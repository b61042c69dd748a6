/*
 * mount.replicafs: mount a replicafs volume with FUSE.
 *
 * Design
 * ======
 * One thread, one libuv loop.  The FUSE session fd is watched by a uv_poll
 * in the same loop as the brick connections; when it is readable, requests
 * are read with fuse_session_receive_buf() and handed to the low-level ops
 * (ops.c) with fuse_session_process_buf().  An op starts an asynchronous
 * volume operation and returns; its reply is sent from the loop later.
 * Nothing ever blocks the loop on the network.
 *
 *   parse options -> [fork: the parent waits on a pipe] -> load the volume
 *   file -> connect to the bricks (until all are up or the ping timeout) ->
 *   fuse_session_mount -> fork the guard (guard.c: aborts the connection
 *   should this process die without unmounting) -> tell the parent "ready"
 *   (it exits 0, so mount(8) returns when the filesystem is usable) -> run
 *   the loop
 *
 *   stop: SIGINT/SIGTERM/SIGHUP (fs_stop unmounts), or the kernel reports
 *   the unmount (read gives ENODEV) -> stop reading, drop the inode table,
 *   close the volume -> the loop ends when its last handle is closed ->
 *   fuse_session_destroy.
 *
 * Exit codes: 0 ok, 1 usage or configuration, 32 mount failure (as
 * mount(8) helpers do).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "common/auth.h"
#include "common/config.h"
#include "common/id.h"
#include "fuse/fs.h"

#define EXIT_USAGE 1
#define EXIT_MOUNT 32
#define RECV_BATCH 64 /* requests read per wakeup before other work */

/* ---- daemonizing ---- */

/* Fork; the parent waits for the child's one-byte exit status and exits
 * with it.  Returns in the child, with the pipe's write end, or -errno. */
static int daemonize_start(int *notify_fd)
{
    int p[2];
    pid_t pid;
    unsigned char code;

    if (pipe(p) < 0)
        return -errno;
    pid = fork();
    if (pid < 0) {
        close(p[0]);
        close(p[1]);
        return -errno;
    }
    if (pid > 0) {
        close(p[1]);
        if (read(p[0], &code, 1) != 1)
            _exit(EXIT_MOUNT); /* the child died before it was ready */
        _exit(code);
    }
    close(p[0]);
    setsid();
    *notify_fd = p[1];
    return 0;
}

static void notify_parent(int *notify_fd, unsigned char code)
{
    if (*notify_fd < 0)
        return;
    if (write(*notify_fd, &code, 1) != 1) {
        /* the parent is gone: nobody to tell */
    }
    close(*notify_fd);
    *notify_fd = -1;
}

/* The mount is up: leave the terminal and log to syslog from now on. */
static void detach_stdio(const struct mount_opts *o)
{
    int fd = open("/dev/null", O_RDWR);

    log_setup("mount.replicafs", true, o->log_level);
    if (fd >= 0) {
        dup2(fd, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        if (fd > 2)
            close(fd);
    }
    if (chdir("/") < 0) {
        /* cannot happen; nothing depends on the cwd */
    }
}

/* ---- the loop ---- */

static void handle_closed_cb(uv_handle_t *h)
{
    (void)h;
}

void fs_stop(struct rfs_fs *fs, const char *why)
{
    if (fs->stopping)
        return;
    fs->stopping = true;
    log_info("stopping (%s)", why);
    if (fs->poll_started) {
        uv_poll_stop(&fs->poll);
        uv_close((uv_handle_t *)&fs->poll, handle_closed_cb);
        fs->poll_started = false;
    }
    for (unsigned i = 0; i < fs->nsig; i++)
        uv_close((uv_handle_t *)&fs->sig[i], handle_closed_cb);
    fs->nsig = 0;
    if (fs->se) {
        fuse_session_exit(fs->se);
        notifier_stop(fs); /* it writes to the fd the unmount closes */
        /* The poll is stopped first: unmounting closes the session fd. */
        if (!fs->unmounted)
            fuse_session_unmount(fs->se);
    }
    fs->unmounted = true;
    fs_heal_stop(fs); /* the loop ends once the child is reaped */
    fs_drop_inodes(fs);
    volume_close(fs->vol, NULL, NULL);
}

/* After INIT: the kernel has just set the mount's readahead from the INIT
 * reply, and only now will ours stay (mountdev.c says why ours). */
static void fs_set_readahead(struct rfs_fs *fs)
{
    unsigned kb = fs->opts->readahead_kb;
    int rc = kb ? mount_set_readahead(fs->opts->mountpoint, kb) : 0;

    fs->readahead_done = true;
    if (rc < 0) /* not root, or no sysfs: the kernel's 128 KiB stays */
        log_warn("readahead not set to %u KiB: %s", kb, strerror(-rc));
}

static void poll_cb(uv_poll_t *h, int status, int events)
{
    struct rfs_fs *fs = h->data;

    (void)events;
    if (status < 0) {
        fs_stop(fs, uv_strerror(status));
        return;
    }
    for (int i = 0; i < RECV_BATCH && !fs->stopping; i++) {
        int res = fuse_session_receive_buf(fs->se, &fs->buf);

        if (res == -EINTR)
            continue;
        if (res == -EAGAIN)
            return;
        if (res <= 0 || fuse_session_exited(fs->se)) {
            /* 0: the kernel said ENODEV, i.e. someone unmounted us */
            if (res == 0)
                fs->unmounted = true;
            fs_stop(fs, res == 0 ? "unmounted" : strerror(-res));
            return;
        }
        fuse_session_process_buf(fs->se, &fs->buf);
        if (fs->init_seen && !fs->readahead_done)
            fs_set_readahead(fs);
    }
}

static void signal_cb(uv_signal_t *h, int signum)
{
    fs_stop(h->data, strsignal(signum));
}

/* ---- start-up ---- */

static int fs_init(struct rfs_fs *fs, uv_loop_t *loop, struct mount_opts *o,
                   const struct vol_config *cfg)
{
    struct volume_opts vo = {
        .ping_timeout_ms = o->ping_timeout_ms,
        .prefer_brick = o->prefer_brick,
        .read_only = o->read_only,
        .no_leases = o->no_leases,
        .on_inval = fs_on_inval,
        .on_links_changed = fs_on_links_changed,
        .on_heal_needed = fs_heal_needed,
        .arg = fs,
    };
    struct rfs_id root = RFS_ROOT_ID;
    struct inotab_ent *ent;
    struct vinode *vi;
    int rc;

    memset(fs, 0, sizeof(*fs));
    fs->loop = loop;
    fs->opts = o;
    fs->list_epoch = 1;
    fs->nc_epoch = 1;
    rc = inotab_init(&fs->inodes);
    if (rc < 0)
        return rc;
    rc = ncache_init(&fs->names);
    if (rc < 0)
        goto err_fini_inodes;
    rc = volume_new(loop, cfg, &vo, &fs->vol);
    if (rc < 0)
        goto err_fini_names;
    rc = volume_inode_get(fs->vol, &root, &vi);
    if (rc < 0)
        goto err_close_volume;
    rc = inotab_add(&fs->inodes, &root, vi, &ent); /* ino 1, never forgotten */
    if (rc < 0) {
        volume_inode_put(vi);
        goto err_close_volume;
    }
    return 0;
err_close_volume:
    volume_close(fs->vol, NULL, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
err_fini_names:
    ncache_fini(&fs->names);
err_fini_inodes:
    inotab_fini(&fs->inodes, NULL);
    return rc;
}

static int connect_bricks(struct rfs_fs *fs, const struct mount_opts *o)
{
    unsigned wait_ms = o->ping_timeout_ms < 1000 ? 1000 : o->ping_timeout_ms;
    unsigned n = volume_nbricks(fs->vol);
    unsigned up;

    volume_start(fs->vol);
    up = volume_wait_ready(fs->vol, wait_ms);
    if (up < volume_quorum(fs->vol))
        log_warn("only %u of %u bricks reachable: changes fail with EROFS "
                 "until %u are up (reconnecting in the background)",
                 up, n, volume_quorum(fs->vol));
    else if (up < n)
        log_warn("%u of %u bricks up; the others are retried in the "
                 "background", up, n);
    else
        log_info("all %u bricks of volume '%s' are up", n,
                 volume_name(fs->vol));
    return 0;
}

static int session_start(struct rfs_fs *fs, struct mount_opts *o)
{
    static const int sigs[3] = {SIGINT, SIGTERM, SIGHUP};
    int fd, rc;

    fs->se = fuse_session_new(&o->fargs, &rfs_ll_ops, sizeof(rfs_ll_ops), fs);
    if (!fs->se) {
        log_err("cannot make the FUSE session (bad options?)");
        return -EINVAL;
    }
    if (fuse_session_mount(fs->se, o->mountpoint) != 0) {
        log_err("cannot mount on %s", o->mountpoint);
        return -EIO;
    }
    fd = fuse_session_fd(fs->se);
    /* Readable is all we wait for; reading must never block the loop. */
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    rc = uv_poll_init(fs->loop, &fs->poll, fd);
    if (rc < 0)
        return rc;
    fs->poll.data = fs;
    fs->poll_started = true;
    fs_heal_init(fs);
    rc = notifier_start(fs);
    if (rc < 0)
        log_warn("no kernel invalidations (%s): other mounts' changes show "
                 "after the attr/entry timeout", strerror(-rc));
    uv_poll_start(&fs->poll, UV_READABLE, poll_cb);
    for (unsigned i = 0; i < 3; i++) {
        uv_signal_init(fs->loop, &fs->sig[i]);
        fs->sig[i].data = fs;
        fs->nsig = i + 1;
        uv_signal_start(&fs->sig[i], signal_cb, sigs[i]);
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct mount_opts o;
    struct vol_config cfg;
    struct rfs_fs fs;
    uv_loop_t loop;
    char err[512];
    int notify_fd = -1, guard_fd = -1;
    int rc;

    rc = mount_opts_parse(argc, argv, &o);
    if (rc != 0)
        return rc > 0 ? 0 : EXIT_USAGE;
    signal(SIGPIPE, SIG_IGN);
    log_setup("mount.replicafs", false, o.log_level);
    if (vol_config_load(o.volfile, &cfg, err, sizeof(err)) < 0) {
        log_err("%s: %s", o.volfile, err);
        mount_opts_free(&o);
        return EXIT_USAGE;
    }
    if (o.prefer_brick > cfg.nbricks) {
        log_err("prefer-brick=%u, but volume '%s' has %u bricks",
                o.prefer_brick, cfg.name, cfg.nbricks);
        mount_opts_free(&o);
        return EXIT_USAGE;
    }
    if (auth_init() < 0) {
        log_err("cannot initialise libsodium");
        mount_opts_free(&o);
        return EXIT_MOUNT;
    }
    if (!o.foreground && daemonize_start(&notify_fd) < 0) {
        log_err("fork: %s", strerror(errno));
        mount_opts_free(&o);
        return EXIT_MOUNT;
    }
    uv_loop_init(&loop);
    rc = fs_init(&fs, &loop, &o, &cfg);
    explicit_bzero(cfg.key, sizeof(cfg.key));
    if (rc < 0) {
        log_err("start-up: %s", strerror(-rc));
        notify_parent(&notify_fd, EXIT_MOUNT);
        return EXIT_MOUNT;
    }
    connect_bricks(&fs, &o);
    rc = session_start(&fs, &o);
    if (rc < 0) {
        notify_parent(&notify_fd, EXIT_MOUNT);
        fs_stop(&fs, "mount failed");
        uv_run(&loop, UV_RUN_DEFAULT);
        if (fs.se)
            fuse_session_destroy(fs.se);
        uv_loop_close(&loop);
        mount_opts_free(&o);
        return EXIT_MOUNT;
    }
    log_info("volume '%s' mounted on %s", volume_name(fs.vol), o.mountpoint);
    rc = guard_start(o.mountpoint, &guard_fd);
    if (rc < 0)
        log_warn("no guard process (%s): after kill -9 the mount may need "
                 "a manual abort (docs/admin.md)", strerror(-rc));
    notify_parent(&notify_fd, 0);
    if (!o.foreground)
        detach_stdio(&o);
    uv_run(&loop, UV_RUN_DEFAULT);
    fuse_session_destroy(fs.se);
    guard_release(&guard_fd);
    free(fs.buf.mem);
    if (uv_loop_close(&loop) != 0)
        log_warn("loop closed with handles still open");
    log_info("unmounted %s", o.mountpoint);
    mount_opts_free(&o);
    return 0;
}
