/*
 * replicafsd: flags, volume and stamp checks, daemonizing, the loop.
 *
 *   replicafsd --volume upload.vol --brick N --dir /srv/replicafs/upload
 *              [--init] [--listen ADDR:PORT] [--metrics ADDR:PORT]
 *              [--foreground]
 *
 * Exit codes: 0 after a graceful stop; 2 for usage errors, an unreadable
 * volume file or key, or a directory that is not (or cannot become) this
 * brick; 1 for other start-up failures (cannot listen, no io_uring...).
 *
 * Hidden knobs for tests: --fd-cache N (or RFS_FD_CACHE), --max-requests N,
 * --debug (or RFS_LOG=debug).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/auth.h"
#include "common/config.h"
#include "common/log.h"
#include "server.h"
#include "stamp.h"

#define EXIT_USAGE 2

struct args {
    const char *volume;
    unsigned brick;
    const char *dir;
    bool init;
    const char *listen;
    const char *metrics;
    bool foreground;
    bool debug;
    size_t fd_cache;
    unsigned max_reqs;
    bool ring_metadata;
    unsigned protocol_max;
};

static void usage(FILE *f)
{
    fprintf(f, "usage: replicafsd --volume FILE --brick N --dir DIR [--init]\n"
               "                  [--listen ADDR:PORT] [--metrics ADDR:PORT]"
               " [--foreground]\n"
               "  tuning (docs/daemon.md): [--fd-cache N] [--max-requests N]"
               " [--ring-metadata]\n"
               "  upgrades (docs/admin.md): [--protocol-max N]\n");
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
    char *end;
    unsigned long v;

    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno || end == s || *end || v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

static int parse_args(int argc, char **argv, struct args *a)
{
    static const struct option opts[] = {
        {"volume", required_argument, NULL, 'v'},
        {"brick", required_argument, NULL, 'b'},
        {"dir", required_argument, NULL, 'd'},
        {"init", no_argument, NULL, 'i'},
        {"listen", required_argument, NULL, 'l'},
        {"metrics", required_argument, NULL, 'm'},
        {"foreground", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {"debug", no_argument, NULL, 'D'},
        {"fd-cache", required_argument, NULL, 'C'},
        {"max-requests", required_argument, NULL, 'R'},
        {"ring-metadata", no_argument, NULL, 'M'},
        {"protocol-max", required_argument, NULL, 'P'},
        {NULL, 0, NULL, 0}};
    unsigned long v;
    int c;

    while ((c = getopt_long(argc, argv, "v:b:d:il:m:fh", opts, NULL)) != -1) {
        switch (c) {
        case 'v': a->volume = optarg; break;
        case 'd': a->dir = optarg; break;
        case 'i': a->init = true; break;
        case 'l': a->listen = optarg; break;
        case 'm': a->metrics = optarg; break;
        case 'f': a->foreground = true; break;
        case 'D': a->debug = true; break;
        case 'M': a->ring_metadata = true; break;
        case 'h': usage(stdout); exit(0);
        case 'b':
            if (parse_uint(optarg, PROTO_MAX_BRICKS, &v) < 0 || v == 0)
                return -EINVAL;
            a->brick = (unsigned)v;
            break;
        case 'C':
            if (parse_uint(optarg, 1u << 20, &v) < 0 || v == 0)
                return -EINVAL;
            a->fd_cache = v;
            break;
        case 'R':
            if (parse_uint(optarg, 1u << 16, &v) < 0 || v == 0)
                return -EINVAL;
            a->max_reqs = (unsigned)v;
            break;
        case 'P':
            if (parse_uint(optarg, PROTO_VERSION_MAX, &v) < 0 ||
                v < PROTO_VERSION_MIN)
                return -EINVAL;
            a->protocol_max = (unsigned)v;
            break;
        default:
            return -EINVAL;
        }
    }
    if (optind != argc || !a->volume || !a->brick || !a->dir)
        return -EINVAL;
    return 0;
}

/* ---- daemonizing with a readiness pipe ----
 * The parent waits until the daemon is listening (or failed), prints its
 * line and exits with the daemon's start-up status, so that scripts see
 * errors and know when the brick is up. */

static void report(int fd, int code, const char *msg)
{
    char buf[5000];
    int n;

    if (fd < 0)
        return;
    n = snprintf(buf, sizeof(buf), "%c%s\n", '0' + code, msg);
    if (write(fd, buf, (size_t)n) < 0) { /* parent gone: nothing to tell */
    }
    close(fd);
}

static int wait_child(int fd)
{
    char buf[5000];
    ssize_t n, got = 0;

    while (got < (ssize_t)sizeof(buf) - 1 &&
           (n = read(fd, buf + got, sizeof(buf) - 1 - (size_t)got)) > 0)
        got += n;
    buf[got] = '\0';
    if (got < 2) {
        fprintf(stderr, "replicafsd: the daemon died during start-up\n");
        return 1;
    }
    fputs(buf + 1, buf[0] == '0' ? stdout : stderr);
    return buf[0] - '0';
}

/* Returns in the daemon with *ready_fd to report on; exits in the parents. */
static int daemonize(int *ready_fd)
{
    int p[2], fd;
    pid_t pid;

    if (pipe(p) < 0)
        return -errno;
    pid = fork();
    if (pid < 0)
        return -errno;
    if (pid > 0) {
        close(p[1]);
        exit(wait_child(p[0]));
    }
    close(p[0]);
    setsid();
    pid = fork();
    if (pid < 0)
        exit(1);
    if (pid > 0)
        _exit(0);
    if (chdir("/") < 0) { /* paths were made absolute before */
    }
    fd = open("/dev/null", O_RDWR);
    if (fd >= 0) {
        dup2(fd, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        if (fd > 2)
            close(fd);
    }
    *ready_fd = p[1];
    return 0;
}

static void raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* HOST:PORT where port 0 means "any free port" (tests use it; the printed
 * listening line tells the port). */
static int parse_listen(const char *s, struct sockaddr_in *addr)
{
    size_t n = strlen(s);
    char tmp[300];

    if (n >= 2 && n < sizeof(tmp) && strcmp(s + n - 2, ":0") == 0) {
        snprintf(tmp, sizeof(tmp), "%.*s:1", (int)(n - 2), s);
        if (rfs_parse_addr(tmp, addr) < 0)
            return -EINVAL;
        addr->sin_port = 0;
        return 0;
    }
    return rfs_parse_addr(s, addr);
}

/* Everything that may exit 2 happens here, before daemonizing. */
static int check_setup(const struct args *a, struct vol_config *vol,
                       char *dir, struct server_opts *o)
{
    char err[512] = "";
    struct stamp s;
    int rc;

    rc = vol_config_load(a->volume, vol, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "replicafsd: %s: %s\n", a->volume,
                err[0] ? err : strerror(-rc));
        return EXIT_USAGE;
    }
    if (a->brick > vol->nbricks) {
        fprintf(stderr, "replicafsd: volume %s has no brick %u (it has %u)\n",
                vol->name, a->brick, vol->nbricks);
        return EXIT_USAGE;
    }
    o->listen = vol->bricks[a->brick - 1].addr;
    if (a->listen && parse_listen(a->listen, &o->listen) < 0) {
        fprintf(stderr, "replicafsd: bad --listen address '%s'\n", a->listen);
        return EXIT_USAGE;
    }
    if (a->metrics && parse_listen(a->metrics, &o->metrics_addr) < 0) {
        fprintf(stderr, "replicafsd: bad --metrics address '%s'\n", a->metrics);
        return EXIT_USAGE;
    }
    o->metrics = a->metrics != NULL;
    if (!realpath(a->dir, dir)) {
        fprintf(stderr, "replicafsd: %s: %s\n", a->dir, strerror(errno));
        return EXIT_USAGE;
    }
    if (a->init) {
        rc = stamp_init_dir(dir, vol->name, a->brick, &s, err, sizeof(err));
        if (rc < 0) {
            fprintf(stderr, "replicafsd: %s\n", err);
            return EXIT_USAGE;
        }
        fprintf(stderr, "replicafsd: stamped %s as brick %u of volume %s\n",
                dir, a->brick, vol->name);
    }
    rc = stamp_load(dir, &s, err, sizeof(err));
    if (rc == 0)
        rc = stamp_check(&s, vol->name, a->brick, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "replicafsd: refusing to serve %s: %s\n", dir, err);
        return EXIT_USAGE;
    }
    return 0;
}

static int serve(uv_loop_t *loop, struct server *srv,
                 const struct server_opts *o, int ready_fd)
{
    char err[600] = "", line[4800];
    int rc;

    rc = server_init(srv, loop, o, err, sizeof(err));
    if (rc == 0)
        rc = server_listen(srv, o, err, sizeof(err));
    if (rc < 0) {
        log_err("%s", err);
        if (ready_fd < 0)
            fprintf(stderr, "replicafsd: %s\n", err);
        report(ready_fd, rc == -EINVAL ? EXIT_USAGE : 1, err);
        return rc == -EINVAL ? EXIT_USAGE : 1;
    }
    snprintf(line, sizeof(line),
             "replicafsd: brick %u of volume %s serving %s on %s:%u",
             srv->brick, srv->vol.name, srv->dir,
             inet_ntoa(srv->bound.sin_addr), ntohs(srv->bound.sin_port));
    log_info("%s", line + strlen("replicafsd: "));
    if (ready_fd >= 0) {
        report(ready_fd, 0, line);
    } else {
        printf("%s\n", line);
        fflush(stdout);
    }
    uv_run(loop, UV_RUN_DEFAULT);
    return 0;
}

int main(int argc, char **argv)
{
    struct args a = {0};
    static struct vol_config vol;
    static struct server srv;
    static char dir[PATH_MAX];
    struct server_opts o = {0};
    const char *env;
    int ready_fd = -1, rc;
    uv_loop_t loop;

    if (parse_args(argc, argv, &a) < 0) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (auth_init() < 0) {
        fprintf(stderr, "replicafsd: cannot initialise libsodium\n");
        return 1;
    }
    rc = check_setup(&a, &vol, dir, &o);
    if (rc)
        return rc;
    env = getenv("RFS_FD_CACHE");
    o.fd_cache = a.fd_cache ? a.fd_cache : env ? strtoul(env, NULL, 10) : 0;
    o.max_reqs = a.max_reqs;
    o.ring_metadata = a.ring_metadata;
    o.protocol_max = a.protocol_max;
    env = getenv("RFS_LEASE_CAP");
    o.lease_cap = env ? strtoul(env, NULL, 10) : 0;
    o.dir = dir;
    o.vol = &vol;
    o.brick = a.brick;
    env = getenv("RFS_LOG");
    if (env && !strcmp(env, "debug"))
        a.debug = true;
    if (!a.foreground && daemonize(&ready_fd) < 0) {
        fprintf(stderr, "replicafsd: cannot daemonize: %s\n", strerror(errno));
        return 1;
    }
    log_setup("replicafsd", !a.foreground, a.debug ? LOG_LVL_DEBUG : LOG_LVL_INFO);
    umask(0); /* modes come from requests (ops_create.c invariant 3) */
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();
    if (uv_loop_init(&loop) < 0)
        return 1;
    rc = serve(&loop, &srv, &o, ready_fd);
    server_fini(&srv);
    uv_run(&loop, UV_RUN_DEFAULT); /* run the close callbacks */
    if (uv_loop_close(&loop) != 0)
        log_warn("loop still has handles at exit");
    memset(vol.key, 0, sizeof(vol.key));
    return rc;
}
