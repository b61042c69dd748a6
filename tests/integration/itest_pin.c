/*
 * Open objects stay usable after their last name goes (POSIX unlink
 * semantics), per brick connection: OPEN pins the object, UNLINK or a
 * RENAME over it moves its ids/ link to .replicafs/orphans/, and the last
 * RELEASE (or the connection closing) removes it.  docs/brick-layout.md,
 * "Open objects without a name".
 *
 * Before the fix, READ/WRITE through the handle after the unlink gave
 * ENOENT (the ids/ link was removed and the cached fd forgotten).
 *
 * Repro: build-dir/tests/itest_pin --jobs 1 --verbose
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/id.h"
#include "itest_util.h"

static struct itest_vol *V;
static struct brick_conn *BC;
static const struct rfs_id ROOT = {0, 1};

static void setup(void)
{
    V = itest_vol_new("itpin", 1);
    itest_start_all(V);
    BC = itest_connect(V, 1);
}

static void teardown(void)
{
    itest_vol_free(V);
    V = NULL;
}

TestSuite(pin, .init = setup, .fini = teardown, .timeout = 60);

static const char *ids_rel(const struct rfs_id *id)
{
    static char out[128];
    char hex[RFS_ID_HEX_LEN + 1];

    rfs_id_to_hex(id, hex);
    snprintf(out, sizeof(out), ".replicafs/ids/%.2s/%s", hex, hex);
    return out;
}

static const char *orphan_rel(const struct rfs_id *id)
{
    static char out[128];
    char hex[RFS_ID_HEX_LEN + 1];

    rfs_id_to_hex(id, hex);
    snprintf(out, sizeof(out), ".replicafs/orphans/%s", hex);
    return out;
}

static bool exists(const char *rel)
{
    struct stat st;

    return lstat(itest_brick_path(V, 1, rel), &st) == 0;
}

static int do_open(struct brick_conn *bc, const struct rfs_id *id)
{
    struct open_req q = {.id = *id, .flags = O_RDWR};
    struct attr_rep rep;

    return brick_call_sync(bc, OP_OPEN, &q, &rep, NULL);
}

static int do_release(struct brick_conn *bc, const struct rfs_id *id)
{
    struct release_req q = {.id = *id};

    return brick_call_sync(bc, OP_RELEASE, &q, NULL, NULL);
}

/* Wait (running bc's loop) until rel is gone from the brick: RELEASE and a
 * connection close are answered before the orphan link is unlinked. */
static bool gone_within(const char *rel, unsigned ms)
{
    uint64_t end = itest_now_ms() + ms;

    while (exists(rel) && itest_now_ms() < end) {
        uv_run(&V->loop, UV_RUN_NOWAIT);
        usleep(10000);
    }
    return !exists(rel);
}

static void make_file(const char *name, struct rfs_id *id, const char *text)
{
    IT_OK(it_create(BC, &ROOT, name, CREATE_EXCL, id, NULL));
    IT_OK(it_write(BC, id, 0, text, (uint32_t)strlen(text)));
}

Test(pin, unlinked_open_file_stays_readable_and_writable_until_release)
{
    struct rfs_id id;
    struct proto_attr a;
    char buf[64];
    uint32_t got = 0;

    make_file("f", &id, "hello");
    IT_OK(do_open(BC, &id));
    IT_OK(it_unlink(BC, &ROOT, "f"));
    IT_RC(it_lookup(BC, &ROOT, "f", NULL), -ENOENT);
    cr_assert(!exists("f"));
    cr_assert(!exists(ids_rel(&id)), "ids/ link should have moved");
    cr_assert(exists(orphan_rel(&id)), "orphan link missing");

    IT_OK(it_read(BC, &id, 0, sizeof(buf), buf, &got));
    cr_assert_eq(got, 5);
    cr_assert_eq(memcmp(buf, "hello", 5), 0);
    IT_OK(it_write(BC, &id, 5, " world", 6));
    IT_OK(it_read(BC, &id, 0, sizeof(buf), buf, &got));
    cr_assert_eq(got, 11);
    cr_assert_eq(memcmp(buf, "hello world", 11), 0);
    IT_OK(it_getattr(BC, &id, &a));
    cr_assert_eq(a.nlink, 0, "an unlinked file shows nlink 0, got %u", a.nlink);
    cr_assert_eq(a.size, 11);

    IT_OK(do_release(BC, &id));
    cr_assert(gone_within(orphan_rel(&id), 2000), "orphan outlived RELEASE");
    IT_RC(it_read(BC, &id, 0, sizeof(buf), buf, &got), -ENOENT);
    IT_RC(it_getattr(BC, &id, &a), -ENOENT);
}

/* name, pinned once by `how`, loses its name: it becomes an orphan that
 * reads its `size` bytes until its one RELEASE, and then goes. */
static void orphan_lives_until_release(const char *name,
                                       const struct rfs_id *id,
                                       uint32_t size, const char *how)
{
    char buf[64];
    uint32_t got = 0;

    IT_OK(it_unlink(BC, &ROOT, name));
    cr_assert(exists(orphan_rel(id)), "%s did not pin the file", how);
    IT_OK(it_read(BC, id, 0, sizeof(buf), buf, &got));
    cr_assert_eq(got, size);
    IT_OK(do_release(BC, id));
    cr_assert(gone_within(orphan_rel(id), 2000), "orphan outlived RELEASE");
}

/* OPENX (protocol 2): OPEN's pin and attributes, and the markers an
 * all-zero XATTROP reads, in one reply; the zero read changes nothing. */
Test(pin, openx_pins_and_answers_with_the_markers)
{
    struct rfs_id id;
    struct xattrop_req mark = {.dirty = 2, .npending = 3,
                               .pending = {0, 5, 0}};
    struct xattrop_rep xr;
    struct open_req q = {.flags = O_RDONLY};
    struct openx_rep rep;

    make_file("x", &id, "openx");
    mark.id = id;
    IT_OK(brick_call_sync(BC, OP_XATTROP, &mark, &xr, NULL));
    q.id = id;
    IT_OK(brick_call_sync(BC, OP_OPENX, &q, &rep, NULL));
    cr_assert(rfs_id_eq(&rep.attr.id, &id));
    cr_assert_eq(rep.attr.size, 5);
    cr_assert_eq(rep.dirty, 2);
    cr_assert_eq(rep.npending, 3);
    cr_assert_eq(rep.pending[1], 5);
    cr_assert_eq(rep.pending[0] + rep.pending[2], 0);
    cr_assert_eq(rep.suspect, xr.suspect);
    /* Pinned as by OPEN. */
    orphan_lives_until_release("x", &id, 5, "OPENX");
    /* Not there: ENOENT, and nothing pinned. */
    IT_RC(brick_call_sync(BC, OP_OPENX, &q, &rep, NULL), -ENOENT);
}

/* CREATE_OPEN pins like an OPEN: one RELEASE, no OPEN sent. */
Test(pin, create_open_pins_the_new_file)
{
    struct rfs_id id, plain;
    char buf[16];
    uint32_t got = 0;

    IT_OK(it_create(BC, &ROOT, "c", CREATE_EXCL | CREATE_OPEN, &id, NULL));
    IT_OK(it_write(BC, &id, 0, "made", 4));
    orphan_lives_until_release("c", &id, 4, "CREATE_OPEN");
    /* Without the flag, CREATE pins nothing. */
    IT_OK(it_create(BC, &ROOT, "p", CREATE_EXCL, &plain, NULL));
    IT_OK(it_unlink(BC, &ROOT, "p"));
    cr_assert(!exists(orphan_rel(&plain)), "plain CREATE pinned the file");
    IT_RC(it_read(BC, &plain, 0, sizeof(buf), buf, &got), -ENOENT);
}

Test(pin, two_opens_need_two_releases)
{
    struct rfs_id id;
    char buf[16];
    uint32_t got = 0;

    make_file("g", &id, "abc");
    IT_OK(do_open(BC, &id));
    IT_OK(do_open(BC, &id));
    IT_OK(it_unlink(BC, &ROOT, "g"));
    IT_OK(do_release(BC, &id));
    IT_OK(it_read(BC, &id, 0, sizeof(buf), buf, &got));
    cr_assert_eq(got, 3);
    cr_assert(exists(orphan_rel(&id)));
    IT_OK(do_release(BC, &id));
    cr_assert(gone_within(orphan_rel(&id), 2000));
    /* a stray RELEASE is harmless */
    IT_OK(do_release(BC, &id));
}

Test(pin, connection_close_without_release_drops_the_orphan)
{
    struct brick_conn *b2 = itest_connect(V, 1);
    struct rfs_id id;
    char buf[16];
    uint32_t got = 0;

    make_file("h", &id, "xyz");
    IT_OK(do_open(b2, &id));
    IT_OK(it_unlink(BC, &ROOT, "h")); /* another client removes the name */
    IT_OK(it_read(b2, &id, 0, sizeof(buf), buf, &got));
    cr_assert_eq(got, 3);
    cr_assert(exists(orphan_rel(&id)));
    itest_disconnect(V, b2);
    cr_assert(gone_within(orphan_rel(&id), 3000), "orphan outlived its conn");
    IT_RC(it_getattr(BC, &id, NULL), -ENOENT);
}

Test(pin, rename_over_an_open_file_keeps_it)
{
    struct rfs_id victim, src;
    struct rename_req q = {.parent = ROOT, .newparent = ROOT};
    char buf[16];
    uint32_t got = 0;

    make_file("victim", &victim, "old");
    make_file("src", &src, "new");
    IT_OK(do_open(BC, &victim));
    strcpy(q.name, "src");
    strcpy(q.newname, "victim");
    IT_OK(brick_call_sync(BC, OP_RENAME, &q, NULL, NULL));
    IT_OK(it_read(BC, &victim, 0, sizeof(buf), buf, &got));
    cr_assert_eq(got, 3);
    cr_assert_eq(memcmp(buf, "old", 3), 0);
    cr_assert(exists(orphan_rel(&victim)));
    cr_assert(exists(ids_rel(&src)));
    IT_OK(do_release(BC, &victim));
    cr_assert(gone_within(orphan_rel(&victim), 2000));
}

Test(pin, unpinned_unlink_still_removes_at_once_and_hard_links_count)
{
    struct rfs_id id;
    struct link_req l = {.newparent = ROOT};
    struct attr_rep rep;

    make_file("k", &id, "1");
    l.id = id;
    strcpy(l.newname, "k2");
    IT_OK(brick_call_sync(BC, OP_LINK, &l, &rep, NULL));
    IT_OK(do_open(BC, &id));
    IT_OK(it_unlink(BC, &ROOT, "k")); /* one name left: nothing moves */
    cr_assert(exists(ids_rel(&id)));
    cr_assert(!exists(orphan_rel(&id)));
    IT_OK(do_release(BC, &id));
    IT_OK(it_unlink(BC, &ROOT, "k2")); /* unpinned: gone at once */
    cr_assert(!exists(ids_rel(&id)));
    cr_assert(!exists(orphan_rel(&id)));
    IT_RC(it_getattr(BC, &id, NULL), -ENOENT);
}

Test(pin, restart_purges_orphans)
{
    struct rfs_id id;

    make_file("m", &id, "zz");
    IT_OK(do_open(BC, &id));
    IT_OK(it_unlink(BC, &ROOT, "m"));
    cr_assert(exists(orphan_rel(&id)));
    itest_brick_kill9(V, 1); /* no RELEASE, no clean close */
    cr_assert(exists(orphan_rel(&id)));
    itest_brick_start(V, 1);
    cr_assert(!exists(orphan_rel(&id)), "startup must purge orphans/");
    cr_assert(exists(".replicafs/orphans"));
}
