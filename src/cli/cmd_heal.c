/*
 * replicafs heal --volume FILE [--full] [--wait] [--timeout S] [--jobs N]
 *                [--json] [--verbose]
 * (--verbose also with --daemon)
 * replicafs heal --daemon --volume FILE [--jobs N] [--json]
 * replicafs heal --list --volume FILE [--json]
 *
 * Heals everything in the heal indices of the up bricks (or, with --full,
 * everything met crawling the namespace), with the engine of
 * src/client/heal.c, then looks again at what is left.  A pass can leave
 * work for the next one (a directory renamed while a brick was away heals
 * in two steps), so up to HEAL_PASSES passes run while they make progress;
 * --wait goes on (a pass a second) until nothing is left or the timeout;
 * --daemon never stops: it heals whenever the indices have work, which is
 * when a brick comes back (the links reconnect by themselves).  With
 * --jobs N (default 4) the first pass (and any with a big backlog) is
 * split over N forked workers, after this process healed the directories.
 *
 * Exit: 0 nothing left to heal; 1 something left (split-brain, a brick
 * down, a failure); 2 usage, configuration or no brick reachable.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "client/heal.h"
#include "common/auth.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/id.h"

#define HEAL_PASSES 4

/* What is left after a pass, from the heal indices. */
struct leftover {
    size_t pending;     /* objects some up brick still marks */
    size_t split_brain;
    size_t stale;       /* index entries of objects gone everywhere */
    size_t orphans;     /* files unlinked while open: nothing to heal */
};

/* The bricks' suspect marks over a run (docs/heal.md, "Suspect bricks"). */
struct suspects {
    uint64_t gen[PROTO_MAX_BRICKS]; /* read at the start of the pass */
    uint32_t read;                  /* bricks whose gen was read */
    uint32_t clean;                 /* bricks known clean now */
    uint32_t cleared;               /* bricks this run cleared */
};

static const char *type_name(uint32_t t)
{
    switch (t) {
    case S_IFDIR: return "dir";
    case S_IFREG: return "file";
    case S_IFLNK: return "symlink";
    case S_IFIFO: return "fifo";
    case 0: return "gone";
    default: return "other";
    }
}

static const char *item_state(const struct heal_item *it)
{
    if (!it->type)
        return "stale";
    if (it->orphan)
        return "orphan";
    if (it->v.split_brain)
        return "split-brain";
    if (it->v.blamed) /* a sink, or a blamed brick lacking it or down */
        return "needs-heal";
    if (it->v.dirty)
        return "dirty";
    return "clean";
}

static int count_left(struct healer *h, struct leftover *l)
{
    struct heal_item *items;
    size_t n;
    int rc = heal_list(h, &items, &n);

    if (rc < 0)
        return rc;
    memset(l, 0, sizeof(*l));
    for (size_t i = 0; i < n; i++) {
        if (!items[i].type)
            l->stale++;
        else if (items[i].orphan)
            l->orphans++;
        else if (items[i].v.split_brain)
            l->split_brain++;
        else
            l->pending++;
    }
    free(items);
    return 0;
}

static void mask_str(uint32_t m, unsigned n, char *out, size_t cap)
{
    size_t o = 0;

    out[0] = '\0';
    for (unsigned b = 0; b < n && o + 4 < cap; b++)
        if (m & (1u << b))
            o += (size_t)snprintf(out + o, cap - o, "%s%u", o ? "," : "",
                                  b + 1);
    if (!o)
        snprintf(out, cap, "-");
}

static int do_list(struct healer *h, bool json)
{
    struct heal_item *items;
    struct rfs_id *ids;
    char **paths;
    size_t n;
    unsigned nb = healer_nbricks(h);
    int rc, code = CLI_EXIT_OK;

    rc = heal_list(h, &items, &n);
    if (rc < 0) {
        fprintf(stderr, "replicafs heal: %s\n", strerror(-rc));
        return CLI_EXIT_ERROR;
    }
    ids = calloc(n ? n : 1, sizeof(*ids));
    paths = calloc(n ? n : 1, sizeof(*paths));
    if (!ids || !paths) {
        free(ids);
        free(paths);
        free(items);
        return CLI_EXIT_ERROR;
    }
    /* Paths of live objects only: a deleted one would be searched for in
     * the whole tree, on every brick. */
    for (size_t i = 0; i < n; i++)
        ids[i] = items[i].type ? items[i].id : (struct rfs_id){0, 0};
    (void)heal_find_paths(h, ids, n, paths);
    if (json)
        printf("{\"entries\":[");
    else
        printf("%-32s %-7s %-11s %-8s %-8s %s\n", "id", "type", "state",
               "sources", "sinks", "path");
    for (size_t i = 0; i < n; i++) {
        char hex[RFS_ID_HEX_LEN + 1], src[64], snk[64];
        const struct heal_item *it = &items[i];

        rfs_id_to_hex(&it->id, hex);
        mask_str(it->v.sources, nb, src, sizeof(src));
        mask_str(it->v.blamed, nb, snk, sizeof(snk));
        if (strcmp(item_state(it), "stale") && strcmp(item_state(it), "orphan"))
            code = CLI_EXIT_DEGRADED;
        if (json)
            printf("%s{\"id\":\"%s\",\"type\":\"%s\",\"state\":\"%s\","
                   "\"sources\":\"%s\",\"sinks\":\"%s\",\"path\":%s%s%s}",
                   i ? "," : "", hex, type_name(it->type), item_state(it), src,
                   snk, paths[i] ? "\"" : "", paths[i] ? paths[i] : "null",
                   paths[i] ? "\"" : "");
        else
            printf("%-32s %-7s %-11s %-8s %-8s %s\n", hex, type_name(it->type),
                   item_state(it), src, snk, paths[i] ? paths[i] : "?");
        free(paths[i]);
    }
    if (json)
        printf("],\"count\":%zu}\n", n);
    else
        printf("%zu entries\n", n);
    if (healer_up_mask(h) != (1u << nb) - 1)
        code = CLI_EXIT_DEGRADED;
    free(ids);
    free(paths);
    free(items);
    return code;
}

static void print_result(const struct heal_stats *st, const struct leftover *l,
                         const struct suspects *su, unsigned nb,
                         unsigned down, unsigned passes, double secs,
                         bool json)
{
    unsigned cleared = (unsigned)__builtin_popcount(su->cleared);
    unsigned suspect = nb - (unsigned)__builtin_popcount(su->clean);

    if (json) {
        printf("{\"objects\":%llu,\"healed\":%llu,\"entries_created\":%llu,"
               "\"entries_linked\":%llu,\"entries_removed\":%llu,"
               "\"files\":%llu,\"bytes\":%llu,\"bytes_same\":%llu,"
               "\"metadata\":%llu,"
               "\"split_brain\":%zu,\"failed\":%llu,\"deferred\":%llu,"
               "\"pending\":%zu,\"stale\":%zu,\"bricks_down\":%u,"
               "\"passes\":%u,\"seconds\":%.3f,\"suspect_cleared\":%u,"
               "\"suspect_left\":%u}\n",
               (unsigned long long)st->objects,
               (unsigned long long)st->healed,
               (unsigned long long)st->entries_created,
               (unsigned long long)st->entries_linked,
               (unsigned long long)st->entries_removed,
               (unsigned long long)st->files, (unsigned long long)st->bytes,
               (unsigned long long)st->bytes_same,
               (unsigned long long)st->meta, l->split_brain,
               (unsigned long long)st->failed,
               (unsigned long long)st->deferred, l->pending, l->stale, down,
               passes, secs, cleared, suspect);
        return;
    }
    printf("healed %llu of %llu objects in %.2f s (%u passes)\n",
           (unsigned long long)st->healed, (unsigned long long)st->objects,
           secs, passes);
    printf("  entries: %llu created, %llu linked (renames), %llu removed\n",
           (unsigned long long)st->entries_created,
           (unsigned long long)st->entries_linked,
           (unsigned long long)st->entries_removed);
    printf("  data:    %llu files, %llu bytes sent, %llu bytes already "
           "equal\n",
           (unsigned long long)st->files, (unsigned long long)st->bytes,
           (unsigned long long)st->bytes_same);
    printf("  metadata: %llu\n", (unsigned long long)st->meta);
    printf("  left:    %zu pending, %zu split-brain, %llu failed, "
           "%u bricks down\n",
           l->pending, l->split_brain, (unsigned long long)st->failed, down);
    printf("  suspect: %u bricks cleared, %u still suspect\n", cleared,
           suspect);
    if (l->stale)
        printf("  note:    %zu index entries name objects deleted "
               "everywhere (ignored)\n", l->stale);
    if (l->orphans)
        printf("  note:    %zu files deleted while open (no name left: "
               "nothing to heal; they go at the last close)\n", l->orphans);
}

/* heal_stats is only uint64_t counters: add them field by field. */
static void stats_add(struct heal_stats *a, const struct heal_stats *b)
{
    uint64_t *x = (uint64_t *)a;
    const uint64_t *y = (const uint64_t *)b;

    for (size_t i = 0; i < sizeof(*a) / sizeof(uint64_t); i++)
        x[i] += y[i];
}

/* Worker k of jobs: its own loop and connections, the objects whose id
 * hash is k modulo jobs; its counts go up the pipe.  Never returns. */
static void worker(const struct vol_config *vol, bool full, bool verbose,
                   unsigned jobs, unsigned k, int fd, pid_t parent)
{
    struct heal_stats st = {0};
    struct healer *h;
    uv_loop_t loop;
    int rc = 1;

    heal_worker_bind(parent, SIGKILL);
    if (uv_loop_init(&loop) == 0 && healer_new(&loop, vol, 3000, &h) == 0) {
        heal_set_split(h, false, jobs, k);
        heal_set_verbose(h, verbose);
        rc = heal_pass(h, full, &st) < 0;
        healer_free(h);
        uv_loop_close(&loop);
    }
    if (write(fd, &st, sizeof(st)) != (ssize_t)sizeof(st))
        rc = 1;
    _exit(rc);
}

/*
 * A first pass split over `jobs` processes: this one heals the directories
 * (which makes every missing object on the sinks, marked pending), then
 * the workers heal the rest in parallel, each its share of the ids.  The
 * locks keep them apart where shares meet.  0 or -errno.
 */
static int parallel_pass(struct healer *h, const struct vol_config *vol,
                         bool full, bool verbose, unsigned jobs,
                         struct heal_stats *st)
{
    pid_t pids[64], self = getpid();
    int pfd[2], rc;
    unsigned started = 0;

    heal_set_split(h, true, 0, 0);
    rc = heal_pass(h, full, st);
    heal_set_split(h, false, 0, 0);
    if (rc < 0)
        return rc;
    if (pipe(pfd) < 0)
        return -errno;
    fflush(stdout);
    fflush(stderr);
    for (unsigned k = 0; k < jobs; k++) {
        pid_t p = fork();

        if (p == 0) {
            close(pfd[0]);
            worker(vol, full, verbose, jobs, k, pfd[1], self);
        }
        if (p < 0) {
            rc = -errno;
            break;
        }
        pids[started++] = p;
    }
    close(pfd[1]);
    for (unsigned k = 0; k < started; k++) {
        struct heal_stats ws;

        if (read(pfd[0], &ws, sizeof(ws)) == (ssize_t)sizeof(ws))
            stats_add(st, &ws);
    }
    for (unsigned k = 0; k < started; k++) {
        int status;

        while (waitpid(pids[k], &status, 0) < 0 && errno == EINTR)
            ;
    }
    close(pfd[0]);
    return rc;
}

/* Start of a pass: the generation of each up brick's suspect mark. */
static void suspects_read(struct healer *h, struct suspects *su)
{
    (void)heal_suspect_read(h, su->gen, &su->read);
    su->clean = 0;
    for (unsigned b = 0; b < healer_nbricks(h); b++)
        if ((su->read & (1u << b)) && su->gen[b] == 0)
            su->clean |= 1u << b;
}

/*
 * End of a pass: with every brick up (and read at the start), nothing left
 * in any heal index and no failure in the pass, no brick can have missed a
 * change that is not healed: clear each mark of the generation read at the
 * start (one set since stays).  Otherwise the marks stay.
 */
static void suspects_settle(struct healer *h, struct suspects *su,
                            const struct leftover *l, uint64_t failed)
{
    uint32_t all = (1u << healer_nbricks(h)) - 1, clean = 0;

    if (healer_up_mask(h) != all || su->read != all || l->pending ||
        l->split_brain || l->stale || l->orphans || failed)
        return;
    if (su->clean == all)
        return; /* nothing to clear */
    (void)heal_suspect_clear(h, all & ~su->clean, su->gen, &clean);
    su->cleared |= clean & ~su->clean;
    su->clean |= clean;
}

static int usage(FILE *f, int code)
{
    fprintf(f,
            "usage: replicafs heal --volume FILE [--full] [--wait] "
            "[--timeout S] [--jobs N] [--json]\n"
            "                      [--verbose]\n"
            "       replicafs heal --daemon --volume FILE [--jobs N] "
            "[--json] [--verbose]\n"
            "       replicafs heal --list --volume FILE [--json]\n"
            "Heals what the bricks' heal indices name (--full: crawls the "
            "whole namespace).\n"
            "--wait repeats until nothing is left to heal or --timeout "
            "(default 600 s).\n"
            "--daemon never exits: it heals whenever there is work (a brick "
            "came back)\nand prints a summary after each pass that did "
            "something.\n"
            "--jobs N heals with N processes at once (default 4; 1: one).\n"
            "--list shows the heal backlog: id, type, state, source and sink "
            "bricks, path.\n"
            "--verbose tells on stderr, for each object not found clean, "
            "what was healed\non which brick, or why not.\n"
            "Exit: 0 all healed (--list: nothing to heal), 1 something left "
            "(split-brain,\n"
            "a brick down, a failure), 2 usage error or no brick reachable.\n");
    return code;
}

int cmd_heal(int argc, char **argv)
{
    static const struct option opts[] = {
        {"volume", required_argument, NULL, 'v'},
        {"json", no_argument, NULL, 'j'},
        {"full", no_argument, NULL, 'f'},
        {"wait", no_argument, NULL, 'w'},
        {"list", no_argument, NULL, 'l'},
        {"timeout", required_argument, NULL, 't'},
        {"jobs", required_argument, NULL, 'J'},
        {"daemon", no_argument, NULL, 'D'},
        {"verbose", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    const char *volfile = NULL;
    bool json = false, full = false, wait = false, list = false;
    bool daemon = false, verbose = false;
    double timeout_s = 600, t0;
    struct vol_config vol;
    struct heal_stats st = {0};
    struct leftover left = {0};
    struct suspects su = {0};
    struct healer *h;
    uv_loop_t loop;
    unsigned passes = 0, nb, down, jobs = 4;
    bool was_parallel = false, settle_again = false, resettle;
    int c, rc, code;

    optind = 1;
    while ((c = getopt_long(argc, argv, "v:jfwlt:J:DVh", opts, NULL)) != -1) {
        switch (c) {
        case 'v': volfile = optarg; break;
        case 'j': json = true; break;
        case 'f': full = true; break;
        case 'w': wait = true; break;
        case 'D': daemon = wait = true; break;
        case 'V': verbose = true; break;
        case 'l': list = true; break;
        case 't': timeout_s = strtod(optarg, NULL); break;
        case 'J':
            jobs = (unsigned)strtoul(optarg, NULL, 10);
            if (jobs < 1 || jobs > 64)
                return usage(stderr, CLI_EXIT_ERROR);
            break;
        case 'h': return usage(stdout, CLI_EXIT_OK);
        default: return usage(stderr, CLI_EXIT_ERROR);
        }
    }
    if (!volfile || optind != argc)
        return usage(stderr, CLI_EXIT_ERROR);
    if (cli_load_volume("heal", volfile, &vol) < 0)
        return CLI_EXIT_ERROR;
    if (uv_loop_init(&loop) < 0)
        return CLI_EXIT_ERROR;
    rc = healer_new(&loop, &vol, 3000, &h);
    if (rc < 0) {
        fprintf(stderr, "replicafs heal: %s\n", strerror(-rc));
        uv_loop_close(&loop);
        return CLI_EXIT_ERROR;
    }
    nb = healer_nbricks(h);
    heal_set_verbose(h, verbose);
    if (!healer_up_mask(h)) {
        fprintf(stderr, "replicafs heal: no brick reachable\n");
        code = CLI_EXIT_ERROR;
        goto out;
    }
    if (list) {
        code = do_list(h, json);
        goto out;
    }
    t0 = mono_s();
    for (;;) {
        uint64_t before = st.healed + st.entries_created + st.entries_removed +
                          st.entries_linked;
        uint64_t failed0 = st.failed;

        suspects_read(h, &su);
        was_parallel = jobs > 1 && (passes == 0 || left.pending > 200);
        if (was_parallel)
            rc = parallel_pass(h, &vol, full, verbose, jobs, &st);
        else
            rc = heal_pass(h, full, &st);
        passes++;
        if (rc < 0) {
            fprintf(stderr, "replicafs heal: %s\n", strerror(-rc));
            code = CLI_EXIT_ERROR;
            goto out;
        }
        rc = count_left(h, &left);
        if (rc < 0) {
            fprintf(stderr, "replicafs heal: %s\n", strerror(-rc));
            code = CLI_EXIT_ERROR;
            goto out;
        }
        full = false; /* later passes follow the indices */
        suspects_settle(h, &su, &left, st.failed - failed0);
        /* The workers of a parallel pass are clients that went away: the
         * bricks marked themselves suspect again after we read the marks.
         * One more (cheap, index-driven) pass in this process settles
         * them. */
        resettle = was_parallel && su.clean != (1u << nb) - 1 &&
                   left.pending == 0 && left.split_brain == 0 &&
                   healer_up_mask(h) == (1u << nb) - 1;
        if (daemon) {
            if (before != st.healed + st.entries_created +
                              st.entries_removed + st.entries_linked ||
                su.cleared) {
                print_result(&st, &left, &su, nb,
                             nb - (unsigned)__builtin_popcount(
                                      healer_up_mask(h)),
                             passes, mono_s() - t0, json);
                fflush(stdout);
                memset(&st, 0, sizeof(st));
                su.cleared = 0;
                t0 = mono_s();
            } else if (!resettle) {
                /* Nothing healed: wait until a brick comes or goes (only
                 * then can more be healed), or a minute, before the next
                 * look at the indices. */
                uint32_t m0 = healer_up_mask(h);

                for (int i = 0; i < 60 && healer_up_mask(h) == m0; i++)
                    healer_idle(h, 1000);
            }
            continue;
        }
        if (left.pending == 0 && left.split_brain == 0 &&
            healer_up_mask(h) == (1u << nb) - 1) {
            if (resettle && !settle_again) {
                settle_again = true;
                continue;
            }
            break;
        }
        if (wait) {
            if (mono_s() - t0 > timeout_s)
                break;
            if (before == st.healed + st.entries_created +
                              st.entries_removed + st.entries_linked)
                healer_idle(h, 1000); /* a down brick reconnects meanwhile */
            continue;
        }
        if (passes >= HEAL_PASSES || left.pending == 0 ||
            before == st.healed + st.entries_created + st.entries_removed +
                          st.entries_linked)
            break;
    }
    down = nb - (unsigned)__builtin_popcount(healer_up_mask(h));
    print_result(&st, &left, &su, nb, down, passes, mono_s() - t0, json);
    code = left.pending || left.split_brain || down
               ? CLI_EXIT_DEGRADED
               : CLI_EXIT_OK;
out:
    healer_free(h);
    uv_loop_close(&loop);
    return code;
}
