/*
 * replicafs status --volume FILE [--json] [--timeout MS]
 *
 * Connects to every brick at once, then asks each that answered for a ping
 * (round trip), statfs (free space), the length of its heal index and
 * whether it is suspect (it may have missed changes since its last clean
 * heal: daemon/suspect.h; read with a zero XATTROP on the root).  The
 * volume is healthy when every brick is up and no heal index has entries,
 * degraded when a majority is up, read-only below that.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "common/clock.h"
#include "common/auth.h"
#include "common/config.h"
#include "replicafs/client.h"

struct brick_status {
    struct brick_conn *bc; /* owned; closed at the end */
    bool up;
    int error; /* -errno when not up */
    uint64_t rtt_us;
    uint32_t version;
    struct statfs_rep fs;
    uint64_t heal_entries;
    int suspect; /* 1 yes, 0 no, -1 unknown (a brick without the field) */
};

static void wake_cb(uv_timer_t *t)
{
    (void)t; /* only ends uv_run(UV_RUN_ONCE) */
}

/* Run the loop until every brick is UP or has failed once (refused,
 * unreachable, bad key), or timeout_ms has passed: a refused brick should not
 * make the admin wait for the timeout. */
static void wait_all(uv_loop_t *loop, struct brick_status *bs, unsigned n,
                     unsigned timeout_ms)
{
    uint64_t deadline = mono_us() + (uint64_t)timeout_ms * 1000u;
    uv_timer_t t;

    uv_timer_init(loop, &t);
    uv_timer_start(&t, wake_cb, 20, 20);
    while (mono_us() < deadline) {
        unsigned settled = 0;
        for (unsigned i = 0; i < n; i++)
            settled += brick_conn_state(bs[i].bc) == BRICK_UP ||
                       brick_conn_last_error(bs[i].bc) != 0;
        if (settled == n)
            break;
        uv_run(loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}

static int count_heal_entries(struct brick_conn *bc, uint64_t *out)
{
    struct heal_list_req req = {.cookie = 0, .max = PROTO_HEAL_LIST_MAX};
    struct heal_list_rep rep;
    uint64_t total = 0;
    int rc;

    do {
        rc = brick_call_sync(bc, OP_HEAL_LIST, &req, &rep, NULL);
        if (rc < 0)
            return rc;
        total += rep.count;
        req.cookie = rep.next_cookie;
    } while (!rep.eof);
    *out = total;
    return 0;
}

static void probe(struct brick_status *b)
{
    struct ping_req preq = {.stamp = mono_us()};
    struct ping_rep prep;
    struct statfs_req freq = {0};
    int rc;

    b->up = brick_conn_state(b->bc) == BRICK_UP;
    if (!b->up) {
        b->error = brick_conn_last_error(b->bc);
        if (!b->error)
            b->error = -ETIMEDOUT;
        return;
    }
    b->version = brick_conn_version(b->bc);
    rc = brick_call_sync(b->bc, OP_PING, &preq, &prep, NULL);
    if (rc == 0)
        rc = brick_call_sync(b->bc, OP_STATFS, &freq, &b->fs, NULL);
    if (rc == 0)
        rc = count_heal_entries(b->bc, &b->heal_entries);
    if (rc == 0) {
        struct xattrop_req xreq = {.id = RFS_ROOT_ID};
        struct xattrop_rep xrep;

        b->suspect = brick_call_sync(b->bc, OP_XATTROP, &xreq, &xrep, NULL)
                         ? -1 : xrep.suspect != 0;
    }
    if (rc < 0) {
        b->up = false;
        b->error = rc;
        return;
    }
    b->rtt_us = mono_us() - preq.stamp;
}

static const char *volume_state(const struct brick_status *bs, unsigned n,
                                int *exit_code)
{
    unsigned up = 0;
    uint64_t backlog = 0;

    for (unsigned i = 0; i < n; i++) {
        up += bs[i].up;
        backlog += bs[i].heal_entries;
    }
    if (up == 0) {
        *exit_code = CLI_EXIT_ERROR;
        return "offline";
    }
    if (up < n / 2 + 1) {
        *exit_code = CLI_EXIT_DEGRADED;
        return "read-only";
    }
    if (up < n || backlog) {
        *exit_code = CLI_EXIT_DEGRADED;
        return "degraded";
    }
    *exit_code = CLI_EXIT_OK;
    return "healthy";
}

static void print_text(const struct vol_config *vol,
                       const struct brick_status *bs, const char *state)
{
    printf("volume %s: %s (replica %u)\n", vol->name, state, vol->replica);
    printf("%-6s %-22s %-5s %9s %5s %12s %10s %7s\n", "brick", "address",
           "state", "rtt", "proto", "free", "heal", "suspect");
    for (unsigned i = 0; i < vol->nbricks; i++) {
        const struct brick_status *b = &bs[i];
        char addr[300];

        snprintf(addr, sizeof(addr), "%s:%u", vol->bricks[i].host,
                 vol->bricks[i].port);
        if (!b->up) {
            printf("%-6u %-22s %-5s %s\n", i + 1, addr, "down",
                   strerror(-b->error));
            continue;
        }
        printf("%-6u %-22s %-5s %6.2f ms %5u %9.1f GiB %10llu %7s\n", i + 1,
               addr, "up", b->rtt_us / 1000.0, b->version,
               (double)b->fs.bavail * b->fs.bsize / (1024.0 * 1024 * 1024),
               (unsigned long long)b->heal_entries,
               b->suspect < 0 ? "?" : b->suspect ? "yes" : "no");
    }
}

static void print_json(const struct vol_config *vol,
                       const struct brick_status *bs, const char *state)
{
    printf("{\"volume\":\"%s\",\"state\":\"%s\",\"replica\":%u,\"bricks\":[",
           vol->name, state, vol->replica);
    for (unsigned i = 0; i < vol->nbricks; i++) {
        const struct brick_status *b = &bs[i];

        printf("%s{\"brick\":%u,\"address\":\"%s:%u\",\"up\":%s", i ? "," : "",
               i + 1, vol->bricks[i].host, vol->bricks[i].port,
               b->up ? "true" : "false");
        if (b->up)
            printf(",\"rtt_us\":%llu,\"protocol\":%u,\"free_bytes\":%llu,"
                   "\"heal_entries\":%llu,\"suspect\":%s",
                   (unsigned long long)b->rtt_us, b->version,
                   (unsigned long long)(b->fs.bavail * b->fs.bsize),
                   (unsigned long long)b->heal_entries,
                   b->suspect < 0 ? "null" : b->suspect ? "true" : "false");
        else
            printf(",\"error\":\"%s\"", strerror(-b->error));
        printf("}");
    }
    printf("]}\n");
}

static int usage(FILE *f, int code)
{
    fprintf(f, "usage: replicafs status --volume FILE [--json] [--timeout MS]\n"
               "Exit: 0 healthy, 1 degraded or read-only, 2 error or no brick "
               "reachable.\n");
    return code;
}

int cmd_status(int argc, char **argv)
{
    static const struct option opts[] = {
        {"volume", required_argument, NULL, 'v'},
        {"json", no_argument, NULL, 'j'},
        {"timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    const char *volfile = NULL;
    bool json = false;
    unsigned timeout_ms = 3000;
    struct vol_config vol;
    struct brick_status bs[PROTO_MAX_BRICKS];
    uv_loop_t loop;
    const char *state;
    int c, rc, code;

    while ((c = getopt_long(argc, argv, "v:jt:h", opts, NULL)) != -1) {
        switch (c) {
        case 'v': volfile = optarg; break;
        case 'j': json = true; break;
        case 't': timeout_ms = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'h': return usage(stdout, CLI_EXIT_OK);
        default: return usage(stderr, CLI_EXIT_ERROR);
        }
    }
    if (!volfile || optind != argc)
        return usage(stderr, CLI_EXIT_ERROR);
    if (cli_load_volume("status", volfile, &vol) < 0)
        return CLI_EXIT_ERROR;
    if (uv_loop_init(&loop) < 0)
        return CLI_EXIT_ERROR;
    memset(bs, 0, sizeof(bs));
    for (unsigned i = 0; i < vol.nbricks; i++) {
        struct brick_conn_opts o = {.ping_timeout_ms = timeout_ms};

        rc = brick_conn_new(&loop, &vol, i + 1, &o, &bs[i].bc);
        if (rc < 0) {
            fprintf(stderr, "replicafs status: %s\n", strerror(-rc));
            code = CLI_EXIT_ERROR;
            goto out_close;
        }
        brick_conn_start(bs[i].bc);
    }
    wait_all(&loop, bs, vol.nbricks, timeout_ms);
    for (unsigned i = 0; i < vol.nbricks; i++)
        probe(&bs[i]);
    state = volume_state(bs, vol.nbricks, &code);
    if (json)
        print_json(&vol, bs, state);
    else
        print_text(&vol, bs, state);
out_close:
    for (unsigned i = 0; i < vol.nbricks; i++)
        if (bs[i].bc)
            brick_conn_close(bs[i].bc, NULL, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return code;
}
