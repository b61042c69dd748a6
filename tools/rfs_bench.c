/*
 * rfs-bench: how fast is one replicafsd over loopback, next to the local disk
 * it stores on?
 *
 *   rfs-bench --volume V --brick N [--files 2000] [--size 4096] [--mb 256]
 *             [--depth 32] [--runs 3] [--dir LOCALDIR]
 *
 * Two workloads, each run --runs times, reporting the median:
 *  (a) small files: CREATE(excl) + WRITE(size bytes) + RELEASE per file, in a
 *      fresh directory, --depth files in flight on one brick_conn;
 *      locally: open(O_CREAT|O_EXCL) + write + close, one after the other.
 *  (b) streaming: --mb sequential 1 MiB WRITEs to one new file, --depth in
 *      flight, then FSYNC; locally: write(2) 1 MiB at a time, then fsync.
 * With --dir, prints both side by side with the ratio daemon/local.
 *
 * The brick's files are removed after each run (not timed).  This measures
 * the daemon and the protocol, not replication: one brick, no locks, no
 * markers (the FUSE client's transaction adds those).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/auth.h"
#include "common/config.h"
#include "common/id.h"
#include "replicafs/client.h"

#define MAX_RUNS 15
#define MIB (1u << 20)

struct opts {
    const char *volfile;
    unsigned brick;
    unsigned files;
    unsigned size;
    unsigned mb;
    unsigned depth;
    unsigned runs;
    const char *dir;
};

/* One pipelined workload against the brick. */
struct bench {
    uv_loop_t *loop;        /* borrowed */
    struct brick_conn *bc;  /* borrowed */
    const struct opts *o;   /* borrowed */
    const uint8_t *data;    /* borrowed: payload for every WRITE */
    struct rfs_id dir;      /* the run's directory */
    struct rfs_id big;      /* the streaming file */
    unsigned next;          /* next item to start */
    unsigned total;         /* items in this workload */
    unsigned done;          /* items finished */
    unsigned inflight;      /* chains running */
    int err;                /* first error, -errno */
};

/* One chain of calls working on one item at a time. */
struct slot {
    struct bench *b;        /* borrowed */
    unsigned idx;
    struct rfs_id id;
};

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void file_name(char *out, unsigned idx)
{
    snprintf(out, PROTO_NAME_MAX + 1, "f%07u", idx);
}

static void fail(struct bench *b, int rc, const char *what)
{
    if (!b->err) {
        fprintf(stderr, "rfs-bench: %s: %s\n", what, strerror(-rc));
        b->err = rc;
    }
}

/* ---- (a) small files: create -> write -> release, chained ---- */

static void small_start(struct slot *s);

static void small_release_cb(int status, const void *rep, void *arg)
{
    struct slot *s = arg;

    (void)rep;
    if (status < 0)
        fail(s->b, status, "release");
    s->b->done++;
    small_start(s);
}

static void small_write_cb(int status, const void *rep, void *arg)
{
    struct slot *s = arg;
    struct release_req rr = {.id = s->id};
    int rc;

    (void)rep;
    if (status < 0) {
        fail(s->b, status, "write");
        s->b->done++;
        small_start(s);
        return;
    }
    rc = brick_call(s->b->bc, OP_RELEASE, &rr, small_release_cb, s);
    if (rc < 0)
        small_release_cb(rc, NULL, s);
}

static void small_create_cb(int status, const void *rep, void *arg)
{
    struct slot *s = arg;
    struct bench *b = s->b;
    struct write_req w = {.id = s->id, .offset = 0};
    int rc;

    (void)rep;
    if (status < 0) {
        fail(b, status, "create");
        b->done++;
        small_start(s);
        return;
    }
    w.data.data = b->data;
    w.data.len = b->o->size;
    rc = brick_call(b->bc, OP_WRITE, &w, small_write_cb, s);
    if (rc < 0)
        small_write_cb(rc, NULL, s);
}

static void small_start(struct slot *s)
{
    struct bench *b = s->b;
    struct create_req c = {.parent = b->dir,
                           .mode = S_IFREG | 0644,
                           .uid = getuid(),
                           .gid = getgid(),
                           .flags = CREATE_EXCL};
    int rc;

    if (b->err || b->next >= b->total) {
        b->inflight--;
        return;
    }
    s->idx = b->next++;
    rfs_id_random(&s->id);
    c.id = s->id;
    file_name(c.name, s->idx);
    rc = brick_call(b->bc, OP_CREATE, &c, small_create_cb, s);
    if (rc < 0) {
        fail(b, rc, "create");
        b->done++;
        b->inflight--;
    }
}

/* ---- cleanup: unlink every file of the run, chained ---- */

static void unlink_start(struct slot *s);

static void unlink_cb(int status, const void *rep, void *arg)
{
    struct slot *s = arg;

    (void)rep;
    if (status < 0 && status != -ENOENT)
        fail(s->b, status, "unlink");
    s->b->done++;
    unlink_start(s);
}

static void unlink_start(struct slot *s)
{
    struct bench *b = s->b;
    struct unlink_req u = {.parent = b->dir};
    int rc;

    if (b->err || b->next >= b->total) {
        b->inflight--;
        return;
    }
    s->idx = b->next++;
    file_name(u.name, s->idx);
    rc = brick_call(b->bc, OP_UNLINK, &u, unlink_cb, s);
    if (rc < 0) {
        fail(b, rc, "unlink");
        b->done++;
        b->inflight--;
    }
}

/* ---- (b) streaming 1 MiB writes ---- */

static void stream_start(struct slot *s);

static void stream_write_cb(int status, const void *rep, void *arg)
{
    struct slot *s = arg;
    const struct write_rep *w = rep;

    if (status < 0)
        fail(s->b, status, "write 1 MiB");
    else if (w->count != MIB)
        fail(s->b, -EIO, "short write");
    s->b->done++;
    stream_start(s);
}

static void stream_start(struct slot *s)
{
    struct bench *b = s->b;
    struct write_req w = {.id = b->big};
    int rc;

    if (b->err || b->next >= b->total) {
        b->inflight--;
        return;
    }
    s->idx = b->next++;
    w.offset = (uint64_t)s->idx * MIB;
    w.data.data = b->data;
    w.data.len = MIB;
    rc = brick_call(b->bc, OP_WRITE, &w, stream_write_cb, s);
    if (rc < 0) {
        fail(b, rc, "write 1 MiB");
        b->done++;
        b->inflight--;
    }
}

/* Start `depth` chains with start() and run the loop until all end. */
static int run_chains(struct bench *b, unsigned total, void (*start)(struct slot *))
{
    struct slot *slots = calloc(b->o->depth, sizeof(*slots));
    unsigned n = b->o->depth < total ? b->o->depth : total;

    if (!slots)
        return -ENOMEM;
    b->next = b->done = 0;
    b->total = total;
    b->err = 0;
    b->inflight = n;
    for (unsigned i = 0; i < n; i++) {
        slots[i].b = b;
        start(&slots[i]);
    }
    while (b->inflight > 0)
        uv_run(b->loop, UV_RUN_ONCE);
    free(slots);
    return b->err;
}

static int make_dir(struct bench *b, const char *name, struct rfs_id *id)
{
    struct mkdir_req m = {.parent = RFS_ROOT_ID, .mode = S_IFDIR | 0755,
                          .uid = getuid(), .gid = getgid()};

    rfs_id_random(&m.id);
    snprintf(m.name, sizeof(m.name), "%s", name);
    *id = m.id;
    return brick_call_sync(b->bc, OP_MKDIR, &m, NULL, NULL);
}

static int remove_dir(struct bench *b, const char *name)
{
    struct unlink_req u = {.parent = RFS_ROOT_ID};

    snprintf(u.name, sizeof(u.name), "%s", name);
    return brick_call_sync(b->bc, OP_RMDIR, &u, NULL, NULL);
}

/* One run of (a) against the brick; ops/s, or < 0 on error. */
static double brick_small(struct bench *b, unsigned run)
{
    char name[64];
    double t0, t;
    int rc;

    snprintf(name, sizeof(name), "rfs-bench-%d-%u", (int)getpid(), run);
    rc = make_dir(b, name, &b->dir);
    if (rc < 0) {
        fprintf(stderr, "rfs-bench: mkdir %s: %s\n", name, strerror(-rc));
        return -1;
    }
    t0 = now_s();
    rc = run_chains(b, b->o->files, small_start);
    t = now_s() - t0;
    if (run_chains(b, b->o->files, unlink_start) < 0 || remove_dir(b, name) < 0)
        fprintf(stderr, "rfs-bench: cleanup of %s failed\n", name);
    return rc < 0 ? -1 : b->o->files / t;
}

/* One run of (b) against the brick; MB/s, or < 0 on error. */
static double brick_stream(struct bench *b, unsigned run)
{
    struct create_req c = {.parent = RFS_ROOT_ID, .mode = S_IFREG | 0644,
                           .uid = getuid(), .gid = getgid(),
                           .flags = CREATE_EXCL};
    struct fsync_req f = {.datasync = 0};
    struct release_req r;
    struct unlink_req u = {.parent = RFS_ROOT_ID};
    double t0, t;
    int rc;

    rfs_id_random(&c.id);
    snprintf(c.name, sizeof(c.name), "rfs-bench-%d-%u.big", (int)getpid(), run);
    snprintf(u.name, sizeof(u.name), "%s", c.name);
    b->big = c.id;
    f.id = r.id = c.id;
    rc = brick_call_sync(b->bc, OP_CREATE, &c, NULL, NULL);
    if (rc < 0) {
        fprintf(stderr, "rfs-bench: create %s: %s\n", c.name, strerror(-rc));
        return -1;
    }
    t0 = now_s();
    rc = run_chains(b, b->o->mb, stream_start);
    if (rc == 0) {
        rc = brick_call_sync(b->bc, OP_FSYNC, &f, NULL, NULL);
        if (rc < 0)
            fprintf(stderr, "rfs-bench: fsync: %s\n", strerror(-rc));
    }
    t = now_s() - t0;
    brick_call_sync(b->bc, OP_RELEASE, &r, NULL, NULL);
    brick_call_sync(b->bc, OP_UNLINK, &u, NULL, NULL);
    return rc < 0 ? -1 : b->o->mb / t;
}

/* ---- the same work on a local directory ---- */

static double local_small(const struct opts *o, const uint8_t *data,
                          unsigned run)
{
    char dir[4096], path[4200 + PROTO_NAME_MAX], name[PROTO_NAME_MAX + 1];
    double t0, t;

    snprintf(dir, sizeof(dir), "%s/rfs-bench-%d-%u", o->dir, (int)getpid(),
             run);
    if (mkdir(dir, 0755) < 0) {
        fprintf(stderr, "rfs-bench: mkdir %s: %s\n", dir, strerror(errno));
        return -1;
    }
    t0 = now_s();
    for (unsigned i = 0; i < o->files; i++) {
        int fd;

        file_name(name, i);
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0 || write(fd, data, o->size) != (ssize_t)o->size) {
            fprintf(stderr, "rfs-bench: %s: %s\n", path, strerror(errno));
            return -1;
        }
        close(fd);
    }
    t = now_s() - t0;
    for (unsigned i = 0; i < o->files; i++) {
        file_name(name, i);
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        unlink(path);
    }
    rmdir(dir);
    return o->files / t;
}

static double local_stream(const struct opts *o, const uint8_t *data,
                           unsigned run)
{
    char path[4200];
    double t0, t;
    int fd;

    snprintf(path, sizeof(path), "%s/rfs-bench-%d-%u.big", o->dir,
             (int)getpid(), run);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "rfs-bench: %s: %s\n", path, strerror(errno));
        return -1;
    }
    t0 = now_s();
    for (unsigned i = 0; i < o->mb; i++) {
        if (write(fd, data, MIB) != (ssize_t)MIB) {
            fprintf(stderr, "rfs-bench: write %s: %s\n", path, strerror(errno));
            close(fd);
            unlink(path);
            return -1;
        }
    }
    if (fsync(fd) < 0)
        fprintf(stderr, "rfs-bench: fsync %s: %s\n", path, strerror(errno));
    t = now_s() - t0;
    close(fd);
    unlink(path);
    return o->mb / t;
}

/* ---- main ---- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static double median(double *v, unsigned n)
{
    qsort(v, n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static int usage(FILE *f, int code)
{
    fprintf(f,
            "usage: rfs-bench --volume V --brick N [--files 2000] [--size 4096]\n"
            "                 [--mb 256] [--depth 32] [--runs 3] [--dir LOCALDIR]\n");
    return code;
}

static int parse(int argc, char **argv, struct opts *o)
{
    static const struct option lo[] = {
        {"volume", required_argument, NULL, 'v'},
        {"brick", required_argument, NULL, 'b'},
        {"files", required_argument, NULL, 'f'},
        {"size", required_argument, NULL, 's'},
        {"mb", required_argument, NULL, 'm'},
        {"depth", required_argument, NULL, 'q'},
        {"runs", required_argument, NULL, 'r'},
        {"dir", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    int c;

    *o = (struct opts){.brick = 1, .files = 2000, .size = 4096, .mb = 256,
                       .depth = 32, .runs = 3};
    while ((c = getopt_long(argc, argv, "v:b:f:s:m:q:r:d:h", lo, NULL)) != -1) {
        switch (c) {
        case 'v': o->volfile = optarg; break;
        case 'b': o->brick = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'f': o->files = (unsigned)strtoul(optarg, NULL, 10); break;
        case 's': o->size = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'm': o->mb = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'q': o->depth = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'r': o->runs = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'd': o->dir = optarg; break;
        case 'h': exit(usage(stdout, 0));
        default: return -EINVAL;
        }
    }
    if (!o->volfile || optind != argc || o->files == 0 || o->mb == 0 ||
        o->size == 0 || o->size > PROTO_MAX_IO || o->depth == 0 ||
        o->runs == 0 || o->runs > MAX_RUNS)
        return -EINVAL;
    return 0;
}

static void print_row(const char *what, double d, double l, bool have_local)
{
    if (have_local)
        printf("%-28s %12.1f %12.1f %8.2f\n", what, d, l, l > 0 ? d / l : 0);
    else
        printf("%-28s %12.1f\n", what, d);
}

int main(int argc, char **argv)
{
    double d_small[MAX_RUNS], d_stream[MAX_RUNS];
    double l_small[MAX_RUNS], l_stream[MAX_RUNS];
    struct vol_config vol;
    struct brick_conn *bc;
    struct bench b = {0};
    struct opts o;
    uv_loop_t loop;
    uint8_t *data;
    char err[512];
    int rc, code = 1;

    if (parse(argc, argv, &o) < 0)
        return usage(stderr, 2);
    if (auth_init() < 0)
        return 1;
    rc = vol_config_load(o.volfile, &vol, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "rfs-bench: %s\n", err);
        return 2;
    }
    data = malloc(MIB);
    if (!data || uv_loop_init(&loop) < 0)
        return 1;
    for (unsigned i = 0; i < MIB; i++)
        data[i] = (uint8_t)(i * 2654435761u >> 11);
    rc = brick_conn_new(&loop, &vol, o.brick, NULL, &bc);
    if (rc < 0) {
        fprintf(stderr, "rfs-bench: brick %u: %s\n", o.brick, strerror(-rc));
        return 2;
    }
    rc = brick_conn_wait_up(bc, 10000);
    if (rc < 0) {
        fprintf(stderr, "rfs-bench: brick %u not up: %s (%s)\n", o.brick,
                strerror(-rc), strerror(-brick_conn_last_error(bc)));
        goto out_close;
    }
    b = (struct bench){.loop = &loop, .bc = bc, .o = &o, .data = data};
    for (unsigned r = 0; r < o.runs; r++) {
        d_small[r] = brick_small(&b, r);
        d_stream[r] = brick_stream(&b, r);
        if (d_small[r] < 0 || d_stream[r] < 0)
            goto out_close;
        if (o.dir) {
            l_small[r] = local_small(&o, data, r);
            l_stream[r] = local_stream(&o, data, r);
            if (l_small[r] < 0 || l_stream[r] < 0)
                goto out_close;
        }
        fprintf(stderr, "run %u: daemon %.0f files/s %.1f MB/s", r + 1,
                d_small[r], d_stream[r]);
        if (o.dir)
            fprintf(stderr, "; local %.0f files/s %.1f MB/s", l_small[r],
                    l_stream[r]);
        fprintf(stderr, "\n");
    }
    printf("rfs-bench: brick %u of %s, %u runs (median), %u in flight\n",
           o.brick, vol.name, o.runs, o.depth);
    if (o.dir)
        printf("%-28s %12s %12s %8s\n", "", "replicafsd", "local", "ratio");
    else
        printf("%-28s %12s\n", "", "replicafsd");
    {
        char what[64];

        snprintf(what, sizeof(what), "create+write(%u)+close /s", o.size);
        print_row(what, median(d_small, o.runs),
                  o.dir ? median(l_small, o.runs) : 0, o.dir != NULL);
        snprintf(what, sizeof(what), "1 MiB writes+fsync MB/s");
        print_row(what, median(d_stream, o.runs),
                  o.dir ? median(l_stream, o.runs) : 0, o.dir != NULL);
    }
    code = 0;
out_close:
    brick_conn_close(bc, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0)
        code = 1;
    free(data);
    return code;
}
