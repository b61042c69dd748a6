/* Integration test helpers; the design notes are in itest_util.h. */
#include "itest_util.h"

#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/auth.h"
#include "common/id.h"
#include "common/log.h"

#ifndef RFS_BIN_DIR
#error "RFS_BIN_DIR must name the build directory"
#endif

#define DAEMON_BIN RFS_BIN_DIR "/replicafsd"
#define START_TIMEOUT_MS 15000
#define STOP_TIMEOUT_MS 5000

/* The test process's volumes, for the atexit handler: a test that exits
 * early must not leave daemons behind.  Tests only; no product code has
 * globals like this. */
static struct itest_vol *g_vols[8];

uint64_t itest_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* ---- the state file shared with the runner's report hook ---- */

static void sanitize(char *s)
{
    for (; *s; s++)
        if (*s == '/' || *s == ' ')
            *s = '_';
}

/* /tmp/rfs-itest.<runner pid>.<suite>.<test>.state */
static void state_path(char *out, size_t len, pid_t runner, const char *suite,
                       const char *test)
{
    char s[128], t[128];

    snprintf(s, sizeof(s), "%s", suite ? suite : "none");
    snprintf(t, sizeof(t), "%s", test ? test : "none");
    sanitize(s);
    sanitize(t);
    snprintf(out, len, "/tmp/rfs-itest.%d.%s.%s.state", (int)runner, s, t);
}

static void worker_state_path(char *out, size_t len)
{
    const struct criterion_test *t = criterion_current_test;

    state_path(out, len, getppid(), t ? t->category : NULL,
               t ? t->name : NULL);
}

static void brick_cmdline(const struct itest_vol *v,
                          const struct itest_brick *b, bool init, char *out,
                          size_t len)
{
    snprintf(out, len,
             "%s --volume %s --brick %u --dir %s%s --foreground 2>>%s",
             DAEMON_BIN, v->volfile, b->no, b->dir, init ? " --init" : "",
             b->log);
}

/* Rewrite the state file: what the runner needs to clean up after a crash
 * and to print a repro line after a failure. */
static void state_write(const struct itest_vol *v, bool clean)
{
    const struct criterion_test *t = criterion_current_test;
    char path[512], exe[512], cmd[2048];
    ssize_t n;
    FILE *f;

    worker_state_path(path, sizeof(path));
    f = fopen(path, "w");
    if (!f)
        return;
    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    exe[n > 0 ? n : 0] = '\0';
    fprintf(f, "rerun %s --filter '%s/%s'\n", exe, t ? t->category : "*",
            t ? t->name : "*");
    fprintf(f, "tmp %s\n", v->tmp);
    for (unsigned i = 0; i < v->nbricks; i++) {
        const struct itest_brick *b = &v->bricks[i];

        brick_cmdline(v, b, !b->initialised, cmd, sizeof(cmd));
        fprintf(f, "cmd %s\n", cmd);
        fprintf(f, "log %s\n", b->log);
        if (b->pid > 0)
            fprintf(f, "pid %d\n", (int)b->pid);
    }
    if (clean)
        fprintf(f, "clean\n");
    fclose(f);
}

/* Append the last lines of every brick log (the temp dir is going away). */
static void state_append_logs(const struct itest_vol *v)
{
    char path[512], line[1024];
    FILE *f, *lf;

    worker_state_path(path, sizeof(path));
    f = fopen(path, "a");
    if (!f)
        return;
    for (unsigned i = 0; i < v->nbricks; i++) {
        char *ring[40] = {0};
        unsigned n = 0;

        lf = fopen(v->bricks[i].log, "r");
        if (!lf)
            continue;
        while (fgets(line, sizeof(line), lf)) {
            free(ring[n % 40]);
            ring[n % 40] = strdup(line);
            n++;
        }
        fclose(lf);
        fprintf(f, "logtail brick %u (%s):\n", i + 1, v->bricks[i].log);
        for (unsigned k = n > 40 ? n - 40 : 0; k < n; k++)
            fprintf(f, "| %s", ring[k % 40] ? ring[k % 40] : "\n");
        for (unsigned k = 0; k < 40; k++)
            free(ring[k]);
    }
    fclose(f);
}

static int rm_one(const char *path, const struct stat *st, int flag,
                  struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void rm_rf(const char *dir)
{
    if (dir[0])
        nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Is pid a replicafsd of ours (so a reused PID is never killed)? */
static bool pid_is_ours(pid_t pid, const char *tmp)
{
    char path[64], buf[4096];
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    for (ssize_t i = 0; i < n; i++)
        if (buf[i] == '\0')
            buf[i] = ' ';
    return strstr(buf, "replicafsd") && strstr(buf, tmp);
}

/*
 * Runner side: after every test (POST_FINI; TEST_CRASH when the worker died
 * in the test body), kill what the worker left, remove its temp dir, and on
 * failure print the repro lines.
 */
static void runner_after_test(struct criterion_test_stats *stats)
{
    char path[512], line[4096], tmp[4096] = "";
    bool failed = stats->test_status == CR_STATUS_FAILED || stats->crashed ||
                  stats->timed_out || stats->signal;
    bool clean = false;
    FILE *f;

    state_path(path, sizeof(path), getpid(), stats->test->category,
               stats->test->name);
    f = fopen(path, "r");
    if (!f)
        return;
    if (failed)
        fprintf(stderr, "==== repro for %s/%s ====\n", stats->test->category,
                stats->test->name);
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        if (!strncmp(line, "tmp ", 4))
            snprintf(tmp, sizeof(tmp), "%s", line + 4);
        else if (!strcmp(line, "clean"))
            clean = true;
        else if (!strncmp(line, "pid ", 4) && tmp[0]) {
            pid_t pid = (pid_t)atoi(line + 4);

            if (pid > 0 && pid_is_ours(pid, tmp)) {
                kill(pid, SIGCONT);
                kill(pid, SIGKILL);
            }
        }
        if (failed && strncmp(line, "pid ", 4) && strcmp(line, "clean"))
            fprintf(stderr, "  %s\n", line);
    }
    fclose(f);
    if (failed && !clean && tmp[0])
        fprintf(stderr, "  (the test did not clean up: crash or timeout)\n");
    if (failed)
        fprintf(stderr, "  (RFS_KEEP_TMP=1 keeps the temp dir)\n");
    if (tmp[0] && !(failed && getenv("RFS_KEEP_TMP")))
        rm_rf(tmp);
    unlink(path);
}

ReportHook(POST_FINI)(struct criterion_test_stats *stats)
{
    runner_after_test(stats);
}

ReportHook(TEST_CRASH)(struct criterion_test_stats *stats)
{
    runner_after_test(stats);
}

/* ---- volume setup ---- */

/* Claim free ports for the volume's bricks through tests/ports.py, the
 * allocator the shell tests use too, so that tests running side by side
 * never share a port (its docstring says why bind-to-port-0 was not
 * enough).  The claims are this test process's until ports_release(). */
static void ports_claim(struct itest_vol *v)
{
    char cmd[1024], out[512], *p = out, *end;
    FILE *f;
    size_t n;

    snprintf(cmd, sizeof(cmd), "python3 %s/tests/ports.py claim %u %d",
             RFS_SRC_DIR, v->nbricks, (int)getpid());
    f = popen(cmd, "r");
    cr_assert(f, "%s: %s", cmd, strerror(errno));
    n = fread(out, 1, sizeof(out) - 1, f);
    out[n] = '\0';
    cr_assert(pclose(f) == 0, "%s failed", cmd);
    for (unsigned i = 0; i < v->nbricks; i++, p = end) {
        unsigned long port = strtoul(p, &end, 10);

        cr_assert(end != p && port > 0 && port < 65536,
                  "%s printed '%s'", cmd, out);
        v->bricks[i].port = (uint16_t)port;
    }
}

static void ports_release(void)
{
    char cmd[1024];

    snprintf(cmd, sizeof(cmd), "python3 %s/tests/ports.py release %d",
             RFS_SRC_DIR, (int)getpid());
    if (system(cmd) != 0)
        fprintf(stderr, "itest: %s failed\n", cmd);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    cr_assert(f, "create %s: %s", path, strerror(errno));
    fputs(text, f);
    cr_assert(fclose(f) == 0, "write %s", path);
}

static void atexit_cleanup(void)
{
    for (size_t i = 0; i < sizeof(g_vols) / sizeof(g_vols[0]); i++) {
        struct itest_vol *v = g_vols[i];

        if (!v)
            continue;
        for (unsigned k = 0; k < v->nbricks; k++) {
            pid_t pid = v->bricks[k].pid;

            if (pid > 0) {
                kill(pid, SIGCONT);
                kill(pid, SIGKILL);
                waitpid(pid, NULL, 0);
            }
        }
        rm_rf(v->tmp);
        g_vols[i] = NULL;
    }
    ports_release();
}

struct itest_vol *itest_vol_new(const char *name, unsigned nbricks)
{
    static bool atexit_done;
    struct itest_vol *v = calloc(1, sizeof(*v));
    char key[2 * RFS_KEY_SIZE + 2], text[8192], err[512];
    size_t off;
    size_t slot;
    int rc;

    cr_assert(v && nbricks >= 1 && nbricks <= PROTO_MAX_BRICKS);
    cr_assert(auth_init() == 0, "auth_init");
    if (getenv("RFS_ITEST_DEBUG")) /* brick_conn's transitions on stderr */
        log_setup("itest", false, LOG_LVL_DEBUG);
    for (slot = 0; slot < sizeof(g_vols) / sizeof(g_vols[0]); slot++)
        if (!g_vols[slot])
            break;
    cr_assert(slot < sizeof(g_vols) / sizeof(g_vols[0]), "too many volumes");
    g_vols[slot] = v;
    if (!atexit_done) {
        atexit(atexit_cleanup);
        atexit_done = true;
    }
    snprintf(v->tmp, sizeof(v->tmp), "/tmp/rfs-itest-XXXXXX");
    cr_assert(mkdtemp(v->tmp), "mkdtemp: %s", strerror(errno));
    snprintf(v->name, sizeof(v->name), "%s", name);
    snprintf(v->volfile, sizeof(v->volfile), "%s/%s.vol", v->tmp, name);
    snprintf(v->keyfile, sizeof(v->keyfile), "%s/%s.key", v->tmp, name);
    v->nbricks = nbricks;
    ports_claim(v);
    rfs_key_generate_hex(key);
    write_file(v->keyfile, key);
    off = (size_t)snprintf(text, sizeof(text),
                           "[volume]\nname = %s\nreplica = %u\n"
                           "secret-file = %s.key\n",
                           name, nbricks, name);
    for (unsigned i = 0; i < nbricks; i++) {
        struct itest_brick *b = &v->bricks[i];

        b->no = i + 1;
        snprintf(b->dir, sizeof(b->dir), "%s/brick%u", v->tmp, b->no);
        snprintf(b->log, sizeof(b->log), "%s/brick%u.log", v->tmp, b->no);
        cr_assert(mkdir(b->dir, 0755) == 0, "mkdir %s", b->dir);
        off += (size_t)snprintf(text + off, sizeof(text) - off,
                                "\n[brick.%u]\naddress = 127.0.0.1:%u\n",
                                b->no, b->port);
    }
    write_file(v->volfile, text);
    rc = vol_config_load(v->volfile, &v->cfg, err, sizeof(err));
    cr_assert(rc == 0, "vol_config_load %s: %s", v->volfile, err);
    cr_assert(uv_loop_init(&v->loop) == 0);
    state_write(v, false);
    return v;
}

static void describe_status(int st, char *out, size_t len)
{
    if (WIFEXITED(st))
        snprintf(out, len, "exit %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(out, len, "killed by signal %d (%s)", WTERMSIG(st),
                 strsignal(WTERMSIG(st)));
    else
        snprintf(out, len, "status 0x%x", st);
}

/* Stop a running brick at the end of a test; a daemon that died on its own
 * (a crash) or did not exit 0 on SIGTERM fails the test. */
static void check_exit(struct itest_vol *v, unsigned no)
{
    struct itest_brick *b = &v->bricks[no - 1];
    char what[96];
    int st;

    if (b->pid <= 0)
        return;
    if (!b->stopped && waitpid(b->pid, &st, WNOHANG) == b->pid) {
        b->pid = 0;
        describe_status(st, what, sizeof(what));
        cr_expect_fail("brick %u died during the test: %s (see its log)", no,
                       what);
        return;
    }
    st = itest_brick_stop(v, no);
    describe_status(st, what, sizeof(what));
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0,
              "brick %u on SIGTERM: %s (want exit 0)", no, what);
}

static void close_done(void *arg)
{
    (*(unsigned *)arg)--;
}

void itest_vol_free(struct itest_vol *v)
{
    bool others = false;
    unsigned left;
    uint64_t deadline;
    int rc;

    if (!v)
        return;
    left = v->nconns;
    for (unsigned i = 0; i < v->nconns; i++)
        brick_conn_close(v->conns[i], close_done, &left);
    v->nconns = 0;
    deadline = itest_now_ms() + 5000;
    while ((left > 0 || uv_loop_alive(&v->loop)) && itest_now_ms() < deadline)
        uv_run(&v->loop, UV_RUN_NOWAIT);
    rc = uv_loop_close(&v->loop);
    cr_expect(rc == 0 && left == 0,
              "loop did not close cleanly (rc %d, %u conns left)", rc, left);
    for (unsigned i = 0; i < v->nbricks; i++)
        check_exit(v, i + 1);
    state_append_logs(v);
    if (!getenv("RFS_KEEP_TMP"))
        rm_rf(v->tmp);
    /* The runner prints the logs appended above only on failure. */
    {
        char path[512];
        FILE *f;

        worker_state_path(path, sizeof(path));
        f = fopen(path, "a");
        if (f) {
            fprintf(f, "clean\n");
            fclose(f);
        }
    }
    for (size_t i = 0; i < sizeof(g_vols) / sizeof(g_vols[0]); i++) {
        if (g_vols[i] == v)
            g_vols[i] = NULL;
        others |= g_vols[i] != NULL;
    }
    /* The claims are per process: only the last volume gives them back. */
    if (!others)
        ports_release();
    free(v);
}

/* ---- daemons ---- */

static pid_t spawn(const char *log, char *const argv[])
{
    pid_t parent = getpid();
    pid_t pid = fork();

    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        int fd;

        /* Die with the test process, whatever kills it. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd >= 0) {
            dup2(fd, STDERR_FILENO);
            dup2(fd, STDOUT_FILENO);
        }
        fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd >= 0)
            dup2(fd, STDIN_FILENO);
        execv(argv[0], argv);
        dprintf(STDERR_FILENO, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

static struct itest_brick *brick_of(struct itest_vol *v, unsigned no)
{
    cr_assert(no >= 1 && no <= v->nbricks, "no brick %u", no);
    return &v->bricks[no - 1];
}

void itest_print_log_tail(struct itest_vol *v, unsigned no, int lines)
{
    char cmd[1024];

    snprintf(cmd, sizeof(cmd), "tail -n %d '%s' >&2", lines,
             brick_of(v, no)->log);
    if (system(cmd) != 0)
        fprintf(stderr, "(no log for brick %u)\n", no);
}

static bool port_accepts(uint16_t port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool ok;

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

void itest_brick_start(struct itest_vol *v, unsigned no)
{
    struct itest_brick *b = brick_of(v, no);
    char nostr[16];
    char *argv[12];
    int argc = 0, status;
    uint64_t deadline;

    cr_assert(b->pid == 0, "brick %u already running", no);
    snprintf(nostr, sizeof(nostr), "%u", no);
    argv[argc++] = DAEMON_BIN;
    argv[argc++] = "--volume";
    argv[argc++] = v->volfile;
    argv[argc++] = "--brick";
    argv[argc++] = nostr;
    argv[argc++] = "--dir";
    argv[argc++] = b->dir;
    if (!b->initialised)
        argv[argc++] = "--init";
    argv[argc++] = "--foreground";
    argv[argc] = NULL;
    b->pid = spawn(b->log, argv);
    b->stopped = false;
    state_write(v, false);
    deadline = itest_now_ms() + START_TIMEOUT_MS;
    while (!port_accepts(b->port)) {
        pid_t r = waitpid(b->pid, &status, WNOHANG);

        if (r == b->pid || itest_now_ms() > deadline) {
            if (r != b->pid) {
                kill(b->pid, SIGKILL);
                waitpid(b->pid, &status, 0);
            }
            b->pid = 0;
            state_write(v, false);
            itest_print_log_tail(v, no, 30);
            cr_assert_fail("brick %u did not start listening on port %u "
                           "(%s, status 0x%x); log above",
                           no, b->port, r == b->pid ? "exited" : "timeout",
                           status);
        }
        sleep_ms(10);
    }
    b->initialised = true;
    state_write(v, false);
}

void itest_start_all(struct itest_vol *v)
{
    for (unsigned i = 1; i <= v->nbricks; i++)
        itest_brick_start(v, i);
}

int itest_brick_stop(struct itest_vol *v, unsigned no)
{
    struct itest_brick *b = brick_of(v, no);
    uint64_t deadline = itest_now_ms() + STOP_TIMEOUT_MS;
    int status = 0;

    if (b->pid <= 0)
        return 0;
    if (b->stopped)
        kill(b->pid, SIGCONT);
    kill(b->pid, SIGTERM);
    while (waitpid(b->pid, &status, WNOHANG) == 0) {
        if (itest_now_ms() > deadline) {
            fprintf(stderr, "brick %u ignored SIGTERM for %u ms: SIGKILL\n",
                    no, STOP_TIMEOUT_MS);
            kill(b->pid, SIGKILL);
            waitpid(b->pid, &status, 0);
            break;
        }
        sleep_ms(5);
    }
    b->pid = 0;
    b->stopped = false;
    state_write(v, false);
    return status;
}

void itest_brick_kill9(struct itest_vol *v, unsigned no)
{
    struct itest_brick *b = brick_of(v, no);

    cr_assert(b->pid > 0, "brick %u is not running", no);
    kill(b->pid, SIGKILL);
    waitpid(b->pid, NULL, 0);
    b->pid = 0;
    b->stopped = false;
    state_write(v, false);
}

void itest_brick_pause(struct itest_vol *v, unsigned no)
{
    struct itest_brick *b = brick_of(v, no);

    cr_assert(b->pid > 0 && kill(b->pid, SIGSTOP) == 0);
    b->stopped = true;
}

void itest_brick_resume(struct itest_vol *v, unsigned no)
{
    struct itest_brick *b = brick_of(v, no);

    cr_assert(b->pid > 0 && kill(b->pid, SIGCONT) == 0);
    b->stopped = false;
}

void itest_brick_restart(struct itest_vol *v, unsigned no)
{
    itest_brick_stop(v, no);
    itest_brick_start(v, no);
}

bool itest_brick_alive(struct itest_vol *v, unsigned no)
{
    struct itest_brick *b = brick_of(v, no);
    int status;

    if (b->pid <= 0)
        return false;
    if (waitpid(b->pid, &status, WNOHANG) == b->pid) {
        b->pid = 0;
        state_write(v, false);
        return false;
    }
    return true;
}

int itest_run_daemon(struct itest_vol *v, const char *volfile,
                     unsigned timeout_ms, const char *const extra[])
{
    char log[600];
    char *argv[32];
    int argc = 0, status;
    uint64_t deadline = itest_now_ms() + timeout_ms;
    pid_t pid;

    snprintf(log, sizeof(log), "%s/run.log", v->tmp);
    argv[argc++] = DAEMON_BIN;
    argv[argc++] = "--volume";
    argv[argc++] = (char *)(volfile ? volfile : v->volfile);
    for (; extra && *extra && argc < 31; extra++)
        argv[argc++] = (char *)*extra;
    argv[argc] = NULL;
    {
        FILE *f = fopen(log, "a");

        if (f) {
            fprintf(f, "$");
            for (int i = 0; i < argc; i++)
                fprintf(f, " %s", argv[i]);
            fprintf(f, "\n");
            fclose(f);
        }
    }
    pid = spawn(log, argv);
    while (waitpid(pid, &status, WNOHANG) == 0) {
        if (itest_now_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        sleep_ms(5);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* ---- connections ---- */

struct brick_conn *itest_connect_opts(struct itest_vol *v, unsigned no,
                                      const struct brick_conn_opts *o,
                                      int *rcp)
{
    struct brick_conn *bc;
    int rc;

    cr_assert(v->nconns < ITEST_MAX_CONNS, "too many connections");
    rc = brick_conn_new(&v->loop, &v->cfg, no, o, &bc);
    cr_assert(rc == 0, "brick_conn_new: %s", strerror(-rc));
    v->conns[v->nconns++] = bc;
    rc = brick_conn_wait_up(bc, 10000);
    if (rcp)
        *rcp = rc;
    else
        cr_assert(rc == 0, "brick %u did not come up: %s (last error %s)", no,
                  strerror(-rc), strerror(-brick_conn_last_error(bc)));
    return bc;
}

struct brick_conn *itest_connect(struct itest_vol *v, unsigned no)
{
    return itest_connect_opts(v, no, NULL, NULL);
}

int itest_relink(struct itest_vol *v, struct brick_conn *bc,
                 unsigned timeout_ms)
{
    uint64_t deadline = itest_now_ms() + 3000;

    /* The old link may still look UP until the loop reads its EOF. */
    while (brick_conn_state(bc) == BRICK_UP && itest_now_ms() < deadline) {
        uv_run(&v->loop, UV_RUN_NOWAIT);
        sleep_ms(1);
    }
    return brick_conn_wait_up(bc, timeout_ms);
}

void itest_disconnect(struct itest_vol *v, struct brick_conn *bc)
{
    unsigned left = 1;
    uint64_t deadline = itest_now_ms() + 5000;

    for (unsigned i = 0; i < v->nconns; i++) {
        if (v->conns[i] == bc) {
            v->conns[i] = v->conns[--v->nconns];
            break;
        }
    }
    brick_conn_close(bc, close_done, &left);
    while (left && itest_now_ms() < deadline)
        uv_run(&v->loop, UV_RUN_ONCE);
    cr_assert(left == 0, "brick_conn_close did not finish");
}

/* ---- raw sockets ---- */

int itest_raw_connect(struct itest_vol *v, unsigned no)
{
    struct itest_brick *b = brick_of(v, no);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(b->port)};
    struct timeval tv = {5, 0};
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    cr_assert(fd >= 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0,
              "connect to brick %u: %s", no, strerror(errno));
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

int itest_raw_send(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;

    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static ssize_t recv_all(int fd, uint8_t *p, size_t len)
{
    size_t got = 0;

    while (got < len) {
        ssize_t n = recv(fd, p + got, len - got, 0);

        if (n == 0)
            return 0;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == EWOULDBLOCK ? -EAGAIN : -errno;
        }
        got += (size_t)n;
    }
    return (ssize_t)got;
}

ssize_t itest_raw_recv(int fd, void *buf, size_t cap)
{
    struct proto_hdr h;
    ssize_t n;

    if (cap < PROTO_HDR_SIZE)
        return -ENOSPC;
    n = recv_all(fd, buf, PROTO_HDR_SIZE);
    if (n <= 0)
        return n;
    if (proto_hdr_decode(buf, &h) < 0)
        return -EPROTO;
    if (h.len > cap)
        return -ENOSPC;
    n = recv_all(fd, (uint8_t *)buf + PROTO_HDR_SIZE, h.len - PROTO_HDR_SIZE);
    if (n < 0 || (n == 0 && h.len > PROTO_HDR_SIZE))
        return n < 0 ? n : 0;
    return h.len;
}

bool itest_raw_closed(int fd, unsigned timeout_ms)
{
    uint64_t deadline = itest_now_ms() + timeout_ms;
    uint8_t junk[4096];

    for (;;) {
        uint64_t now = itest_now_ms();
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ssize_t n;

        if (now >= deadline)
            return false;
        if (poll(&p, 1, (int)(deadline - now)) <= 0)
            continue;
        n = recv(fd, junk, sizeof(junk), MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            return true;
    }
}

/* Send one request frame and read its reply into buf.  Returns the reply
 * status (>= 0) or -errno. */
static int raw_call(int fd, struct proto_hdr *h, const void *req, void *rep,
                    uint8_t *buf, size_t cap)
{
    struct proto_hdr rh;
    uint32_t status;
    ssize_t n = proto_encode(buf, cap, h, 0, req, NULL);
    int rc;

    if (n < 0)
        return (int)n;
    rc = itest_raw_send(fd, buf, (size_t)n);
    if (rc < 0)
        return rc;
    n = itest_raw_recv(fd, buf, cap);
    if (n <= 0)
        return n == 0 ? -ECONNRESET : (int)n;
    proto_hdr_decode(buf, &rh);
    if (rh.kind != PROTO_REPLY || rh.reqid != h->reqid || rh.op != h->op)
        return -EPROTO;
    rc = proto_decode(&rh, buf + PROTO_HDR_SIZE, rh.len - PROTO_HDR_SIZE,
                      &status, rep);
    return rc < 0 ? rc : (int)status;
}

int itest_raw_handshake(struct itest_vol *v, int fd)
{
    struct hello_req hreq = {.magic = PROTO_MAGIC,
                             .version_min = PROTO_VERSION_MIN,
                             .version_max = PROTO_VERSION_MAX};
    struct hello_rep hrep;
    struct auth_req areq;
    struct auth_rep arep;
    struct proto_hdr h = {.op = OP_HELLO, .kind = PROTO_REQ, .reqid = 1};
    uint8_t buf[4096], mac[PROTO_MAC_SIZE];
    int rc;

    auth_nonce(hreq.nonce);
    snprintf(hreq.volume, sizeof(hreq.volume), "%s", v->cfg.name);
    rc = raw_call(fd, &h, &hreq, &hrep, buf, sizeof(buf));
    if (rc != 0)
        return rc < 0 ? rc : -rc;
    auth_brick_mac(v->cfg.key, hreq.nonce, hrep.nonce, v->cfg.name, mac);
    if (!auth_mac_equal(mac, hrep.mac))
        return -EACCES;
    auth_client_mac(v->cfg.key, hrep.nonce, hreq.nonce, v->cfg.name, areq.mac);
    h = (struct proto_hdr){.op = OP_AUTH, .kind = PROTO_REQ, .reqid = 2};
    rc = raw_call(fd, &h, &areq, &arep, buf, sizeof(buf));
    return rc <= 0 ? rc : -rc;
}

const char *itest_brick_path(struct itest_vol *v, unsigned no, const char *rel)
{
    static char slots[8][1024];
    static unsigned next;
    char *out = slots[next++ % 8];

    snprintf(out, sizeof(slots[0]), "%s/%s", brick_of(v, no)->dir, rel);
    return out;
}

/* ---- one-line operations ---- */

int it_create(struct brick_conn *bc, const struct rfs_id *parent,
              const char *name, uint32_t flags, struct rfs_id *id,
              struct create_rep *rep)
{
    struct create_req c = {.parent = *parent, .mode = S_IFREG | 0644,
                           .uid = getuid(), .gid = getgid(), .flags = flags};
    struct create_rep r;
    int rc;

    rfs_id_random(&c.id);
    snprintf(c.name, sizeof(c.name), "%s", name);
    rc = brick_call_sync(bc, OP_CREATE, &c, &r, NULL);
    if (rc == 0) {
        if (id)
            *id = r.attr.id;
        if (rep)
            *rep = r;
    }
    return rc;
}

int it_mkdir(struct brick_conn *bc, const struct rfs_id *parent,
             const char *name, struct rfs_id *id)
{
    struct mkdir_req m = {.parent = *parent, .mode = S_IFDIR | 0755,
                          .uid = getuid(), .gid = getgid()};
    struct attr_rep r;
    int rc;

    rfs_id_random(&m.id);
    snprintf(m.name, sizeof(m.name), "%s", name);
    rc = brick_call_sync(bc, OP_MKDIR, &m, &r, NULL);
    if (rc == 0 && id)
        *id = r.attr.id;
    return rc;
}

int it_lookup(struct brick_conn *bc, const struct rfs_id *parent,
              const char *name, struct proto_attr *attr)
{
    struct lookup_req l = {.parent = *parent};
    struct attr_rep r;
    int rc;

    snprintf(l.name, sizeof(l.name), "%s", name);
    rc = brick_call_sync(bc, OP_LOOKUP, &l, &r, NULL);
    if (rc == 0 && attr)
        *attr = r.attr;
    return rc;
}

int it_getattr(struct brick_conn *bc, const struct rfs_id *id,
               struct proto_attr *attr)
{
    struct getattr_req g = {.id = *id};
    struct attr_rep r;
    int rc = brick_call_sync(bc, OP_GETATTR, &g, &r, NULL);

    if (rc == 0 && attr)
        *attr = r.attr;
    return rc;
}

int it_unlink(struct brick_conn *bc, const struct rfs_id *parent,
              const char *name)
{
    struct unlink_req u = {.parent = *parent};

    snprintf(u.name, sizeof(u.name), "%s", name);
    return brick_call_sync(bc, OP_UNLINK, &u, NULL, NULL);
}

int it_write(struct brick_conn *bc, const struct rfs_id *id, uint64_t off,
             const void *data, uint32_t len)
{
    struct write_req w = {.id = *id, .offset = off, .data = {data, len}};
    struct write_rep r;
    int rc = brick_call_sync(bc, OP_WRITE, &w, &r, NULL);

    if (rc == 0 && r.count != len)
        return -EIO;
    return rc;
}

int it_read(struct brick_conn *bc, const struct rfs_id *id, uint64_t off,
            uint32_t len, void *buf, uint32_t *got)
{
    struct read_req q = {.id = *id, .offset = off, .size = len};
    struct read_rep r;
    void *frame = NULL;
    int rc = brick_call_sync(bc, OP_READ, &q, &r, &frame);

    if (rc < 0)
        return rc;
    if (r.data.len > len) {
        free(frame);
        return -EPROTO;
    }
    if (r.data.len)
        memcpy(buf, r.data.data, r.data.len);
    *got = r.data.len;
    free(frame);
    return 0;
}

int it_fsync(struct brick_conn *bc, const struct rfs_id *id)
{
    struct fsync_req f = {.id = *id, .datasync = 0};

    return brick_call_sync(bc, OP_FSYNC, &f, NULL, NULL);
}

int it_readdir(struct brick_conn *bc, const struct rfs_id *dir,
               uint32_t max_bytes,
               void (*fn)(const char *name, const struct proto_attr *a,
                          void *arg),
               void *arg)
{
    struct readdir_req q = {.id = *dir, .cookie = 0, .max_bytes = max_bytes};
    int total = 0;

    for (int pages = 0; pages < 100000; pages++) {
        struct readdir_rep r;
        void *frame = NULL;
        char name[PROTO_NAME_MAX + 1];
        struct proto_attr a;
        size_t off = 0;
        unsigned n = 0;
        int rc = brick_call_sync(bc, OP_READDIR, &q, &r, &frame);

        if (rc < 0)
            return rc;
        while ((rc = proto_dirent_next(&r.entries, &off, name, &a)) == 1) {
            fn(name, &a, arg);
            n++;
        }
        free(frame);
        if (rc < 0)
            return rc;
        if (n != r.count)
            return -EPROTO; /* count disagrees with the blob */
        total += (int)n;
        if (r.eof)
            return total;
        if (n == 0 || r.next_cookie == q.cookie)
            return -ELOOP; /* no progress: would spin for ever */
        q.cookie = r.next_cookie;
    }
    return -ELOOP;
}

void it_pattern(void *buf, size_t len, uint64_t seed, uint64_t off)
{
    uint8_t *p = buf;

    for (size_t i = 0; i < len; i++) {
        uint64_t x = (off + i) * 0x9e3779b97f4a7c15ull ^ seed;

        p[i] = (uint8_t)(x >> 29 ^ x >> 7);
    }
}
