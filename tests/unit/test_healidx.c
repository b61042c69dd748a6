/* Heal index: add/del through the io_uring store on a real loop, exact
 * count, idempotence, and paged listing with cookies. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/id.h"
#include "daemon/healidx.h"
#include "daemon/stamp.h"
#include "daemon/store.h"

static char dir[256];
static uv_loop_t loop;
static struct store st;
static struct healidx h;

struct done {
    struct healidx_op op;
    int calls;
    int status;
};

static void done_cb(struct healidx_op *op, int status)
{
    struct done *d = (struct done *)op;

    d->calls++;
    d->status = status;
}

static void setup(void)
{
    char err[256];

    snprintf(dir, sizeof(dir), "/tmp/rfs-test-heal-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    cr_assert_eq(stamp_init_dir(dir, "v", 1, NULL, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(uv_loop_init(&loop), 0);
    cr_assert_eq(store_open(&st, &loop, dir, 64), 0);
    cr_assert_eq(healidx_init(&h, &st), 0);
}

static void teardown(void)
{
    char cmd[300];

    store_close(&st);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

/* Run the loop until the op completed (the store keeps handles active). */
static void run_until(struct done *d)
{
    for (int i = 0; i < 1000 && d->calls == 0; i++)
        uv_run(&loop, UV_RUN_ONCE);
    cr_assert_eq(d->calls, 1, "callback exactly once");
    /* let fire-and-forget closes complete so store_close sees inflight 0 */
    for (int i = 0; i < 100 && st.inflight; i++)
        uv_run(&loop, UV_RUN_ONCE);
}

/* Give id an object: an ids/ entry (a plain file will do), so that the
 * index keeps it (healidx.c, invariant 4). */
static void make_obj(const struct rfs_id *id, const char *where)
{
    char hex[33], p[400];
    FILE *f;

    rfs_id_to_hex(id, hex);
    if (!strcmp(where, "ids"))
        snprintf(p, sizeof(p), "%s/.replicafs/ids/%.2s/%s", dir, hex, hex);
    else
        snprintf(p, sizeof(p), "%s/.replicafs/%s/%s", dir, where, hex);
    f = fopen(p, "w");
    cr_assert_not_null(f, "%s", p);
    fclose(f);
}

/* Index id without giving it an object. */
static void add_bare(const struct rfs_id *id)
{
    struct done d = {0};

    healidx_add(&h, &d.op, id, done_cb);
    cr_assert_eq(d.calls, 0, "never called from inside the prep");
    run_until(&d);
    cr_assert_eq(d.status, 0);
}

static void add(const struct rfs_id *id)
{
    struct done d = {0};

    make_obj(id, "ids");

    healidx_add(&h, &d.op, id, done_cb);
    cr_assert_eq(d.calls, 0, "never called from inside the prep");
    run_until(&d);
    cr_assert_eq(d.status, 0);
}

static void del(const struct rfs_id *id)
{
    struct done d = {0};

    healidx_del(&h, &d.op, id, done_cb);
    run_until(&d);
    cr_assert_eq(d.status, 0);
}

static bool present(const struct rfs_id *id)
{
    char hex[33], p[400];

    rfs_id_to_hex(id, hex);
    snprintf(p, sizeof(p), "%s/.replicafs/heal/%s", dir, hex);
    return access(p, F_OK) == 0;
}

TestSuite(healidx, .init = setup, .fini = teardown);

Test(healidx, add_then_remove_leaves_index_empty)
{
    struct rfs_id id = {0x1122, 0x3344};

    add(&id);
    cr_assert(present(&id));
    cr_assert_eq(h.count, 1);
    del(&id);
    cr_assert_not(present(&id));
    cr_assert_eq(h.count, 0);
}

static int stat_entry(const char *name, struct stat *sb)
{
    char p[400];

    snprintf(p, sizeof(p), "%s/.replicafs/%s", dir, name);
    return stat(p, sb);
}

/* An entry costs no inode: it is a link to heal.base (performance.md,
 * finding 3), and the base's link count follows the entries. */
Test(healidx, entry_is_a_link_to_the_base)
{
    struct rfs_id a = {0x77, 1}, b = {0x77, 2};
    struct stat base, ea, eb;
    char hex[33], name[64];

    add(&a);
    add(&b);
    cr_assert_eq(stat_entry(HEALIDX_BASE, &base), 0);
    cr_assert_eq(base.st_nlink, 3, "base + 2 entries, got %lu",
                 (unsigned long)base.st_nlink);
    rfs_id_to_hex(&a, hex);
    snprintf(name, sizeof(name), "heal/%s", hex);
    cr_assert_eq(stat_entry(name, &ea), 0);
    rfs_id_to_hex(&b, hex);
    snprintf(name, sizeof(name), "heal/%s", hex);
    cr_assert_eq(stat_entry(name, &eb), 0);
    cr_assert_eq(ea.st_ino, base.st_ino);
    cr_assert_eq(eb.st_ino, base.st_ino);
    del(&a);
    cr_assert_eq(stat_entry(HEALIDX_BASE, &base), 0);
    cr_assert_eq(base.st_nlink, 2);
    cr_assert_eq(h.count, 1);
}

/* Without its base (removed by hand, or full), an entry is a file of its
 * own: the index still works, and the count stays exact. */
Test(healidx, entry_without_base_is_a_file)
{
    struct rfs_id a = {0x78, 1};
    char p[400];

    snprintf(p, sizeof(p), "%s/.replicafs/%s", dir, HEALIDX_BASE);
    cr_assert_eq(unlink(p), 0);
    add(&a);
    cr_assert(present(&a));
    cr_assert_eq(h.count, 1);
    add(&a);
    cr_assert_eq(h.count, 1);
    del(&a);
    cr_assert_not(present(&a));
    cr_assert_eq(h.count, 0);
}

Test(healidx, add_and_del_are_idempotent_and_count_stays_exact)
{
    struct rfs_id id = {5, 6};

    add(&id);
    add(&id);
    cr_assert_eq(h.count, 1);
    del(&id);
    del(&id);
    cr_assert_eq(h.count, 0);
}

Test(healidx, init_counts_existing_entries)
{
    struct rfs_id a = {1, 1}, b = {2, 2};
    struct healidx h2;

    add(&a);
    add(&b);
    cr_assert_eq(healidx_init(&h2, &st), 0);
    cr_assert_eq(h2.count, 2);
}

Test(healidx, list_pages_through_everything_once)
{
    uint8_t out[16 * 7];
    uint64_t cookie = 0, next;
    uint32_t count, total = 0;
    bool eof = false, seen[40] = {false};

    for (uint64_t i = 0; i < 40; i++) {
        struct rfs_id id = {0xabc, 100 + i};

        add(&id);
    }
    /* a foreign file in heal/ is skipped */
    {
        char p[400];
        FILE *f;

        snprintf(p, sizeof(p), "%s/.replicafs/heal/not-an-id", dir);
        f = fopen(p, "w");
        cr_assert_not_null(f);
        fclose(f);
    }
    for (int page = 0; !eof && page < 100; page++) {
        cr_assert_eq(healidx_list(st.heal_fd, cookie, 7, out, &count, &next,
                                  &eof), 0);
        cr_assert_leq(count, 7);
        for (uint32_t k = 0; k < count; k++) {
            struct rfs_id id;

            proto_id_get(out + 16 * k, &id);
            cr_assert_eq(id.hi, 0xabc);
            cr_assert(id.lo >= 100 && id.lo < 140);
            cr_assert_not(seen[id.lo - 100], "listed twice");
            seen[id.lo - 100] = true;
        }
        total += count;
        cookie = next;
    }
    cr_assert(eof);
    cr_assert_eq(total, 40);
}

Test(healidx, entries_of_ids_that_resolve_nowhere_are_dropped)
{
    struct rfs_id live = {7, 7}, dead = {8, 8}, orphan = {9, 9};
    struct rfs_id dead2 = {10, 10};
    uint8_t out[16 * 8];
    uint64_t next;
    uint32_t count;
    bool eof, seen_live = false, seen_orphan = false, seen_root = false;
    struct healidx h2;

    add(&live);
    add_bare(&dead);
    add_bare(&orphan);
    make_obj(&orphan, "orphans");
    add_bare(&RFS_ROOT_ID); /* the root has no ids/ entry: kept */
    cr_assert_eq(healidx_list(st.heal_fd, 0, 8, out, &count, &next, &eof), 0);
    cr_assert(eof);
    for (uint32_t k = 0; k < count; k++) {
        struct rfs_id id;

        proto_id_get(out + 16 * k, &id);
        cr_assert_not(rfs_id_eq(&id, &dead), "a dead entry is not listed");
        seen_live |= rfs_id_eq(&id, &live);
        seen_orphan |= rfs_id_eq(&id, &orphan);
        seen_root |= rfs_id_eq(&id, &RFS_ROOT_ID);
    }
    cr_assert(seen_live && seen_orphan && seen_root);
    cr_assert_eq(count, 3);
    cr_assert_not(present(&dead), "and it is unlinked");
    /* at start, too */
    add_bare(&dead2);
    cr_assert_eq(healidx_init(&h2, &st), 0);
    cr_assert_eq(h2.count, 3);
    cr_assert_not(present(&dead2));
}

/* The same through io_uring (replicafsd --ring-metadata): link, fallback,
 * exact count. */
static void setup_ring(void)
{
    setup();
    st.inline_meta = false;
}

TestSuite(healidx_ring, .init = setup_ring, .fini = teardown);

Test(healidx_ring, link_fallback_and_count)
{
    struct rfs_id a = {0x79, 1}, b = {0x79, 2};
    struct stat base;
    char p[400];

    add(&a);
    add(&a);
    cr_assert_eq(stat_entry(HEALIDX_BASE, &base), 0);
    cr_assert_eq(base.st_nlink, 2);
    snprintf(p, sizeof(p), "%s/.replicafs/%s", dir, HEALIDX_BASE);
    cr_assert_eq(unlink(p), 0);
    add(&b);
    cr_assert(present(&a) && present(&b));
    cr_assert_eq(h.count, 2);
    del(&a);
    del(&b);
    cr_assert_eq(h.count, 0);
}
