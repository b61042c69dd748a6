/*
 * replicafs verify [PATH] [--deep] [--json] [--timeout MS] --volume FILE
 *
 * Compares the replicas of a subtree (PATH inside the volume, default the
 * root) brick by brick, bypassing the client: every up brick is walked with
 * READDIR, and for each path the bricks' answers are grouped by value.  A
 * brick outside the majority group is named as the one that disagrees; with
 * no majority (two bricks that differ) every group is shown.
 *
 * Compared per path: presence, type, id, permissions, uid, gid, symlink
 * target, and for regular files the size and the xxh3-64 sum of each 64 KiB
 * block (OP_CHECKSUM).  Not compared: times and link counts (they differ
 * legitimately between bricks).
 *
 * Block sums come from the bricks' stored sums, which are voided by any
 * change a brick can see (a write through it, or a changed ctime: an edit
 * behind its back).  --deep makes every brick re-read every block
 * (CHECKSUM_DEEP), which also finds data that changed on disk with no
 * metadata change at all (bit rot, a bad disk or controller).
 *
 * Exit: 0 every replica equal, 1 a mismatch found, 2 error (usage, volume
 * file, PATH on no brick, fewer than two bricks up, a brick call failed, or
 * a brick down so that not every replica was compared: 2 unless a mismatch
 * was found among the others, then 1).  Files being written during the run
 * may be reported; re-run to confirm.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli/cli.h"
#include "common/auth.h"
#include "common/config.h"
#include "replicafs/client.h"

#define VERIFY_BS (64u * 1024)
#define VERIFY_CHUNK 4096u /* blocks per CHECKSUM call: 256 MiB */
#define MAXB PROTO_MAX_BRICKS

struct verify {
    struct vol_config vol;
    uv_loop_t loop;
    struct brick_conn *bc[MAXB]; /* owned; NULL for a brick not up */
    unsigned nup;
    bool deep;
    bool json;
    uint64_t checked;            /* paths compared */
    uint64_t mismatches;
    int error;                   /* first brick error (-errno), or 0 */
    char errpath[PROTO_PATH_MAX];
};

/* One path as one brick sees it. */
struct view {
    bool present;
    struct proto_attr a;
    char target[PROTO_PATH_MAX]; /* symlinks */
};

/* ---- output ---- */

static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;

        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static void brick_list(char *out, size_t cap, uint32_t mask)
{
    size_t off = 0;

    out[0] = '\0';
    for (unsigned b = 0; b < MAXB && off < cap; b++)
        if (mask & (1u << b))
            off += (size_t)snprintf(out + off, cap - off, "%s%u",
                                    off ? "," : "", b + 1);
}

/* Report bricks `bad` disagreeing on `what` for path (detail: free text). */
static void report(struct verify *v, const char *path, const char *what,
                   uint32_t bad, const char *detail)
{
    char bricks[64];

    brick_list(bricks, sizeof(bricks), bad);
    v->mismatches++;
    if (v->json) {
        printf("%s{\"path\":", v->mismatches > 1 ? "," : "");
        json_str(path);
        printf(",\"what\":\"%s\",\"bricks\":[%s],\"detail\":", what, bricks);
        json_str(detail);
        printf("}");
        return;
    }
    printf("MISMATCH %s: %s: brick %s: %s\n", path, what, bricks, detail);
}

static void fail(struct verify *v, const char *path, const char *what, int rc)
{
    if (v->error == 0) {
        v->error = rc;
        snprintf(v->errpath, sizeof(v->errpath), "%s", path);
    }
    fprintf(stderr, "replicafs verify: %s: %s: %s\n", path, what,
            strerror(-rc));
}

/* ---- grouping by value ---- */

/*
 * Group the bricks in `set` by key (equal keys: one group).  Returns the
 * mask of the majority group (more than half of `set`), or 0 if none.
 * *groups gets the number of distinct values.
 */
static uint32_t majority(uint32_t set, const uint64_t key[MAXB],
                         unsigned *groups)
{
    unsigned n = (unsigned)__builtin_popcount(set);
    uint32_t seen = 0, best = 0;

    *groups = 0;
    for (unsigned b = 0; b < MAXB; b++) {
        uint32_t g = 0;

        if (!(set & (1u << b)) || (seen & (1u << b)))
            continue;
        for (unsigned c = b; c < MAXB; c++)
            if ((set & (1u << c)) && key[c] == key[b])
                g |= 1u << c;
        seen |= g;
        (*groups)++;
        if ((unsigned)__builtin_popcount(g) * 2 > n)
            best = g;
    }
    return best;
}

/* Compare one field across `set`; report and return false on a mismatch. */
static bool same(struct verify *v, const char *path, const char *what,
                 uint32_t set, const uint64_t key[MAXB], bool octal)
{
    char detail[256];
    unsigned groups;
    uint32_t maj = majority(set, key, &groups);
    size_t off = 0;

    if (groups <= 1)
        return true;
    for (unsigned b = 0; b < MAXB && off < sizeof(detail); b++)
        if (set & (1u << b))
            off += (size_t)snprintf(detail + off, sizeof(detail) - off,
                                    octal ? "%sbrick %u: %llo"
                                          : "%sbrick %u: %llu",
                                    off ? ", " : "", b + 1,
                                    (unsigned long long)key[b]);
    report(v, path, what, maj ? set & ~maj : set, detail);
    return false;
}

/* ---- data ---- */

static int csum_chunk(struct verify *v, unsigned b, const struct rfs_id *id,
                      uint64_t first, uint64_t *size, uint32_t *count,
                      uint64_t *sums)
{
    struct checksum_req q = {.id = *id, .offset = first * VERIFY_BS,
                             .length = (uint64_t)VERIFY_CHUNK * VERIFY_BS,
                             .block_size = VERIFY_BS,
                             .flags = v->deep ? CHECKSUM_DEEP : 0};
    struct checksum_rep rep;
    void *frame = NULL;
    int rc = brick_call_sync(v->bc[b], OP_CHECKSUM, &q, &rep, &frame);

    if (rc < 0)
        return rc;
    *size = rep.size;
    *count = rep.count;
    for (uint32_t i = 0; i < rep.count; i++) {
        uint64_t x = 0;

        for (int k = 7; k >= 0; k--)
            x = x << 8 | rep.sums.data[8 * (size_t)i + (unsigned)k];
        sums[i] = x;
    }
    free(frame);
    return 0;
}

/* Block sums of a regular file on every brick of `set` (sizes agreed). */
static void verify_data(struct verify *v, const char *path, uint32_t set,
                        const struct view *views, uint64_t size)
{
    uint64_t *sums[MAXB] = {0};
    uint64_t nblocks = (size + VERIFY_BS - 1) / VERIFY_BS;
    uint64_t bad_blocks[MAXB] = {0}, first_bad[MAXB];
    uint32_t bad = 0;
    char detail[256];
    int rc;

    for (unsigned b = 0; b < MAXB; b++)
        if ((set & (1u << b)) &&
            !(sums[b] = malloc(VERIFY_CHUNK * sizeof(uint64_t)))) {
            fail(v, path, "checksum", -ENOMEM);
            goto out_free;
        }
    for (uint64_t first = 0; first < nblocks; first += VERIFY_CHUNK) {
        uint64_t key[MAXB] = {0}, bsize[MAXB] = {0};
        uint32_t count[MAXB] = {0};

        for (unsigned b = 0; b < MAXB; b++) {
            if (!(set & (1u << b)))
                continue;
            rc = csum_chunk(v, b, &views[b].a.id, first, &bsize[b], &count[b],
                            sums[b]);
            if (rc < 0) {
                fail(v, path, "checksum", rc);
                goto out_free;
            }
        }
        if (!same(v, path, "size (changed during verify?)", set, bsize, false))
            goto out_free;
        for (uint32_t i = 0; i < count[__builtin_ctz(set)]; i++) {
            unsigned groups;
            uint32_t maj;

            for (unsigned b = 0; b < MAXB; b++)
                if (set & (1u << b))
                    key[b] = sums[b][i];
            maj = majority(set, key, &groups);
            if (groups <= 1)
                continue;
            for (unsigned b = 0; b < MAXB; b++) {
                if (!(set & (1u << b)) || (maj & (1u << b)))
                    continue;
                if (bad_blocks[b]++ == 0)
                    first_bad[b] = (first + i) * VERIFY_BS;
                bad |= 1u << b;
            }
        }
    }
    for (unsigned b = 0; b < MAXB; b++) {
        if (!(bad & (1u << b)))
            continue;
        snprintf(detail, sizeof(detail),
                 "%llu block(s) of %u KiB differ from the %s, first at "
                 "offset %llu",
                 (unsigned long long)bad_blocks[b], VERIFY_BS / 1024,
                 (unsigned)__builtin_popcount(set) > 2 ? "majority"
                                                       : "other brick",
                 (unsigned long long)first_bad[b]);
        report(v, path, "data", 1u << b, detail);
    }
out_free:
    for (unsigned b = 0; b < MAXB; b++)
        free(sums[b]);
}

/* ---- one path ---- */

static int read_target(struct verify *v, unsigned b, struct view *w)
{
    struct readlink_req q = {.id = w->a.id};
    struct readlink_rep rep;
    int rc = brick_call_sync(v->bc[b], OP_READLINK, &q, &rep, NULL);

    if (rc == 0)
        memcpy(w->target, rep.target, sizeof(w->target));
    return rc;
}

static void verify_dir(struct verify *v, const char *path,
                       const struct view *views, uint32_t set);

/* Keys that group bricks by equal targets: the first equal brick's index. */
static void target_keys(const struct view *views, uint32_t set,
                        uint64_t key[MAXB])
{
    for (unsigned b = 0; b < MAXB; b++) {
        key[b] = b;
        for (unsigned c = 0; c < b && (set & (1u << b)); c++)
            if ((set & (1u << c)) &&
                strcmp(views[c].target, views[b].target) == 0) {
                key[b] = c;
                break;
            }
    }
}

static void verify_target(struct verify *v, const char *path,
                          struct view *views, uint32_t set)
{
    uint64_t key[MAXB];
    char detail[1024];
    unsigned groups;
    uint32_t maj;
    size_t off = 0;

    for (unsigned b = 0; b < MAXB; b++) {
        int rc;

        if (!(set & (1u << b)))
            continue;
        rc = read_target(v, b, &views[b]);
        if (rc < 0) {
            fail(v, path, "readlink", rc);
            return;
        }
    }
    target_keys(views, set, key);
    maj = majority(set, key, &groups);
    if (groups <= 1)
        return;
    for (unsigned b = 0; b < MAXB && off < sizeof(detail); b++)
        if (set & (1u << b))
            off += (size_t)snprintf(detail + off, sizeof(detail) - off,
                                    "%sbrick %u: '%.200s'", off ? ", " : "",
                                    b + 1, views[b].target);
    report(v, path, "symlink target", maj ? set & ~maj : set, detail);
}

/* Compare the views of one path; recurse into directories. */
static void verify_path(struct verify *v, const char *path,
                        struct view *views, uint32_t up)
{
    uint64_t key[MAXB] = {0};
    uint32_t set = 0;
    mode_t type;

    v->checked++;
    for (unsigned b = 0; b < MAXB; b++) {
        if (up & (1u << b))
            key[b] = views[b].present;
        if ((up & (1u << b)) && views[b].present)
            set |= 1u << b;
    }
    same(v, path, "presence (1: has it, 0: missing)", up, key, false);
    if (__builtin_popcount(set) < 2)
        return; /* nothing left to compare against */
    for (unsigned b = 0; b < MAXB; b++)
        key[b] = (set & (1u << b)) ? (views[b].a.mode & S_IFMT) : 0;
    if (!same(v, path, "type", set, key, true))
        return;
    type = views[__builtin_ctz(set)].a.mode & S_IFMT;
    for (unsigned b = 0; b < MAXB; b++) { /* ids: group by equality */
        key[b] = b;
        for (unsigned c = 0; c < b; c++)
            if ((set & (1u << c)) && (set & (1u << b)) &&
                views[c].a.id.hi == views[b].a.id.hi &&
                views[c].a.id.lo == views[b].a.id.lo) {
                key[b] = c;
                break;
            }
    }
    same(v, path, "id (bricks grouped by equal id)", set, key, false);
    for (unsigned b = 0; b < MAXB; b++)
        key[b] = views[b].a.mode & 07777;
    if (type != S_IFLNK)
        same(v, path, "mode", set, key, true);
    for (unsigned b = 0; b < MAXB; b++)
        key[b] = views[b].a.uid;
    same(v, path, "uid", set, key, false);
    for (unsigned b = 0; b < MAXB; b++)
        key[b] = views[b].a.gid;
    same(v, path, "gid", set, key, false);
    if (type == S_IFLNK)
        verify_target(v, path, views, set);
    if (type == S_IFREG) {
        for (unsigned b = 0; b < MAXB; b++)
            key[b] = views[b].a.size;
        if (same(v, path, "size", set, key, false))
            verify_data(v, path, set, views, views[__builtin_ctz(set)].a.size);
    }
    if (type == S_IFDIR)
        verify_dir(v, path, views, set);
}

/* ---- directories ---- */

struct ent {
    char name[PROTO_NAME_MAX + 1];
    unsigned brick;
    struct proto_attr a;
};

struct ents {
    struct ent *e; /* owned */
    size_t n, cap;
};

static int ents_add(struct ents *l, const char *name, unsigned b,
                    const struct proto_attr *a)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        struct ent *e = realloc(l->e, cap * sizeof(*e));

        if (!e)
            return -ENOMEM;
        l->e = e;
        l->cap = cap;
    }
    snprintf(l->e[l->n].name, sizeof(l->e[l->n].name), "%s", name);
    l->e[l->n].brick = b;
    l->e[l->n].a = *a;
    l->n++;
    return 0;
}

static int ent_cmp(const void *x, const void *y)
{
    const struct ent *a = x, *b = y;
    int c = strcmp(a->name, b->name);

    return c ? c : (int)a->brick - (int)b->brick;
}

static int list_dir(struct verify *v, unsigned b, const struct rfs_id *id,
                    struct ents *l)
{
    struct readdir_req q = {.id = *id, .cookie = 0,
                            .max_bytes = PROTO_READDIR_MAX};
    struct readdir_rep rep;
    char name[PROTO_NAME_MAX + 1];
    struct proto_attr a;
    void *frame;
    int rc;

    do {
        size_t off = 0;

        frame = NULL;
        rc = brick_call_sync(v->bc[b], OP_READDIR, &q, &rep, &frame);
        if (rc < 0)
            return rc;
        while ((rc = proto_dirent_next(&rep.entries, &off, name, &a)) == 1)
            if ((rc = ents_add(l, name, b, &a)) < 0)
                break;
        free(frame);
        if (rc < 0)
            return rc;
        q.cookie = rep.next_cookie;
    } while (!rep.eof);
    return 0;
}

static void verify_dir(struct verify *v, const char *path,
                       const struct view *views, uint32_t set)
{
    struct ents l = {0};
    char child[PROTO_PATH_MAX];
    int rc;

    for (unsigned b = 0; b < MAXB; b++) {
        if (!(set & (1u << b)))
            continue;
        rc = list_dir(v, b, &views[b].a.id, &l);
        if (rc < 0) {
            fail(v, path, "readdir", rc);
            goto out;
        }
    }
    if (l.n) /* l.e is NULL for an empty directory */
        qsort(l.e, l.n, sizeof(*l.e), ent_cmp);
    for (size_t i = 0; i < l.n;) {
        struct view *cv = calloc(MAXB, sizeof(*cv)); /* recursion: heap */
        size_t j = i;

        if (!cv) {
            fail(v, path, "readdir", -ENOMEM);
            goto out;
        }
        for (; j < l.n && strcmp(l.e[j].name, l.e[i].name) == 0; j++) {
            cv[l.e[j].brick].present = true;
            cv[l.e[j].brick].a = l.e[j].a;
        }
        snprintf(child, sizeof(child), "%s%s%s", path,
                 path[strlen(path) - 1] == '/' ? "" : "/", l.e[i].name);
        verify_path(v, child, cv, set);
        free(cv);
        i = j;
    }
out:
    free(l.e);
}

/* ---- start: resolve PATH on every brick ---- */

static int lookup_path(struct verify *v, unsigned b, const char *path,
                       struct view *w)
{
    struct getattr_req g = {.id = RFS_ROOT_ID};
    struct attr_rep rep;
    char buf[PROTO_PATH_MAX], *save = NULL, *tok;
    int rc = brick_call_sync(v->bc[b], OP_GETATTR, &g, &rep, NULL);

    snprintf(buf, sizeof(buf), "%s", path);
    for (tok = strtok_r(buf, "/", &save); rc == 0 && tok;
         tok = strtok_r(NULL, "/", &save)) {
        struct lookup_req q = {.parent = rep.attr.id};

        if (strlen(tok) > PROTO_NAME_MAX)
            return -ENAMETOOLONG;
        strcpy(q.name, tok);
        rc = brick_call_sync(v->bc[b], OP_LOOKUP, &q, &rep, NULL);
    }
    if (rc == 0) {
        w->present = true;
        w->a = rep.attr;
    }
    return rc == -ENOENT ? 0 : rc;
}

static void connect_all(struct verify *v, unsigned timeout_ms)
{
    for (unsigned i = 0; i < v->vol.nbricks; i++) {
        struct brick_conn_opts o = {.ping_timeout_ms = timeout_ms};

        if (brick_conn_new(&v->loop, &v->vol, i + 1, &o, &v->bc[i]) < 0) {
            v->bc[i] = NULL;
            continue;
        }
        if (brick_conn_wait_up(v->bc[i], timeout_ms) < 0) {
            fprintf(stderr, "replicafs verify: brick %u is not up (%s): not "
                            "verified\n", i + 1,
                    strerror(-brick_conn_last_error(v->bc[i])));
            brick_conn_close(v->bc[i], NULL, NULL);
            v->bc[i] = NULL;
            continue;
        }
        v->nup++;
    }
}

static int usage(FILE *f, int code)
{
    fprintf(f, "usage: replicafs verify [PATH] [--deep] [--json] "
               "[--timeout MS] --volume FILE\n"
               "Compare every replica of PATH (default: the whole volume).\n"
               "  --deep  bricks re-read all data instead of trusting stored "
               "block sums\n"
               "Exit: 0 all replicas equal, 1 mismatch found, 2 error.\n");
    return code;
}

int cmd_verify(int argc, char **argv)
{
    static const struct option opts[] = {
        {"volume", required_argument, NULL, 'v'},
        {"deep", no_argument, NULL, 'd'},
        {"json", no_argument, NULL, 'j'},
        {"timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    struct verify *v = calloc(1, sizeof(*v));
    struct view *views = calloc(MAXB, sizeof(*views));
    const char *volfile = NULL, *path = "/";
    unsigned timeout_ms = 5000;
    uint32_t up = 0;
    char root[PROTO_PATH_MAX];
    int c, rc, code = CLI_EXIT_ERROR;

    if (!v || !views) {
        fprintf(stderr, "replicafs verify: out of memory\n");
        free(v);
        free(views);
        return CLI_EXIT_ERROR;
    }
    while ((c = getopt_long(argc, argv, "v:djt:h", opts, NULL)) != -1) {
        switch (c) {
        case 'v': volfile = optarg; break;
        case 'd': v->deep = true; break;
        case 'j': v->json = true; break;
        case 't': timeout_ms = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'h': code = usage(stdout, CLI_EXIT_OK); goto out_free;
        default: code = usage(stderr, CLI_EXIT_ERROR); goto out_free;
        }
    }
    if (optind < argc)
        path = argv[optind++];
    if (!volfile || optind != argc) {
        code = usage(stderr, CLI_EXIT_ERROR);
        goto out_free;
    }
    if (cli_load_volume("verify", volfile, &v->vol) < 0)
        goto out_free;
    if (uv_loop_init(&v->loop) < 0)
        goto out_free;
    connect_all(v, timeout_ms);
    if (v->nup < 2) {
        fprintf(stderr, "replicafs verify: %u brick(s) up: nothing to "
                        "compare\n", v->nup);
        goto out_close;
    }
    snprintf(root, sizeof(root), "/%s", path + (path[0] == '/'));
    for (unsigned b = 0; b < v->vol.nbricks; b++) {
        if (!v->bc[b])
            continue;
        up |= 1u << b;
        rc = lookup_path(v, b, path, &views[b]);
        if (rc < 0) {
            fail(v, root, "lookup", rc);
            goto out_close;
        }
    }
    {
        bool any = false;

        for (unsigned b = 0; b < MAXB; b++)
            any |= views[b].present;
        if (!any) {
            fail(v, root, "lookup", -ENOENT);
            goto out_close;
        }
    }
    if (v->json)
        printf("{\"volume\":\"%s\",\"path\":", v->vol.name);
    if (v->json) {
        json_str(root);
        printf(",\"deep\":%s,\"mismatches\":[", v->deep ? "true" : "false");
    }
    verify_path(v, root, views, up);
    if (v->json) {
        printf("],\"checked\":%llu,\"bricks_up\":%u,\"error\":",
               (unsigned long long)v->checked, v->nup);
        if (v->error)
            json_str(strerror(-v->error));
        else
            printf("null");
        printf("}\n");
    } else {
        printf("verified %llu path(s) on %u brick(s)%s: %llu mismatch(es)\n",
               (unsigned long long)v->checked, v->nup,
               v->deep ? " (deep)" : "", (unsigned long long)v->mismatches);
    }
    code = v->error ? CLI_EXIT_ERROR
                    : v->mismatches ? CLI_EXIT_DEGRADED : CLI_EXIT_OK;
    if (v->nup < v->vol.nbricks && code == CLI_EXIT_OK)
        code = CLI_EXIT_ERROR; /* not every replica was compared */
out_close:
    for (unsigned b = 0; b < v->vol.nbricks; b++)
        if (v->bc[b])
            brick_conn_close(v->bc[b], NULL, NULL);
    uv_run(&v->loop, UV_RUN_DEFAULT);
    uv_loop_close(&v->loop);
out_free:
    free(views);
    free(v);
    return code;
}
