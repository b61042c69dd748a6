/*
 * selfheal: a mount that meets an object needing heal gets it healed, in
 * the background, without waiting for an admin.
 *
 * Design.  The heal engine (src/client/heal.c) runs its own loop and takes
 * the same locks as every client, so the simplest safe way for a mount to
 * heal is to run it beside itself: `replicafs heal --volume VOLFILE` as a
 * child process (uv_spawn, reaped by the loop), which heals everything in
 * the heal indices, the object met included.  At most one child at a time,
 * and at most one start per SELFHEAL_INTERVAL_MS: a volume with a brick
 * down meets blamed objects constantly, and a heal cannot finish until the
 * brick is back anyway.  `replicafs heal --daemon` on a storage node
 * remains the main healer; this covers volumes where nobody runs it.
 *
 * The CLI is looked for beside mount.replicafs, then on PATH.  Off unless
 * the mount has `-o self-heal`; fs_stop() ends a child still running (a
 * heal cut off is safe: docs/heal.md).
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuse/fs.h"

#define SELFHEAL_INTERVAL_MS 10000u

static void retry_cb(uv_timer_t *t)
{
    struct rfs_fs *fs = t->data;

    fs_heal_needed(fs);
}

/* Asked while one runs, or too soon after the last: run once more later,
 * so that what was met meanwhile is healed too. */
static void heal_later(struct rfs_fs *fs, uint64_t now)
{
    uint64_t due = fs->heal_last + SELFHEAL_INTERVAL_MS;

    fs->heal_again = true;
    if (fs->heal_running || uv_is_active((uv_handle_t *)&fs->heal_timer))
        return;
    uv_timer_start(&fs->heal_timer, retry_cb, due > now ? due - now : 0, 0);
}

static void child_exit_cb(uv_process_t *p, int64_t status, int sig)
{
    struct rfs_fs *fs = p->data;

    log_info("background heal ended: exit %lld%s", (long long)status,
             sig ? " (signalled)" : "");
    uv_close((uv_handle_t *)p, NULL);
    fs->heal_running = false;
    if (fs->heal_again && !fs->stopping)
        heal_later(fs, uv_now(fs->loop));
}

/* The replicafs CLI beside our own binary, else "replicafs" (PATH). */
static void cli_path(char *buf, size_t len)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    char *slash;

    snprintf(buf, len, "replicafs");
    if (n <= 0)
        return;
    self[n] = '\0';
    slash = strrchr(self, '/');
    if (!slash)
        return;
    *slash = '\0';
    snprintf(buf, len, "%s/replicafs", self);
    if (access(buf, X_OK) != 0)
        snprintf(buf, len, "replicafs");
}

void fs_heal_needed(void *arg)
{
    struct rfs_fs *fs = arg;
    uint64_t now = uv_now(fs->loop);
    char path[PATH_MAX + 16];
    char *args[5];
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_IGNORE}, {.flags = UV_IGNORE}, {.flags = UV_IGNORE}};
    uv_process_options_t o = {0};
    int rc;

    if (!fs->opts->self_heal || !fs->heal_timer_ok || fs->stopping ||
        fs->opts->read_only)
        return;
    if (fs->heal_running ||
        (fs->heal_last && now - fs->heal_last < SELFHEAL_INTERVAL_MS)) {
        heal_later(fs, now);
        return;
    }
    fs->heal_again = false;
    fs->heal_last = now ? now : 1;
    cli_path(path, sizeof(path));
    args[0] = path;
    args[1] = "heal";
    args[2] = "--volume";
    args[3] = fs->opts->volfile;
    args[4] = NULL;
    o.file = path;
    o.args = args;
    o.exit_cb = child_exit_cb;
    o.stdio = stdio;
    o.stdio_count = 3;
    fs->heal_proc.data = fs;
    rc = uv_spawn(fs->loop, &fs->heal_proc, &o);
    if (rc < 0) {
        /* uv_spawn makes the handle even when it fails: close it. */
        uv_close((uv_handle_t *)&fs->heal_proc, NULL);
        log_warn("background heal: cannot run %s: %s", path, uv_strerror(rc));
        return;
    }
    fs->heal_running = true;
    log_info("background heal started (pid %d): an object needs heal",
             fs->heal_proc.pid);
}

void fs_heal_init(struct rfs_fs *fs)
{
    uv_timer_init(fs->loop, &fs->heal_timer);
    fs->heal_timer.data = fs;
    fs->heal_timer_ok = true;
}

void fs_heal_stop(struct rfs_fs *fs)
{
    if (fs->heal_timer_ok) {
        uv_close((uv_handle_t *)&fs->heal_timer, NULL);
        fs->heal_timer_ok = false;
    }
    if (fs->heal_running)
        uv_process_kill(&fs->heal_proc, SIGTERM);
}
