/*
 * csum-bench: CHECKSUM throughput of one brick on one big file.
 *
 *   csum-bench --volume FILE --brick N --name NAME --file BRICKPATH
 *              [--create MIB] [--block KIB]
 *
 * With --create, makes NAME in the volume root on that brick and writes MIB
 * MiB through WRITE first.  Then it times, over the whole file:
 *   cold    data evicted from the page cache (posix_fadvise DONTNEED on
 *           BRICKPATH, the brick's copy) and no valid stored sums;
 *   stored  again right after: every sum comes from .replicafs/sums;
 *   deep    CHECKSUM_DEEP with the data in the page cache (xxh3 + copy);
 *   deepcold  CHECKSUM_DEEP after evicting the data again.
 * MB/s = file bytes / wall time.  Prints one line per run.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/auth.h"
#include "common/config.h"
#include "common/id.h"
#include "replicafs/client.h"

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int evict(const char *path)
{
    int fd = open(path, O_RDONLY);
    int rc;

    if (fd < 0)
        return -errno;
    rc = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
    return -rc;
}

static int run(struct brick_conn *bc, const struct rfs_id *id, uint32_t bs,
               uint32_t flags, uint64_t *size)
{
    struct checksum_req q = {.id = *id, .block_size = bs, .flags = flags};
    struct checksum_rep rep;

    do {
        void *frame = NULL;
        int rc = brick_call_sync(bc, OP_CHECKSUM, &q, &rep, &frame);

        free(frame);
        if (rc < 0)
            return rc;
        q.offset += (uint64_t)rep.count * bs;
        *size = rep.size;
    } while (rep.count == PROTO_CSUM_MAX_BLOCKS);
    return 0;
}

static int create(struct brick_conn *bc, const char *name, unsigned mib,
                  struct rfs_id *id)
{
    struct create_req c = {.parent = RFS_ROOT_ID, .mode = 0644 | 0100000,
                           .flags = CREATE_EXCL};
    struct create_rep cr;
    struct write_req w = {0};
    struct write_rep wr;
    uint8_t *buf = malloc(PROTO_MAX_IO);
    int rc;

    if (!buf)
        return -ENOMEM;
    for (size_t i = 0; i < PROTO_MAX_IO; i++)
        buf[i] = (uint8_t)(i * 2654435761u >> 13);
    snprintf(c.name, sizeof(c.name), "%s", name);
    rfs_id_random(&c.id);
    rc = brick_call_sync(bc, OP_CREATE, &c, &cr, NULL);
    w.id = c.id;
    for (unsigned i = 0; rc == 0 && i < mib; i++) {
        buf[0] = (uint8_t)i;
        w.offset = (uint64_t)i * PROTO_MAX_IO;
        w.data = (struct proto_bytes){buf, PROTO_MAX_IO};
        rc = brick_call_sync(bc, OP_WRITE, &w, &wr, NULL);
    }
    free(buf);
    *id = c.id;
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"volume", required_argument, NULL, 'v'},
        {"brick", required_argument, NULL, 'b'},
        {"name", required_argument, NULL, 'n'},
        {"file", required_argument, NULL, 'f'},
        {"create", required_argument, NULL, 'c'},
        {"block", required_argument, NULL, 'k'},
        {0},
    };
    const char *volfile = NULL, *name = NULL, *file = NULL;
    unsigned brick = 1, mib = 0;
    uint32_t bs = 64 * 1024;
    struct vol_config vol;
    struct brick_conn *bc;
    struct rfs_id id;
    char err[512];
    uv_loop_t loop;
    int c, rc;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'v': volfile = optarg; break;
        case 'b': brick = (unsigned)atoi(optarg); break;
        case 'n': name = optarg; break;
        case 'f': file = optarg; break;
        case 'c': mib = (unsigned)atoi(optarg); break;
        case 'k': bs = (uint32_t)atoi(optarg) * 1024; break;
        default: return 2;
        }
    }
    if (!volfile || !name || !file) {
        fprintf(stderr, "usage: csum-bench --volume FILE --brick N --name NAME "
                        "--file BRICKPATH [--create MIB] [--block KIB]\n");
        return 2;
    }
    if (auth_init() < 0 || vol_config_load(volfile, &vol, err, sizeof(err)) < 0 ||
        uv_loop_init(&loop) < 0) {
        fprintf(stderr, "csum-bench: setup failed %s\n", err);
        return 2;
    }
    if (brick_conn_new(&loop, &vol, brick, &(struct brick_conn_opts){
                           .ping_timeout_ms = 30000}, &bc) < 0 ||
        brick_conn_wait_up(bc, 5000) < 0) {
        fprintf(stderr, "csum-bench: brick %u not up\n", brick);
        return 2;
    }
    if (mib) {
        rc = create(bc, name, mib, &id);
    } else {
        struct lookup_req l = {.parent = RFS_ROOT_ID};
        struct attr_rep a;

        snprintf(l.name, sizeof(l.name), "%s", name);
        rc = brick_call_sync(bc, OP_LOOKUP, &l, &a, NULL);
        id = a.attr.id;
    }
    if (rc < 0) {
        fprintf(stderr, "csum-bench: %s: %s\n", name, strerror(-rc));
        return 2;
    }
    static const struct {
        const char *what;
        int evict;
        uint32_t flags;
    } runs[] = {
        {"cold", 1, 0},
        {"stored", 0, 0},
        {"deep", 0, CHECKSUM_DEEP},
        {"deepcold", 1, CHECKSUM_DEEP},
    };
    for (size_t i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
        uint64_t size = 0;
        double t0, t;

        if (runs[i].evict && (rc = evict(file)) < 0)
            fprintf(stderr, "csum-bench: evict: %s\n", strerror(-rc));
        t0 = now_s();
        rc = run(bc, &id, bs, runs[i].flags, &size);
        t = now_s() - t0;
        if (rc < 0) {
            fprintf(stderr, "csum-bench: CHECKSUM: %s\n", strerror(-rc));
            return 1;
        }
        printf("%-8s %8.1f MiB in %7.3f s: %9.1f MB/s\n", runs[i].what,
               (double)size / 1048576.0, t, (double)size / 1e6 / t);
    }
    brick_conn_close(bc, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return 0;
}
