/*
 * guard: a mount process that dies without unmounting must not leave its
 * FUSE connection wedged.
 *
 * Design
 * ======
 * The kernel aborts a FUSE connection (every waiting syscall gets
 * ENOTCONN) when the last /dev/fuse descriptor is closed, which happens
 * when the last thread of the process exits.  After kill -9 one thread may
 * not exit: the notifier (notify.c) can sit in the kernel taking a
 * directory's lock to invalidate a name, and that wait cannot be
 * interrupted.  If a request holds the lock, it waits for an answer the
 * dead loop will never send, the notifier waits for the lock, the
 * descriptor stays open, and every process touching the mount hangs for
 * ever (failover.kill_mount_blocked).
 *
 * So a small guard process is forked at mount time, owning nothing of the
 * mount (no /dev/fuse descriptor, no socket, no cwd inside it).  It asks
 * for a signal when the thread that forked it (main's, which runs the
 * loop) ends (PR_SET_PDEATHSIG): then, unless main said goodbye through
 * the pipe first (a clean unmount), it aborts the connection through the
 * fuse control filesystem (/sys/fs/fuse/connections/N/abort, mounting it
 * if needed), as an admin would by hand.  The waiting request fails, the
 * lock is released, the notifier returns and the process ends.
 *
 * The child runs only async-signal-safe calls (it is forked from a process
 * that may have other threads); everything it needs is prepared before
 * the fork.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fuse/fs.h"

#define FUSECTL_DIR "/sys/fs/fuse/connections"
#define GUARD_BYE 'B'

static void on_parent_death(int sig)
{
    (void)sig; /* only interrupts ppoll() */
}

static void abort_connection(const char *abort_path)
{
    int fd = open(abort_path, O_WRONLY);

    if (fd < 0 && errno == ENOENT) {
        /* Not mounted here (or the connection is already gone: then the
         * mount fails or changes nothing). */
        (void)mount("fusectl", FUSECTL_DIR, "fusectl", 0, NULL);
        fd = open(abort_path, O_WRONLY);
    }
    if (fd < 0)
        return;
    if (write(fd, "1", 1) != 1) {
        /* the connection went away meanwhile: nothing left to abort */
    }
    close(fd);
}

/* Has every thread of the process behind pidfd ended?  (pidfd_open(2):
 * readable once the thread group is empty.)  No pidfd: the parent ended
 * before the guard could ask, which also means gone. */
static bool process_gone(int pidfd)
{
    struct pollfd p = {.fd = pidfd, .events = POLLIN};

    return pidfd < 0 || poll(&p, 1, 0) > 0;
}

/* The guard process.  Never returns. */
static void guard_main(int rfd, int nullfd, pid_t parent,
                       const char *abort_path)
{
    struct sigaction sa;
    sigset_t block, wait_mask;
    ssize_t n;
    int pidfd;
    char c;

    /* Own nothing of the mount: not the session fd, not the sockets. */
    dup2(nullfd, 0);
    dup2(nullfd, 1);
    dup2(nullfd, 2);
    dup2(rfd, 3);
    close_range(4, ~0u, 0);
    rfd = 3;
    if (chdir("/") < 0) {
        /* "/" is always there */
    }
    prctl(PR_SET_NAME, "rfs-guard", 0, 0, 0);

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_parent_death;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigprocmask(SIG_BLOCK, &block, &wait_mask);
    sigdelset(&wait_mask, SIGUSR1);
    prctl(PR_SET_PDEATHSIG, SIGUSR1, 0, 0, 0);
    pidfd = (int)syscall(SYS_pidfd_open, parent, 0);
    if (pidfd >= 0 && getppid() != parent) { /* that pid is someone else's */
        close(pidfd);
        pidfd = -1;
    }

    /* Main said goodbye (clean exit) or closed the pipe (the whole process
     * ended, so the kernel aborted the connection itself): leave.  The
     * signal (or the parent gone before prctl) means main's thread ended:
     * check for goodbye once more, then abort. */
    while (getppid() == parent) {
        struct pollfd p = {.fd = rfd, .events = POLLIN};
        int r = ppoll(&p, 1, NULL, &wait_mask);

        if (r < 0 && errno == EINTR)
            break;
        if (r > 0) {
            n = read(rfd, &c, 1);
            if (n == 0 || (n == 1 && c == GUARD_BYE))
                _exit(0);
        }
    }
    fcntl(rfd, F_SETFL, O_NONBLOCK);
    n = read(rfd, &c, 1);
    if (n == 1 && c == GUARD_BYE)
        _exit(0);
    /* End of file, or a pidfd that says so: the whole process is gone, so
     * its last /dev/fuse descriptor closed and the kernel aborted the
     * connection itself.  Its number may already name another mount (a
     * guard scheduled late would abort that one): hands off. */
    if (n == 0 || process_gone(pidfd))
        _exit(0);
    abort_connection(abort_path);
    _exit(0);
}

int guard_start(const char *mountpoint, int *bye_fd)
{
    char abort_path[128];
    pid_t parent = getpid(), pid;
    unsigned maj, min;
    int p[2], nullfd, rc;

    *bye_fd = -1;
    rc = mount_dev(mountpoint, &maj, &min);
    if (rc < 0)
        return rc;
    /* fusectl names a connection by the kernel's dev_t of the mount:
     * major << 20 | minor (FUSE's anonymous devices have major 0). */
    snprintf(abort_path, sizeof(abort_path), FUSECTL_DIR "/%u/abort",
             maj << 20 | min);
    nullfd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (nullfd < 0)
        return -errno;
    if (pipe2(p, O_CLOEXEC) < 0) {
        rc = -errno;
        goto out_null;
    }
    pid = fork();
    if (pid < 0) {
        rc = -errno;
        close(p[0]);
        close(p[1]);
        goto out_null;
    }
    if (pid == 0)
        guard_main(p[0], nullfd, parent, abort_path);
    close(p[0]);
    *bye_fd = p[1];
    rc = 0;
out_null:
    close(nullfd);
    return rc;
}

void guard_release(int *bye_fd)
{
    char c = GUARD_BYE;

    if (*bye_fd < 0)
        return;
    if (write(*bye_fd, &c, 1) != 1) {
        /* the guard is gone: nothing to tell */
    }
    close(*bye_fd);
    *bye_fd = -1;
}
