/*
 * replicafs split-brain list --volume FILE [--json]
 * replicafs split-brain resolve PATH --volume FILE
 *                       (--source-brick N | --latest-mtime | --bigger-file)
 *
 * list: the objects in the heal indices whose markers have no clean copy
 * (bricks blaming each other), with their path and each brick's view.
 * resolve: heals PATH from the chosen brick, overruling the markers
 * (heal_resolve() in src/client/heal.c), then clears the blame.
 *
 * Exit: list: 0 none, 1 some found; resolve: 0 resolved, 1 not resolved
 * (the chosen brick lacks the object, a brick failed), 2 usage/connection.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "client/heal.h"
#include "common/auth.h"
#include "common/config.h"
#include "common/id.h"

static int usage(FILE *f, int code)
{
    fprintf(f,
            "usage: replicafs split-brain list --volume FILE [--json]\n"
            "       replicafs split-brain resolve PATH --volume FILE\n"
            "              (--source-brick N | --latest-mtime | --bigger-file)"
            " [--json]\n"
            "PATH is relative to the volume root (\"/photos/a.jpg\").\n"
            "Exit: list: 0 none, 1 found; resolve: 0 resolved, 1 not "
            "resolved; 2 error.\n");
    return code;
}

static void print_marks(const struct heal_item *it, unsigned nb, bool json)
{
    for (unsigned b = 0; b < nb; b++) {
        if (json) {
            printf("%s{\"brick\":%u,\"present\":%s,\"dirty\":%" PRId64
                   ",\"pending\":[",
                   b ? "," : "", b + 1,
                   it->m.present & (1u << b) ? "true" : "false",
                   it->m.dirty[b]);
            for (unsigned x = 0; x < nb; x++)
                printf("%s%" PRId64, x ? "," : "", it->m.pend[b][x]);
            printf("]}");
            continue;
        }
        if (!(it->m.present & (1u << b))) {
            printf("    brick %u: absent or down\n", b + 1);
            continue;
        }
        printf("    brick %u: dirty %" PRId64 ", pending [", b + 1,
               it->m.dirty[b]);
        for (unsigned x = 0; x < nb; x++)
            printf("%s%" PRId64, x ? " " : "", it->m.pend[b][x]);
        printf("]\n");
    }
}

static int do_list(struct healer *h, bool json)
{
    struct heal_item *items;
    size_t n, nsb = 0, k = 0;
    unsigned nb = healer_nbricks(h);
    struct rfs_id *ids;
    char **paths;
    int rc;

    rc = heal_list(h, &items, &n);
    if (rc < 0) {
        fprintf(stderr, "replicafs split-brain: %s\n", strerror(-rc));
        return CLI_EXIT_ERROR;
    }
    for (size_t i = 0; i < n; i++)
        nsb += items[i].type && items[i].v.split_brain;
    ids = calloc(nsb ? nsb : 1, sizeof(*ids));
    paths = calloc(nsb ? nsb : 1, sizeof(*paths));
    if (!ids || !paths) {
        free(ids);
        free(paths);
        free(items);
        return CLI_EXIT_ERROR;
    }
    for (size_t i = 0; i < n; i++)
        if (items[i].type && items[i].v.split_brain)
            ids[k++] = items[i].id;
    if (nsb)
        (void)heal_find_paths(h, ids, nsb, paths);
    if (json)
        printf("{\"split_brain\":[");
    k = 0;
    for (size_t i = 0; i < n; i++) {
        const struct heal_item *it = &items[i];
        char hex[RFS_ID_HEX_LEN + 1];

        if (!it->type || !it->v.split_brain)
            continue;
        rfs_id_to_hex(&it->id, hex);
        if (json) {
            printf("%s{\"id\":\"%s\",\"path\":%s%s%s,\"bricks\":[",
                   k ? "," : "", hex, paths[k] ? "\"" : "",
                   paths[k] ? paths[k] : "null", paths[k] ? "\"" : "");
            print_marks(it, nb, true);
            printf("]}");
        } else {
            printf("%s (id %s)\n", paths[k] ? paths[k] : "?", hex);
            print_marks(it, nb, false);
        }
        free(paths[k]);
        k++;
    }
    if (json)
        printf("],\"count\":%zu}\n", nsb);
    else
        printf("%zu in split-brain\n", nsb);
    free(ids);
    free(paths);
    free(items);
    return nsb ? CLI_EXIT_DEGRADED : CLI_EXIT_OK;
}

static int do_resolve(struct healer *h, const char *path, enum heal_pick pick,
                      unsigned brick, bool json)
{
    struct heal_stats st = {0};
    struct proto_attr a;
    struct rfs_id id;
    uint32_t upm = healer_up_mask(h);
    unsigned chosen = 0;
    int rc = -ENOENT;

    /* The name may be missing on some bricks: ask each up one. */
    for (unsigned b = 0; b < healer_nbricks(h) && rc < 0; b++)
        if (upm & (1u << b))
            rc = heal_lookup_path(h, b, path, &id, &a);
    if (rc < 0) {
        fprintf(stderr, "replicafs split-brain: %s: %s\n", path,
                strerror(-rc));
        return CLI_EXIT_ERROR;
    }
    rc = heal_resolve(h, &id, pick, brick, &chosen, &st);
    if (rc < 0) {
        fprintf(stderr, "replicafs split-brain: resolve %s: %s\n", path,
                rc == -EINVAL ? "the chosen brick is down or lacks it"
                              : strerror(-rc));
        return CLI_EXIT_DEGRADED;
    }
    if (json)
        printf("{\"path\":\"%s\",\"source_brick\":%u,\"bytes\":%llu,"
               "\"entries_created\":%llu,\"entries_removed\":%llu}\n",
               path, chosen, (unsigned long long)st.bytes,
               (unsigned long long)st.entries_created,
               (unsigned long long)st.entries_removed);
    else
        printf("%s: resolved from brick %u (%llu bytes copied, %llu entries "
               "created, %llu removed)\n",
               path, chosen, (unsigned long long)st.bytes,
               (unsigned long long)st.entries_created,
               (unsigned long long)st.entries_removed);
    return CLI_EXIT_OK;
}

int cmd_splitbrain(int argc, char **argv)
{
    static const struct option opts[] = {
        {"volume", required_argument, NULL, 'v'},
        {"json", no_argument, NULL, 'j'},
        {"source-brick", required_argument, NULL, 's'},
        {"latest-mtime", no_argument, NULL, 'm'},
        {"bigger-file", no_argument, NULL, 'b'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    const char *volfile = NULL, *sub, *path = NULL;
    bool json = false;
    int npick = 0;
    enum heal_pick pick = HEAL_PICK_BRICK;
    unsigned brick = 0;
    struct vol_config vol;
    struct healer *h;
    uv_loop_t loop;
    int c, rc, code;

    if (argc < 2)
        return usage(stderr, CLI_EXIT_ERROR);
    sub = argv[1];
    if (!strcmp(sub, "--help") || !strcmp(sub, "-h"))
        return usage(stdout, CLI_EXIT_OK);
    if (strcmp(sub, "list") && strcmp(sub, "resolve"))
        return usage(stderr, CLI_EXIT_ERROR);
    optind = 1;
    while ((c = getopt_long(argc - 1, argv + 1, "v:js:mbh", opts, NULL)) !=
           -1) {
        switch (c) {
        case 'v': volfile = optarg; break;
        case 'j': json = true; break;
        case 's':
            pick = HEAL_PICK_BRICK;
            brick = (unsigned)strtoul(optarg, NULL, 10);
            npick++;
            break;
        case 'm': pick = HEAL_PICK_MTIME; npick++; break;
        case 'b': pick = HEAL_PICK_SIZE; npick++; break;
        case 'h': return usage(stdout, CLI_EXIT_OK);
        default: return usage(stderr, CLI_EXIT_ERROR);
        }
    }
    if (!strcmp(sub, "resolve")) {
        if (optind + 1 != argc - 1 || npick != 1)
            return usage(stderr, CLI_EXIT_ERROR);
        path = argv[1 + optind];
    } else if (optind != argc - 1 || npick) {
        return usage(stderr, CLI_EXIT_ERROR);
    }
    if (!volfile)
        return usage(stderr, CLI_EXIT_ERROR);
    if (cli_load_volume("split-brain", volfile, &vol) < 0)
        return CLI_EXIT_ERROR;
    if (uv_loop_init(&loop) < 0)
        return CLI_EXIT_ERROR;
    rc = healer_new(&loop, &vol, 3000, &h);
    if (rc < 0) {
        fprintf(stderr, "replicafs split-brain: %s\n", strerror(-rc));
        uv_loop_close(&loop);
        return CLI_EXIT_ERROR;
    }
    if (!healer_up_mask(h)) {
        fprintf(stderr, "replicafs split-brain: no brick reachable\n");
        code = CLI_EXIT_ERROR;
    } else if (path) {
        code = do_resolve(h, path, pick, brick, json);
    } else {
        code = do_list(h, json);
    }
    healer_free(h);
    uv_loop_close(&loop);
    return code;
}
