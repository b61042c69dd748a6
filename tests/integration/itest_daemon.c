/*
 * Every operation of protocol v1 against a real replicafsd over TCP, through
 * brick_conn; after each change the brick directory is checked directly
 * (stat, read, readlink, getxattr), because the brick must stay a plain tree
 * an admin can copy with cp.
 *
 * One daemon per test (fresh temp dir, free 127.0.0.1 port); the fixture
 * cleans up even when a test fails.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "common/id.h"
#include "itest_util.h"

static struct itest_vol *V;
static struct brick_conn *BC;
static const struct rfs_id ROOT = {0, 1};

static void setup(void)
{
    V = itest_vol_new("itest", 1);
    itest_start_all(V);
    BC = itest_connect(V, 1);
}

static void teardown(void)
{
    itest_vol_free(V);
    V = NULL;
}

TestSuite(daemon, .init = setup, .fini = teardown, .timeout = 60);

/* Path of rel in the brick dir. */
static const char *bp(const char *rel)
{
    return itest_brick_path(V, 1, rel);
}

static void expect_id_xattr(const char *rel, const struct rfs_id *id)
{
    uint8_t raw[16];
    struct rfs_id got = {0, 0};
    ssize_t n = lgetxattr(bp(rel), "trusted.rfs.id", raw, sizeof(raw));

    cr_assert_eq(n, 16, "%s: trusted.rfs.id: %zd (%s)", rel, n,
                 strerror(errno));
    for (int i = 7; i >= 0; i--) {
        got.hi = got.hi << 8 | raw[i];
        got.lo = got.lo << 8 | raw[8 + i];
    }
    cr_assert(rfs_id_eq(&got, id), "%s: id on disk differs", rel);
}

static uint64_t now_s(void)
{
    return (uint64_t)time(NULL);
}

/* ---- connection ---- */

Test(daemon, ping_echoes_stamp_and_rtt_is_measured)
{
    struct ping_req q = {.stamp = 0x0123456789abcdefull};
    struct ping_rep r;
    uint64_t hi, lo;

    IT_OK(brick_call_sync(BC, OP_PING, &q, &r, NULL));
    cr_assert_eq(r.stamp, q.stamp);
    cr_assert_eq(brick_conn_version(BC), PROTO_VERSION_MAX);
    brick_conn_uuid(BC, &hi, &lo);
    cr_assert(hi || lo, "brick uuid is zero");
}

/* ---- namespace ---- */

Test(daemon, root_getattr_is_a_directory_with_the_root_id)
{
    struct proto_attr a;

    IT_OK(it_getattr(BC, &ROOT, &a));
    cr_assert(S_ISDIR(a.mode));
    cr_assert(rfs_id_is_root(&a.id));
}

Test(daemon, unknown_id_is_enoent)
{
    struct rfs_id id;
    struct proto_attr a;
    int rc;

    rfs_id_random(&id);
    rc = it_getattr(BC, &id, &a);
    cr_assert(rc == -ENOENT || rc == -ESTALE, "getattr of unknown id: %s",
              strerror(-rc));
}

Test(daemon, mkdir_then_lookup_and_plain_directory_on_disk)
{
    struct rfs_id d, sub;
    struct proto_attr a;
    struct stat st;

    IT_OK(it_mkdir(BC, &ROOT, "d", &d));
    IT_OK(it_lookup(BC, &ROOT, "d", &a));
    cr_assert(rfs_id_eq(&a.id, &d));
    cr_assert(S_ISDIR(a.mode));
    cr_assert_eq(a.mode & 07777, 0755);
    IT_RC(it_mkdir(BC, &ROOT, "d", NULL), -EEXIST);
    IT_OK(it_mkdir(BC, &d, "sub", &sub));
    IT_OK(it_lookup(BC, &d, "sub", &a));
    cr_assert(rfs_id_eq(&a.id, &sub));
    IT_RC(it_lookup(BC, &d, "nope", &a), -ENOENT);
    cr_assert_eq(stat(bp("d/sub"), &st), 0);
    cr_assert(S_ISDIR(st.st_mode));
    expect_id_xattr("d", &d);
    expect_id_xattr("d/sub", &sub);
    /* mkdir under a missing parent */
    {
        struct rfs_id ghost;

        rfs_id_random(&ghost);
        cr_assert_neq(it_mkdir(BC, &ghost, "x", NULL), 0);
    }
}

Test(daemon, create_excl_and_non_excl)
{
    struct create_rep r1, r2;
    struct rfs_id id;
    struct stat st;

    IT_OK(it_create(BC, &ROOT, "f", CREATE_EXCL, &id, &r1));
    cr_assert_eq(r1.created, 1);
    cr_assert(S_ISREG(r1.attr.mode));
    cr_assert_eq(r1.attr.mode & 07777, 0644);
    cr_assert_eq(r1.attr.size, 0);
    cr_assert_eq(r1.attr.nlink, 1, "nlink %u: the ids/ link must not show",
                 r1.attr.nlink);
    IT_RC(it_create(BC, &ROOT, "f", CREATE_EXCL, NULL, NULL), -EEXIST);
    /* Without EXCL the existing file (and its id) comes back. */
    IT_OK(it_create(BC, &ROOT, "f", 0, NULL, &r2));
    cr_assert_eq(r2.created, 0);
    cr_assert(rfs_id_eq(&r2.attr.id, &id));
    /* Create over a directory name is refused either way. */
    IT_OK(it_mkdir(BC, &ROOT, "dir", NULL));
    cr_assert_neq(it_create(BC, &ROOT, "dir", 0, NULL, NULL), 0);
    cr_assert_eq(stat(bp("f"), &st), 0);
    cr_assert(S_ISREG(st.st_mode));
    cr_assert_eq(st.st_size, 0);
    cr_assert_eq(st.st_nlink, 2, "brick file: name + ids/ link");
    expect_id_xattr("f", &id);
}

Test(daemon, mknod_fifo_and_refused_device)
{
    struct mknod_req m = {.parent = ROOT, .name = "fifo", .mode = S_IFIFO | 0600,
                          .uid = getuid(), .gid = getgid()};
    struct attr_rep r;
    struct stat st;

    rfs_id_random(&m.id);
    IT_OK(brick_call_sync(BC, OP_MKNOD, &m, &r, NULL));
    cr_assert(S_ISFIFO(r.attr.mode));
    cr_assert_eq(lstat(bp("fifo"), &st), 0);
    cr_assert(S_ISFIFO(st.st_mode));
    cr_assert_eq(st.st_mode & 07777, 0600);

    snprintf(m.name, sizeof(m.name), "chr");
    m.mode = S_IFCHR | 0600;
    m.rdev = makedev(1, 3);
    rfs_id_random(&m.id);
    IT_RC(brick_call_sync(BC, OP_MKNOD, &m, &r, NULL), -EPERM);
    cr_assert_neq(lstat(bp("chr"), &st), 0, "a device node was made");
}

Test(daemon, symlink_and_readlink)
{
    struct symlink_req s = {.parent = ROOT, .name = "l",
                            .target = "../outside/of/brick",
                            .uid = getuid(), .gid = getgid()};
    struct readlink_req q;
    struct readlink_rep r;
    struct attr_rep ar;
    struct proto_attr a;
    char disk[256];
    ssize_t n;

    rfs_id_random(&s.id);
    IT_OK(brick_call_sync(BC, OP_SYMLINK, &s, &ar, NULL));
    cr_assert(S_ISLNK(ar.attr.mode));
    IT_OK(it_lookup(BC, &ROOT, "l", &a));
    cr_assert(S_ISLNK(a.mode));
    cr_assert(rfs_id_eq(&a.id, &s.id));
    q.id = s.id;
    IT_OK(brick_call_sync(BC, OP_READLINK, &q, &r, NULL));
    cr_assert_str_eq(r.target, "../outside/of/brick");
    n = readlink(bp("l"), disk, sizeof(disk) - 1);
    cr_assert_gt(n, 0);
    disk[n] = '\0';
    cr_assert_str_eq(disk, "../outside/of/brick");
    /* readlink of a regular file */
    {
        struct rfs_id f;

        IT_OK(it_create(BC, &ROOT, "reg", 0, &f, NULL));
        q.id = f;
        IT_RC(brick_call_sync(BC, OP_READLINK, &q, &r, NULL), -EINVAL);
    }
}

Test(daemon, link_adds_a_name_to_the_same_object)
{
    struct rfs_id f, d;
    struct link_req l = {.newname = "g"};
    struct attr_rep r;
    struct proto_attr a;
    struct stat s1, s2;

    IT_OK(it_create(BC, &ROOT, "f", CREATE_EXCL, &f, NULL));
    IT_OK(it_mkdir(BC, &ROOT, "d", &d));
    l.id = f;
    l.newparent = d;
    IT_OK(brick_call_sync(BC, OP_LINK, &l, &r, NULL));
    cr_assert(rfs_id_eq(&r.attr.id, &f));
    cr_assert_eq(r.attr.nlink, 2);
    IT_OK(it_lookup(BC, &d, "g", &a));
    cr_assert(rfs_id_eq(&a.id, &f));
    cr_assert_eq(stat(bp("f"), &s1), 0);
    cr_assert_eq(stat(bp("d/g"), &s2), 0);
    cr_assert_eq(s1.st_ino, s2.st_ino);
    cr_assert_eq(s1.st_nlink, 3);
    /* link onto an existing name; link of a directory */
    IT_RC(brick_call_sync(BC, OP_LINK, &l, &r, NULL), -EEXIST);
    l.id = d;
    snprintf(l.newname, sizeof(l.newname), "dlink");
    l.newparent = ROOT;
    IT_RC(brick_call_sync(BC, OP_LINK, &l, &r, NULL), -EPERM);
}

Test(daemon, unlink_removes_name_and_object)
{
    struct rfs_id f;
    struct proto_attr a;
    struct stat st;

    IT_OK(it_create(BC, &ROOT, "f", CREATE_EXCL, &f, NULL));
    IT_OK(it_unlink(BC, &ROOT, "f"));
    IT_RC(it_lookup(BC, &ROOT, "f", &a), -ENOENT);
    cr_assert_neq(stat(bp("f"), &st), 0);
    IT_RC(it_unlink(BC, &ROOT, "f"), -ENOENT);
    {
        int rc = it_getattr(BC, &f, &a);

        cr_assert(rc == -ENOENT || rc == -ESTALE, "getattr of unlinked: %d",
                  rc);
    }
    /* unlink of a directory */
    IT_OK(it_mkdir(BC, &ROOT, "d", NULL));
    IT_RC(it_unlink(BC, &ROOT, "d"), -EISDIR);
}

Test(daemon, rmdir_refuses_non_empty_and_files)
{
    struct rfs_id d;
    struct unlink_req u = {.parent = ROOT, .name = "d"};
    struct stat st;

    IT_OK(it_mkdir(BC, &ROOT, "d", &d));
    IT_OK(it_create(BC, &d, "x", 0, NULL, NULL));
    IT_RC(brick_call_sync(BC, OP_RMDIR, &u, NULL, NULL), -ENOTEMPTY);
    IT_OK(it_unlink(BC, &d, "x"));
    IT_OK(brick_call_sync(BC, OP_RMDIR, &u, NULL, NULL));
    cr_assert_neq(stat(bp("d"), &st), 0);
    IT_RC(brick_call_sync(BC, OP_RMDIR, &u, NULL, NULL), -ENOENT);
    IT_OK(it_create(BC, &ROOT, "file", 0, NULL, NULL));
    snprintf(u.name, sizeof(u.name), "file");
    IT_RC(brick_call_sync(BC, OP_RMDIR, &u, NULL, NULL), -ENOTDIR);
}

static int do_rename(const struct rfs_id *p, const char *n,
                     const struct rfs_id *np, const char *nn, uint32_t flags)
{
    struct rename_req r = {.parent = *p, .newparent = *np, .flags = flags};

    snprintf(r.name, sizeof(r.name), "%s", n);
    snprintf(r.newname, sizeof(r.newname), "%s", nn);
    return brick_call_sync(BC, OP_RENAME, &r, NULL, NULL);
}

Test(daemon, rename_plain_over_existing_noreplace_and_across_dirs)
{
    struct rfs_id a, c, d, dir;
    struct proto_attr at;
    struct stat st;
    char buf[8];
    int fd;

    IT_OK(it_create(BC, &ROOT, "a", CREATE_EXCL, &a, NULL));
    IT_OK(it_write(BC, &a, 0, "AAAA", 4));
    IT_OK(do_rename(&ROOT, "a", &ROOT, "b", 0));
    IT_RC(it_lookup(BC, &ROOT, "a", &at), -ENOENT);
    IT_OK(it_lookup(BC, &ROOT, "b", &at));
    cr_assert(rfs_id_eq(&at.id, &a));
    cr_assert_neq(stat(bp("a"), &st), 0);
    cr_assert_eq(stat(bp("b"), &st), 0);

    /* Over an existing file: c's object goes away, b's takes the name. */
    IT_OK(it_create(BC, &ROOT, "c", CREATE_EXCL, &c, NULL));
    cr_assert_eq(do_rename(&ROOT, "b", &ROOT, "c", RENAME_FLAG_NOREPLACE),
                 -EEXIST);
    IT_OK(it_lookup(BC, &ROOT, "b", &at)); /* NOREPLACE did not move it */
    IT_OK(do_rename(&ROOT, "b", &ROOT, "c", 0));
    IT_OK(it_lookup(BC, &ROOT, "c", &at));
    cr_assert(rfs_id_eq(&at.id, &a));
    {
        int rc = it_getattr(BC, &c, &at);

        cr_assert(rc == -ENOENT || rc == -ESTALE,
                  "replaced object still reachable: %d", rc);
    }
    fd = open(bp("c"), O_RDONLY);
    cr_assert(fd >= 0);
    cr_assert_eq(read(fd, buf, sizeof(buf)), 4);
    close(fd);
    cr_assert(memcmp(buf, "AAAA", 4) == 0);

    /* Across directories, then a directory itself. */
    IT_OK(it_mkdir(BC, &ROOT, "dir", &dir));
    IT_OK(do_rename(&ROOT, "c", &dir, "moved", 0));
    cr_assert_eq(stat(bp("dir/moved"), &st), 0);
    IT_OK(it_mkdir(BC, &ROOT, "d2", &d));
    IT_OK(do_rename(&ROOT, "dir", &d, "dir", 0));
    cr_assert_eq(stat(bp("d2/dir/moved"), &st), 0);
    IT_OK(it_lookup(BC, &d, "dir", &at));
    cr_assert(rfs_id_eq(&at.id, &dir));
    /* The moved directory is still found by id (its ids/ entry moved). */
    IT_OK(it_lookup(BC, &dir, "moved", &at));
    cr_assert(rfs_id_eq(&at.id, &a));
    /* A missing source. */
    IT_RC(do_rename(&ROOT, "nothing", &ROOT, "x", 0), -ENOENT);
}

/* ---- attributes ---- */

Test(daemon, setattr_each_field)
{
    struct rfs_id f;
    struct setattr_req s;
    struct attr_rep r;
    struct stat st;

    IT_OK(it_create(BC, &ROOT, "f", CREATE_EXCL, &f, NULL));
    memset(&s, 0, sizeof(s));
    s.id = f;

    s.valid = SETATTR_MODE;
    s.mode = 0600;
    IT_OK(brick_call_sync(BC, OP_SETATTR, &s, &r, NULL));
    cr_assert_eq(r.attr.mode & 07777, 0600);
    cr_assert(S_ISREG(r.attr.mode));
    cr_assert_eq(stat(bp("f"), &st), 0);
    cr_assert_eq(st.st_mode & 07777, 0600);

    s.valid = SETATTR_UID | SETATTR_GID;
    s.uid = 1234;
    s.gid = 5678;
    IT_OK(brick_call_sync(BC, OP_SETATTR, &s, &r, NULL));
    cr_assert_eq(r.attr.uid, 1234);
    cr_assert_eq(r.attr.gid, 5678);
    cr_assert_eq(stat(bp("f"), &st), 0);
    cr_assert_eq(st.st_uid, 1234);
    cr_assert_eq(st.st_gid, 5678);

    s.valid = SETATTR_SIZE;
    s.size = 100000;
    IT_OK(brick_call_sync(BC, OP_SETATTR, &s, &r, NULL));
    cr_assert_eq(r.attr.size, 100000);
    cr_assert_eq(stat(bp("f"), &st), 0);
    cr_assert_eq(st.st_size, 100000);
    s.size = 10;
    IT_OK(brick_call_sync(BC, OP_SETATTR, &s, &r, NULL));
    cr_assert_eq(stat(bp("f"), &st), 0);
    cr_assert_eq(st.st_size, 10);

    s.valid = SETATTR_ATIME | SETATTR_MTIME;
    s.atime = (struct proto_time){1000000000, 123456789};
    s.mtime = (struct proto_time){1100000000, 987654321};
    IT_OK(brick_call_sync(BC, OP_SETATTR, &s, &r, NULL));
    cr_assert_eq(r.attr.atime.sec, 1000000000);
    cr_assert_eq(r.attr.mtime.sec, 1100000000);
    cr_assert_eq(r.attr.mtime.nsec, 987654321);
    cr_assert_eq(stat(bp("f"), &st), 0);
    cr_assert_eq(st.st_atim.tv_sec, 1000000000);
    cr_assert_eq(st.st_atim.tv_nsec, 123456789);
    cr_assert_eq(st.st_mtim.tv_sec, 1100000000);
    cr_assert_eq(st.st_mtim.tv_nsec, 987654321);

    s.valid = SETATTR_ATIME_NOW | SETATTR_MTIME_NOW;
    IT_OK(brick_call_sync(BC, OP_SETATTR, &s, &r, NULL));
    cr_assert_eq(stat(bp("f"), &st), 0);
    cr_assert_geq((uint64_t)st.st_mtim.tv_sec + 5, now_s());
    cr_assert_geq((uint64_t)st.st_atim.tv_sec + 5, now_s());
    cr_assert_eq(r.attr.mtime.sec, st.st_mtim.tv_sec);

    /* Everything at once on a directory (no size). */
    {
        struct rfs_id d;

        IT_OK(it_mkdir(BC, &ROOT, "d", &d));
        memset(&s, 0, sizeof(s));
        s.id = d;
        s.valid = SETATTR_MODE | SETATTR_UID | SETATTR_MTIME;
        s.mode = 0711;
        s.uid = 42;
        s.mtime = (struct proto_time){1200000000, 0};
        IT_OK(brick_call_sync(BC, OP_SETATTR, &s, &r, NULL));
        cr_assert_eq(stat(bp("d"), &st), 0);
        cr_assert_eq(st.st_mode & 07777, 0711);
        cr_assert_eq(st.st_uid, 42);
        cr_assert_eq(st.st_mtim.tv_sec, 1200000000);
        s.valid = SETATTR_SIZE;
        s.size = 0;
        IT_RC(brick_call_sync(BC, OP_SETATTR, &s, &r, NULL), -EISDIR);
    }
}

/* ---- data ---- */

Test(daemon, open_read_write_offsets_and_eof)
{
    struct rfs_id f;
    struct open_req o = {.flags = O_RDWR};
    struct attr_rep ar;
    struct release_req rel;
    char buf[64];
    uint32_t got;
    struct stat st;

    IT_OK(it_create(BC, &ROOT, "f", CREATE_EXCL, &f, NULL));
    o.id = f;
    IT_OK(brick_call_sync(BC, OP_OPEN, &o, &ar, NULL));
    cr_assert(rfs_id_eq(&ar.attr.id, &f));
    IT_OK(it_write(BC, &f, 0, "hello world", 11));
    IT_OK(it_read(BC, &f, 0, sizeof(buf), buf, &got));
    cr_assert_eq(got, 11);
    cr_assert(memcmp(buf, "hello world", 11) == 0);
    IT_OK(it_read(BC, &f, 6, 3, buf, &got));
    cr_assert_eq(got, 3);
    cr_assert(memcmp(buf, "wor", 3) == 0);
    /* Read at and past EOF: short, then empty. */
    IT_OK(it_read(BC, &f, 9, 10, buf, &got));
    cr_assert_eq(got, 2);
    IT_OK(it_read(BC, &f, 1000, 10, buf, &got));
    cr_assert_eq(got, 0);
    /* Write past EOF leaves a hole of zeros. */
    IT_OK(it_write(BC, &f, 100, "Z", 1));
    IT_OK(it_read(BC, &f, 50, 51, buf, &got));
    cr_assert_eq(got, 51);
    for (int i = 0; i < 50; i++)
        cr_assert_eq(buf[i], 0, "hole byte %d", 50 + i);
    cr_assert_eq(buf[50], 'Z');
    cr_assert_eq(stat(bp("f"), &st), 0);
    cr_assert_eq(st.st_size, 101);
    /* The write reply's attr tracks the size. */
    {
        struct write_req w = {.id = f, .offset = 200, .data = {(const uint8_t *)"Q", 1}};
        struct write_rep wr;

        IT_OK(brick_call_sync(BC, OP_WRITE, &w, &wr, NULL));
        cr_assert_eq(wr.count, 1);
        cr_assert_eq(wr.attr.size, 201);
    }
    IT_OK(it_fsync(BC, &f));
    rel.id = f;
    IT_OK(brick_call_sync(BC, OP_RELEASE, &rel, NULL, NULL));
    /* Data of a directory */
    IT_RC(it_write(BC, &ROOT, 0, "x", 1), -EISDIR);
}

Test(daemon, one_mib_writes_read_back_and_match_disk)
{
    const uint32_t n = PROTO_MAX_IO;
    uint8_t *w = malloc(n), *r = malloc(n), *disk = malloc(n);
    struct rfs_id f;
    uint32_t got;
    int fd;

    cr_assert(w && r && disk);
    IT_OK(it_create(BC, &ROOT, "big", CREATE_EXCL, &f, NULL));
    for (uint64_t off = 0; off < 3ull * n; off += n) {
        it_pattern(w, n, 77, off);
        cr_assert_eq(it_write(BC, &f, off, w, n), 0, "write at %llu",
                     (unsigned long long)off);
    }
    /* An unaligned 1 MiB write straddling two of them. */
    it_pattern(w, n, 78, n / 2 + 3);
    IT_OK(it_write(BC, &f, n / 2 + 3, w, n));
    IT_OK(it_read(BC, &f, n / 2 + 3, n, r, &got));
    cr_assert_eq(got, n);
    cr_assert(memcmp(r, w, n) == 0, "1 MiB read differs from write");
    /* Far past EOF: a sparse 1 MiB write at 1 GiB. */
    it_pattern(w, n, 79, 1ull << 30);
    IT_OK(it_write(BC, &f, 1ull << 30, w, n));
    IT_OK(it_fsync(BC, &f));
    fd = open(bp("big"), O_RDONLY);
    cr_assert(fd >= 0);
    cr_assert_eq(pread(fd, disk, n, 1ull << 30), (ssize_t)n);
    cr_assert(memcmp(disk, w, n) == 0, "disk differs at 1 GiB");
    cr_assert_eq(pread(fd, disk, n, 0), (ssize_t)n);
    it_pattern(w, n, 77, 0);
    cr_assert(memcmp(disk, w, n / 2 + 3) == 0, "disk differs at 0");
    close(fd);
    /* Over-size read is refused without killing the link. */
    {
        struct read_req q = {.id = f, .offset = 0, .size = n + 1};
        struct read_rep rr;
        int rc = brick_call_sync(BC, OP_READ, &q, &rr, NULL);

        cr_assert(rc == -EINVAL || rc == -ENOTCONN, "read of 1 MiB + 1: %d",
                  rc);
    }
    free(w);
    free(r);
    free(disk);
}

/* ---- directories ---- */

struct listing {
    unsigned n;
    unsigned seen[1200];
    bool junk;
    bool meta;
};

static void collect(const char *name, const struct proto_attr *a, void *arg)
{
    struct listing *l = arg;
    unsigned i;

    (void)a;
    if (!strcmp(name, ".replicafs"))
        l->meta = true;
    if (!strcmp(name, ".") || !strcmp(name, "..") ||
        sscanf(name, "entry-%u", &i) != 1 || i >= 1200) {
        l->junk = true;
        return;
    }
    l->seen[i]++;
    l->n++;
}

Test(daemon, readdir_pages_with_cookies_over_1100_entries, .timeout = 120)
{
    struct rfs_id d;
    static struct listing l;
    int total;

    IT_OK(it_mkdir(BC, &ROOT, "big", &d));
    for (unsigned i = 0; i < 1100; i++) {
        char name[32];

        snprintf(name, sizeof(name), "entry-%u", i);
        cr_assert_eq(it_create(BC, &d, name, CREATE_EXCL, NULL, NULL), 0,
                     "create %s", name);
    }
    /* Small pages: many cookies. */
    memset(&l, 0, sizeof(l));
    total = it_readdir(BC, &d, 4096, collect, &l);
    cr_assert_eq(total, 1100, "readdir gave %d", total);
    cr_assert(!l.junk, "unexpected names (., .. or junk)");
    for (unsigned i = 0; i < 1100; i++)
        cr_assert_eq(l.seen[i], 1, "entry-%u seen %u times", i, l.seen[i]);
    /* Largest pages. */
    memset(&l, 0, sizeof(l));
    total = it_readdir(BC, &d, PROTO_READDIR_MAX, collect, &l);
    cr_assert_eq(total, 1100);
    /* A page too small for one entry is an error, not an endless loop. */
    {
        struct readdir_req q = {.id = d, .cookie = 0, .max_bytes = 8};
        struct readdir_rep r;
        int rc = brick_call_sync(BC, OP_READDIR, &q, &r, NULL);

        cr_assert(rc == -EINVAL || (rc == 0 && r.count == 0 && !r.eof) ||
                      rc == -ENOSPC,
                  "tiny readdir: rc %d", rc);
    }
}

Test(daemon, readdir_attrs_match_lookup)
{
    struct rfs_id d, f;
    struct readdir_req q = {.cookie = 0, .max_bytes = 65536};
    struct readdir_rep r;
    void *frame = NULL;
    char name[PROTO_NAME_MAX + 1];
    struct proto_attr a;
    size_t off = 0;
    int n = 0;

    IT_OK(it_mkdir(BC, &ROOT, "d", &d));
    IT_OK(it_create(BC, &d, "f", 0, &f, NULL));
    IT_OK(it_write(BC, &f, 0, "12345", 5));
    q.id = d;
    IT_OK(brick_call_sync(BC, OP_READDIR, &q, &r, &frame));
    while (proto_dirent_next(&r.entries, &off, name, &a) == 1) {
        cr_assert_str_eq(name, "f");
        cr_assert(rfs_id_eq(&a.id, &f));
        cr_assert_eq(a.size, 5);
        cr_assert(S_ISREG(a.mode));
        n++;
    }
    free(frame);
    cr_assert_eq(n, 1);
    cr_assert(r.eof);
    /* readdir of a file */
    q.id = f;
    IT_RC(brick_call_sync(BC, OP_READDIR, &q, &r, NULL), -ENOTDIR);
}

Test(daemon, statfs_reports_the_brick_filesystem)
{
    struct statfs_req q = {0};
    struct statfs_rep r;
    struct statvfs sv;

    IT_OK(brick_call_sync(BC, OP_STATFS, &q, &r, NULL));
    cr_assert_eq(statvfs(bp(""), &sv), 0);
    cr_assert_gt(r.bsize, 0);
    cr_assert_gt(r.blocks, 0);
    cr_assert_leq(r.bavail, r.blocks);
    cr_assert_eq(r.namemax, 255);
    cr_assert_eq(r.blocks * r.bsize, (uint64_t)sv.f_blocks * sv.f_frsize);
}

/* ---- .replicafs is invisible ---- */

static void find_meta(const char *name, const struct proto_attr *a, void *arg)
{
    (void)a;
    if (!strcmp(name, ".replicafs"))
        *(bool *)arg = true;
}

Test(daemon, replicafs_dir_cannot_be_looked_up_created_or_listed)
{
    struct proto_attr a;
    struct rfs_id d, f;
    bool seen = false;
    int rc;
    struct stat st;

    cr_assert_eq(stat(bp(".replicafs"), &st), 0, "no .replicafs on disk?");
    rc = it_lookup(BC, &ROOT, ".replicafs", &a);
    cr_assert(rc == -ENOENT || rc == -EPERM, "lookup .replicafs: %d", rc);
    rc = it_create(BC, &ROOT, ".replicafs", 0, NULL, NULL);
    cr_assert(rc == -EPERM || rc == -EEXIST || rc == -EACCES,
              "create .replicafs: %d", rc);
    rc = it_mkdir(BC, &ROOT, ".replicafs", NULL);
    cr_assert(rc < 0, "mkdir .replicafs worked");
    cr_assert_neq(it_unlink(BC, &ROOT, ".replicafs"), 0);
    {
        struct unlink_req u = {.parent = ROOT, .name = ".replicafs"};

        cr_assert_neq(brick_call_sync(BC, OP_RMDIR, &u, NULL, NULL), 0);
    }
    IT_OK(it_create(BC, &ROOT, "x", 0, &f, NULL));
    cr_assert_neq(do_rename(&ROOT, "x", &ROOT, ".replicafs", 0), 0);
    cr_assert_neq(do_rename(&ROOT, ".replicafs", &ROOT, "y", 0), 0);
    {
        struct link_req l = {.id = f, .newparent = ROOT,
                             .newname = ".replicafs"};
        struct attr_rep r;

        cr_assert_neq(brick_call_sync(BC, OP_LINK, &l, &r, NULL), 0);
    }
    cr_assert_geq(it_readdir(BC, &ROOT, 65536, find_meta, &seen), 1);
    cr_assert(!seen, "readdir of the root lists .replicafs");
    /* The metadata is intact after all that. */
    cr_assert_eq(stat(bp(".replicafs/stamp"), &st), 0);
    cr_assert(S_ISREG(st.st_mode));
    /* Below the root it is an ordinary name. */
    IT_OK(it_mkdir(BC, &ROOT, "sub", &d));
    IT_OK(it_create(BC, &d, ".replicafs", CREATE_EXCL, NULL, NULL));
    IT_OK(it_lookup(BC, &d, ".replicafs", &a));
}

Test(daemon, the_brick_is_a_plain_tree)
{
    struct rfs_id a, b, f, g;
    const char *text = "uploaded file contents\n";
    char buf[64];
    struct stat st;
    int fd;
    ssize_t n;

    IT_OK(it_mkdir(BC, &ROOT, "upload", &a));
    IT_OK(it_mkdir(BC, &a, "iblock", &b));
    IT_OK(it_create(BC, &b, "photo.jpg", CREATE_EXCL, &f, NULL));
    IT_OK(it_write(BC, &f, 0, text, (uint32_t)strlen(text)));
    IT_OK(it_create(BC, &ROOT, "top.txt", CREATE_EXCL, &g, NULL));
    fd = open(bp("upload/iblock/photo.jpg"), O_RDONLY);
    cr_assert(fd >= 0, "not a plain path: %s", strerror(errno));
    n = read(fd, buf, sizeof(buf));
    close(fd);
    cr_assert_eq(n, (ssize_t)strlen(text));
    cr_assert(memcmp(buf, text, (size_t)n) == 0);
    cr_assert_eq(lstat(bp("upload"), &st), 0);
    cr_assert(S_ISDIR(st.st_mode));
    cr_assert_eq(lstat(bp("top.txt"), &st), 0);
    cr_assert(S_ISREG(st.st_mode));
    /* Ids are findable from the layout the brief describes. */
    {
        char hex[RFS_ID_HEX_LEN + 1], rel[128];

        rfs_id_to_hex(&f, hex);
        snprintf(rel, sizeof(rel), ".replicafs/ids/%.2s/%s", hex, hex);
        cr_assert_eq(lstat(bp(rel), &st), 0, "no %s", rel);
        cr_assert(S_ISREG(st.st_mode));
        rfs_id_to_hex(&b, hex);
        snprintf(rel, sizeof(rel), ".replicafs/ids/%.2s/%s", hex, hex);
        cr_assert_eq(lstat(bp(rel), &st), 0, "no %s", rel);
        cr_assert(S_ISLNK(st.st_mode));
    }
}

/* ---- locks ---- */

struct pending {
    bool done;
    int status;
};

static void pending_cb(int status, const void *rep, void *arg)
{
    struct pending *p = arg;

    (void)rep;
    p->done = true;
    p->status = status;
}

/* Run the loop for ms, or until *done. */
static void run_until_done(struct pending *p, unsigned ms)
{
    uint64_t end = itest_now_ms() + ms;

    while (!(p && p->done) && itest_now_ms() < end) {
        uv_run(&V->loop, UV_RUN_NOWAIT);
        usleep(500);
    }
}

static void run_ms(unsigned ms)
{
    run_until_done(NULL, ms);
}

static int inodelk(struct brick_conn *bc, const struct rfs_id *id,
                   uint64_t owner, uint32_t type, uint32_t flags)
{
    struct inodelk_req q = {.id = *id, .owner = owner, .type = type,
                            .flags = flags};

    return brick_call_sync(bc, OP_INODELK, &q, NULL, NULL);
}

/* Take (id, owner) WR once the brick has let go of a closed connection's
 * lock (it does so when it sees the close): 0, or -EAGAIN after 3 s. */
static int inodelk_when_free(struct brick_conn *bc, const struct rfs_id *id,
                             uint64_t owner)
{
    uint64_t end = itest_now_ms() + 3000;
    int rc;

    while ((rc = inodelk(bc, id, owner, LK_WR, LK_NONBLOCK)) == -EAGAIN &&
           itest_now_ms() < end)
        usleep(10000);
    return rc;
}

Test(daemon, inodelk_contention_nonblock_blocking_and_release_on_disconnect)
{
    struct brick_conn *b2 = itest_connect(V, 1);
    struct inodelk_req q;
    struct pending p = {0};
    struct rfs_id f;

    IT_OK(it_create(BC, &ROOT, "f", 0, &f, NULL));
    IT_OK(inodelk(BC, &f, 1, LK_WR, 0));
    IT_RC(inodelk(b2, &f, 2, LK_WR, LK_NONBLOCK), -EAGAIN);
    IT_RC(inodelk(b2, &f, 2, LK_RD, LK_NONBLOCK), -EAGAIN);
    /* A blocking request waits until the holder unlocks. */
    q = (struct inodelk_req){.id = f, .owner = 2, .type = LK_WR};
    cr_assert_eq(brick_call(b2, OP_INODELK, &q, pending_cb, &p), 0);
    run_ms(300);
    cr_assert(!p.done, "blocking lock granted while held");
    IT_OK(inodelk(BC, &f, 1, LK_UN, 0));
    run_until_done(&p, 5000);
    cr_assert(p.done, "blocking lock not granted after unlock");
    cr_assert_eq(p.status, 0);
    IT_RC(inodelk(BC, &f, 1, LK_WR, LK_NONBLOCK), -EAGAIN);
    /* Shared locks share. */
    IT_OK(inodelk(b2, &f, 2, LK_UN, 0));
    IT_OK(inodelk(BC, &f, 1, LK_RD, 0));
    IT_OK(inodelk(b2, &f, 2, LK_RD, LK_NONBLOCK));
    IT_RC(inodelk(b2, &f, 3, LK_WR, LK_NONBLOCK), -EAGAIN);
    IT_OK(inodelk(BC, &f, 1, LK_UN, 0));
    IT_OK(inodelk(b2, &f, 2, LK_UN, 0));
    /* Locks die with their connection. */
    IT_OK(inodelk(b2, &f, 2, LK_WR, 0));
    IT_RC(inodelk(BC, &f, 1, LK_WR, LK_NONBLOCK), -EAGAIN);
    itest_disconnect(V, b2);
    cr_assert_eq(inodelk_when_free(BC, &f, 1), 0,
                 "lock of a closed connection not released");
}

static int entrylk(struct brick_conn *bc, const struct rfs_id *parent,
                   const char *name, uint64_t owner, uint32_t type,
                   uint32_t flags)
{
    struct entrylk_req q = {.parent = *parent, .owner = owner, .type = type,
                            .flags = flags};

    snprintf(q.name, sizeof(q.name), "%s", name);
    return brick_call_sync(bc, OP_ENTRYLK, &q, NULL, NULL);
}

Test(daemon, entrylk_contention_and_release_on_disconnect)
{
    struct brick_conn *b2 = itest_connect(V, 1);
    struct entrylk_req q = {.parent = ROOT, .name = "new", .owner = 2,
                            .type = LK_WR};
    struct pending p = {0};

    IT_OK(entrylk(BC, &ROOT, "new", 1, LK_WR, 0));
    IT_RC(entrylk(b2, &ROOT, "new", 2, LK_WR, LK_NONBLOCK), -EAGAIN);
    /* Another name in the same directory is independent. */
    IT_OK(entrylk(b2, &ROOT, "other", 2, LK_WR, LK_NONBLOCK));
    IT_OK(entrylk(b2, &ROOT, "other", 2, LK_UN, 0));
    cr_assert_eq(brick_call(b2, OP_ENTRYLK, &q, pending_cb, &p), 0);
    run_ms(300);
    cr_assert(!p.done, "blocking entry lock granted while held");
    IT_OK(entrylk(BC, &ROOT, "new", 1, LK_UN, 0));
    run_until_done(&p, 5000);
    cr_assert(p.done && p.status == 0, "entry lock not handed over");
    itest_disconnect(V, b2);
    {
        uint64_t end = itest_now_ms() + 3000;
        int rc;

        while ((rc = entrylk(BC, &ROOT, "new", 1, LK_WR, LK_NONBLOCK)) ==
                   -EAGAIN &&
               itest_now_ms() < end)
            usleep(10000);
        cr_assert_eq(rc, 0, "entry lock of a closed connection kept: %d", rc);
    }
}

/* ---- replication markers and the heal index ---- */

static int heal_has(const struct rfs_id *id, unsigned *count)
{
    struct heal_list_req q = {.cookie = 0, .max = 2};
    bool found = false;
    unsigned n = 0;

    for (int pages = 0; pages < 1000; pages++) {
        struct heal_list_rep r;
        void *frame = NULL;
        int rc = brick_call_sync(BC, OP_HEAL_LIST, &q, &r, &frame);

        cr_assert_eq(rc, 0, "heal_list: %d", rc);
        cr_assert_leq(r.count, q.max);
        cr_assert_eq(r.ids.len, r.count * 16);
        for (unsigned i = 0; i < r.count; i++) {
            struct rfs_id x;

            proto_id_get(r.ids.data + 16 * i, &x);
            found |= rfs_id_eq(&x, id);
            n++;
        }
        free(frame);
        if (r.eof)
            break;
        q.cookie = r.next_cookie;
    }
    if (count)
        *count = n;
    return found;
}

static void xattrop(const struct rfs_id *id, int64_t dirty, unsigned np,
                    const int64_t *pending, struct xattrop_rep *r)
{
    struct xattrop_req q = {.id = *id, .dirty = dirty, .npending = np};

    for (unsigned i = 0; i < np; i++)
        q.pending[i] = pending[i];
    IT_OK(brick_call_sync(BC, OP_XATTROP, &q, r, NULL));
}

Test(daemon, xattrop_keeps_heal_index_while_markers_are_set)
{
    struct rfs_id f, g;
    struct xattrop_rep r;
    int64_t pend[3] = {0, 2, 0}, unpend[3] = {0, -2, 0}, zero[3] = {0};
    char hex[RFS_ID_HEX_LEN + 1], rel[128];
    struct stat st;
    unsigned n;

    IT_OK(it_create(BC, &ROOT, "f", 0, &f, NULL));
    IT_OK(it_create(BC, &ROOT, "g", 0, &g, NULL));
    rfs_id_to_hex(&f, hex);
    snprintf(rel, sizeof(rel), ".replicafs/heal/%s", hex);
    cr_assert(!heal_has(&f, NULL));
    /* Reading markers of a fresh file: all zero. */
    xattrop(&f, 0, 3, zero, &r);
    cr_assert_eq(r.dirty, 0);

    xattrop(&f, 1, 0, NULL, &r);
    cr_assert_eq(r.dirty, 1);
    cr_assert(heal_has(&f, NULL), "dirty object not in the heal index");
    cr_assert_eq(stat(bp(rel), &st), 0);
    xattrop(&f, -1, 0, NULL, &r);
    cr_assert_eq(r.dirty, 0);
    cr_assert(!heal_has(&f, NULL), "clean object still in the heal index");
    cr_assert_neq(stat(bp(rel), &st), 0);

    xattrop(&f, 0, 3, pend, &r);
    cr_assert_eq(r.npending, 3);
    cr_assert_eq(r.pending[1], 2);
    xattrop(&g, 1, 0, NULL, &r);
    cr_assert(heal_has(&f, &n));
    cr_assert_eq(n, 2, "heal index has %u ids, want 2", n);
    /* Partly undone: still pending. */
    {
        int64_t one[3] = {0, -1, 0};

        xattrop(&f, 0, 3, one, &r);
        cr_assert_eq(r.pending[1], 1);
        cr_assert(heal_has(&f, NULL));
        unpend[1] = -1;
    }
    xattrop(&f, 0, 3, unpend, &r);
    cr_assert_eq(r.pending[1], 0);
    cr_assert(!heal_has(&f, &n));
    cr_assert_eq(n, 1);
    xattrop(&g, -1, 0, NULL, &r);
    cr_assert(!heal_has(&g, &n));
    cr_assert_eq(n, 0);
    /* The on-disk markers are the xattrs the layout names. */
    {
        int64_t v = 99;
        ssize_t n = getxattr(bp("g"), "trusted.rfs.dirty", &v, sizeof(v));

        /* cleared: either stored as 0 or removed */
        cr_assert((n == (ssize_t)sizeof(v) && v == 0) ||
                      (n < 0 && errno == ENODATA),
                  "trusted.rfs.dirty of g: n %zd v %lld", n, (long long)v);
        xattrop(&g, 3, 0, NULL, &r);
        n = getxattr(bp("g"), "trusted.rfs.dirty", &v, sizeof(v));
        cr_assert_eq(n, (ssize_t)sizeof(v));
        cr_assert_eq(v, 3, "trusted.rfs.dirty on disk is %lld", (long long)v);
    }
}

static int lookup_flags(const struct rfs_id *parent, const char *name,
                        uint32_t flags)
{
    struct lookup_req l = {.parent = *parent, .flags = flags};
    struct attr_rep r;

    snprintf(l.name, sizeof(l.name), "%s", name);
    return brick_call_sync(BC, OP_LOOKUP, &l, &r, NULL);
}

/* READDIR's dirty flag for dir (one batch), or -errno. */
static int readdir_dirty(const struct rfs_id *dir)
{
    struct readdir_req q = {.id = *dir, .max_bytes = 4096};
    struct readdir_rep rr;
    int rc = brick_call_sync(BC, OP_READDIR, &q, &rr, NULL);

    return rc < 0 ? rc : (int)rr.dirty;
}

Test(daemon, lookup_clean_refuses_a_dirty_folder_with_eagain)
{
    struct rfs_id d, f;
    struct xattrop_rep r;

    IT_OK(it_mkdir(BC, &ROOT, "lc", &d));
    IT_OK(it_create(BC, &d, "f", 0, &f, NULL));
    cr_assert_eq(lookup_flags(&d, "f", LOOKUP_CLEAN), 0);
    cr_assert_eq(lookup_flags(&d, "nope", LOOKUP_CLEAN), -ENOENT);

    xattrop(&d, 1, 0, NULL, &r); /* a change of lc under way, or left */
    cr_assert_eq(lookup_flags(&d, "f", LOOKUP_CLEAN), -EAGAIN);
    cr_assert_eq(lookup_flags(&d, "nope", LOOKUP_CLEAN), -EAGAIN);
    cr_assert_eq(lookup_flags(&d, "f", 0), 0, "without the flag: answered");
    /* One mark is the caller's own: clean enough; two are not. */
    cr_assert_eq(lookup_flags(&d, "f", LOOKUP_CLEAN | LOOKUP_OWN_MARK), 0);
    xattrop(&d, 1, 0, NULL, &r);
    cr_assert_eq(lookup_flags(&d, "f", LOOKUP_CLEAN | LOOKUP_OWN_MARK),
                 -EAGAIN);
    /* A listing says whether it came from a dirty copy. */
    cr_assert_eq(readdir_dirty(&d), 1);
    xattrop(&d, -2, 0, NULL, &r);
    cr_assert_eq(lookup_flags(&d, "f", LOOKUP_CLEAN), 0, "clean again");
    cr_assert_eq(readdir_dirty(&d), 0);
}

static int xattrop_lk(struct brick_conn *bc, const struct rfs_id *id,
                      int64_t dirty, uint32_t lk, uint64_t owner,
                      const char *name, struct xattrop_rep *r)
{
    struct xattrop_req q = {.id = *id, .dirty = dirty, .lk = lk,
                            .lk_owner = owner};

    snprintf(q.lk_name, sizeof(q.lk_name), "%s", name);
    return brick_call_sync(bc, OP_XATTROP, &q, r, NULL);
}

/* XATTROP with XO_LOCK / XO_UNLOCK: lock and mark in one request, both or
 * neither; clear and unlock in one, the unlock even when the op fails. */
Test(daemon, xattrop_lock_and_unlock_in_one_request)
{
    struct brick_conn *b2 = itest_connect(V, 1);
    struct rfs_id f, gone = {0x1234, 0x5678};
    struct xattrop_rep r;
    struct xattrop_req q;
    struct pending p = {0};

    IT_OK(it_create(BC, &ROOT, "f", 0, &f, NULL));
    IT_OK(xattrop_lk(BC, &f, 1, XO_LOCK | XO_NONBLOCK, 1, "", &r));
    cr_assert_eq(r.dirty, 1);
    cr_assert(heal_has(&f, NULL));
    /* Held: another holder is refused, by INODELK and by XO_LOCK alike,
     * and the refused XO_LOCK marked nothing. */
    IT_RC(inodelk(b2, &f, 2, LK_WR, LK_NONBLOCK), -EAGAIN);
    IT_RC(xattrop_lk(b2, &f, 1, XO_LOCK | XO_NONBLOCK, 2, "", &r), -EAGAIN);
    xattrop(&f, 0, 0, NULL, &r);
    cr_assert_eq(r.dirty, 1, "a refused XO_LOCK changed dirty to %lld",
                 (long long)r.dirty);
    /* A blocking XO_LOCK waits for the holder's XO_UNLOCK, then marks. */
    q = (struct xattrop_req){.id = f, .dirty = 1, .lk = XO_LOCK,
                             .lk_owner = 2};
    cr_assert_eq(brick_call(b2, OP_XATTROP, &q, pending_cb, &p), 0);
    run_ms(300);
    cr_assert(!p.done, "XO_LOCK granted while held");
    IT_OK(xattrop_lk(BC, &f, -1, XO_UNLOCK, 1, "", &r));
    run_until_done(&p, 5000);
    cr_assert(p.done && p.status == 0, "XO_LOCK not granted after XO_UNLOCK");
    IT_OK(xattrop_lk(b2, &f, -1, XO_UNLOCK, 2, "", &r));
    cr_assert_eq(r.dirty, 0);
    cr_assert(!heal_has(&f, NULL));
    IT_OK(inodelk(BC, &f, 1, LK_WR, LK_NONBLOCK));
    IT_OK(inodelk(BC, &f, 1, LK_UN, 0));
    /* Both or neither: an object the brick lacks leaves no lock behind. */
    IT_RC(xattrop_lk(BC, &gone, 1, XO_LOCK | XO_NONBLOCK, 1, "", &r), -ENOENT);
    IT_OK(inodelk(b2, &gone, 2, LK_WR, LK_NONBLOCK));
    /* XO_UNLOCK releases even when the op fails. */
    IT_RC(xattrop_lk(b2, &gone, -1, XO_UNLOCK, 2, "", &r), -ENOENT);
    IT_OK(inodelk(BC, &gone, 1, LK_WR, LK_NONBLOCK));
    IT_OK(inodelk(BC, &gone, 1, LK_UN, 0));
    /* The entry lock of (parent, name) with a mark on the parent. */
    IT_OK(xattrop_lk(BC, &ROOT, 1, XO_LOCK | XO_NONBLOCK | XO_ENTRY, 1, "n",
                     &r));
    cr_assert_eq(r.dirty, 1);
    IT_RC(entrylk(b2, &ROOT, "n", 2, LK_WR, LK_NONBLOCK), -EAGAIN);
    IT_OK(entrylk(b2, &ROOT, "m", 2, LK_WR, LK_NONBLOCK));
    IT_OK(entrylk(b2, &ROOT, "m", 2, LK_UN, 0));
    IT_OK(xattrop_lk(BC, &ROOT, -1, XO_UNLOCK | XO_ENTRY, 1, "n", &r));
    cr_assert_eq(r.dirty, 0);
    IT_OK(entrylk(b2, &ROOT, "n", 2, LK_WR, LK_NONBLOCK));
    IT_OK(entrylk(b2, &ROOT, "n", 2, LK_UN, 0));
    IT_RC(xattrop_lk(BC, &f, 1, XO_LOCK | XO_UNLOCK, 1, "", &r), -EINVAL);
}

static int create_locked(struct brick_conn *bc, const struct rfs_id *parent,
                         const char *name, uint64_t owner, struct rfs_id *id)
{
    struct create_req c = {.parent = *parent, .mode = S_IFREG | 0644,
                           .uid = getuid(), .gid = getgid(),
                           .flags = CREATE_EXCL | CREATE_OPEN | CREATE_LOCK,
                           .lk_owner = owner};
    struct create_rep r;
    int rc;

    rfs_id_random(&c.id);
    snprintf(c.name, sizeof(c.name), "%s", name);
    *id = c.id;
    rc = brick_call_sync(bc, OP_CREATE, &c, &r, NULL);
    if (rc == 0)
        cr_assert_eq(r.created, 1);
    return rc;
}

/* CREATE_LOCK: the new file is born with its inode write lock held by
 * (connection, lk_owner) and dirty 1 (in the heal index, on disk), as
 * XATTROP(dirty+1, XO_LOCK) would leave it, until the holder's
 * XATTROP(dirty-1, XO_UNLOCK); a CREATE that fails holds neither; the lock
 * goes with the connection, the mark stays for heal.  docs/protocol.md. */
Test(daemon, create_lock_holds_the_new_file_locked_and_marked)
{
    struct brick_conn *b2 = itest_connect(V, 1);
    struct brick_conn *b3 = itest_connect(V, 1);
    struct rfs_id f, g, h, gone = {0x1234, 0x5678};
    struct xattrop_rep r;
    int64_t v = 0;

    IT_OK(create_locked(BC, &ROOT, "born", 7, &f));
    /* Held: another owner is refused, on another connection or this one. */
    IT_RC(inodelk(b2, &f, 2, LK_WR, LK_NONBLOCK), -EAGAIN);
    IT_RC(inodelk(BC, &f, 8, LK_RD, LK_NONBLOCK), -EAGAIN);
    IT_RC(xattrop_lk(b2, &f, 1, XO_LOCK | XO_NONBLOCK, 2, "", &r), -EAGAIN);
    /* Marked, as every reader and heal sees markers. */
    xattrop(&f, 0, 0, NULL, &r);
    cr_assert_eq(r.dirty, 1, "born with dirty %lld", (long long)r.dirty);
    cr_assert(heal_has(&f, NULL), "a marked file not in the heal index");
    cr_assert_eq(getxattr(bp("born"), "trusted.rfs.dirty", &v, sizeof(v)),
                 (ssize_t)sizeof(v));
    cr_assert_eq(v, 1, "trusted.rfs.dirty on disk is %lld", (long long)v);
    /* The window's end: clear and unlock in one, by the same owner. */
    IT_OK(xattrop_lk(BC, &f, -1, XO_UNLOCK, 7, "", &r));
    cr_assert_eq(r.dirty, 0);
    cr_assert(!heal_has(&f, NULL));
    IT_OK(inodelk(b2, &f, 2, LK_WR, LK_NONBLOCK));
    IT_OK(inodelk(b2, &f, 2, LK_UN, 0));

    /* Both or neither: a CREATE_LOCK that fails holds no lock. */
    IT_RC(create_locked(BC, &ROOT, "born", 7, &g), -EEXIST);
    IT_OK(inodelk(b2, &g, 2, LK_WR, LK_NONBLOCK));
    IT_OK(inodelk(b2, &g, 2, LK_UN, 0));
    IT_RC(create_locked(BC, &gone, "x", 7, &g), -ENOENT);
    IT_OK(inodelk(b2, &g, 2, LK_WR, LK_NONBLOCK));
    IT_OK(inodelk(b2, &g, 2, LK_UN, 0));

    /* A client that dies holding it: the lock goes with its connection,
     * dirty stays (an interrupted window, for heal). */
    IT_OK(create_locked(b3, &ROOT, "born2", 9, &h));
    IT_RC(inodelk(b2, &h, 2, LK_WR, LK_NONBLOCK), -EAGAIN);
    itest_disconnect(V, b3);
    cr_assert_eq(inodelk_when_free(b2, &h, 2), 0,
                 "birth lock of a closed connection kept");
    IT_OK(inodelk(b2, &h, 2, LK_UN, 0));
    xattrop(&h, 0, 0, NULL, &r);
    cr_assert_eq(r.dirty, 1, "the mark of an interrupted window went");
    cr_assert(heal_has(&h, NULL));
}

static uint64_t suspect_gen(struct brick_conn *bc, uint64_t clear)
{
    struct xattrop_req q = {.id = ROOT, .clear_suspect = clear};
    struct xattrop_rep r;

    IT_OK(brick_call_sync(bc, OP_XATTROP, &q, &r, NULL));
    return r.suspect;
}

Test(daemon, suspect_mark_set_by_start_and_lost_client_cleared_by_generation)
{
    struct brick_conn *other;
    uint64_t g, g2;
    uint8_t disk[16];

    /* Started: it cannot know what it missed. */
    g = suspect_gen(BC, 0);
    cr_assert_neq(g, 0, "a brick that just started is not suspect");
    cr_assert_eq(getxattr(bp(""), "trusted.rfs.suspect", disk, sizeof(disk)),
                 16, "the mark is not on the brick root");
    /* A clear for another generation changes nothing; the right one
     * clears it, and on disk too. */
    cr_assert_eq(suspect_gen(BC, g + 1), g);
    cr_assert_eq(suspect_gen(BC, g), 0);
    cr_assert_eq(getxattr(bp(""), "trusted.rfs.suspect", disk, sizeof(disk)),
                 16);
    cr_assert_eq(disk[0] | disk[1] | disk[2] | disk[7], 0);
    /* Losing a client that only read (status, verify): no sign. */
    other = itest_connect(V, 1);
    cr_assert_eq(suspect_gen(other, 0), 0);
    itest_disconnect(V, other);
    run_ms(200);
    cr_assert_eq(suspect_gen(BC, 0), 0, "a reader's leaving made it suspect");
    /* Losing a client that changed something: it may go on changing
     * things elsewhere. */
    other = itest_connect(V, 1);
    IT_OK(it_create(other, &ROOT, "by-other", 0, NULL, NULL));
    itest_disconnect(V, other);
    run_ms(200);
    g2 = suspect_gen(BC, 0);
    cr_assert_neq(g2, 0, "losing a client did not make the brick suspect");
    cr_assert_gt(g2, g, "generations must grow");
    /* A clear with the old generation cannot undo the new mark. */
    cr_assert_eq(suspect_gen(BC, g), g2);
    /* A healer that clears the mark after its changes leaves no mark. */
    other = itest_connect(V, 1);
    IT_OK(it_create(other, &ROOT, "by-healer", 0, NULL, NULL));
    cr_assert_eq(suspect_gen(other, g2), 0);
    itest_disconnect(V, other);
    run_ms(200);
    cr_assert_eq(suspect_gen(BC, 0), 0, "the healer's leaving made it suspect");
    /* A restart marks it again, with a newer generation. */
    itest_brick_restart(V, 1);
    IT_OK(itest_relink(V, BC, 10000));
    cr_assert_gt(suspect_gen(BC, 0), g2);
}

/* ---- the link: events and a frozen daemon ---- */

struct events {
    unsigned n;
    struct inval_event last;
    bool got_f;
    struct rfs_id f;
};

static void on_event(struct brick_conn *bc, uint16_t op, const void *msg,
                     void *arg)
{
    struct events *e = arg;
    const struct inval_event *ev = msg;

    (void)bc;
    if (op != OP_INVAL)
        return;
    e->n++;
    e->last = *ev;
    if (rfs_id_eq(&ev->id, &e->f))
        e->got_f = true;
}

Test(daemon, changes_by_one_client_invalidate_the_others)
{
    static struct events e;
    struct brick_conn_opts o = {.on_event = on_event, .arg = &e};
    struct brick_conn *watcher = itest_connect_opts(V, 1, &o, NULL);
    struct setattr_req s = {.valid = SETATTR_MODE, .mode = 0600};
    struct attr_rep r;
    uint64_t end;

    memset(&e, 0, sizeof(e));
    IT_OK(it_create(BC, &ROOT, "shared", CREATE_EXCL, &e.f, NULL));
    e.got_f = false;
    IT_OK(it_write(BC, &e.f, 0, "v1", 2));
    end = itest_now_ms() + 3000;
    while (!e.got_f && itest_now_ms() < end) {
        uv_run(&V->loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    cr_assert(e.got_f, "no INVAL for a write by another client (%u events)",
              e.n);
    cr_assert(e.last.what & (INVAL_DATA | INVAL_ATTR), "what = %#x",
              e.last.what);
    /* The writer itself is not told about its own change. */
    e.got_f = false;
    s.id = e.f;
    IT_OK(brick_call_sync(watcher, OP_SETATTR, &s, &r, NULL));
    run_ms(200);
    cr_assert(!e.got_f, "the changing client got its own invalidation");
}

Test(daemon, frozen_daemon_is_down_after_ping_timeout_and_comes_back)
{
    struct brick_conn_opts o = {.ping_timeout_ms = 1000};
    struct brick_conn *bc = itest_connect_opts(V, 1, &o, NULL);
    struct pending p = {0};
    struct getattr_req g = {.id = ROOT};
    uint64_t t0;

    itest_brick_pause(V, 1);
    t0 = itest_now_ms();
    IT_OK(brick_call(bc, OP_GETATTR, &g, pending_cb, &p));
    run_until_done(&p, 5000);
    cr_assert(p.done, "no answer from a frozen brick after 5 s");
    IT_RC(p.status, -ENOTCONN);
    cr_assert_geq(itest_now_ms() - t0, 900);
    cr_assert_leq(itest_now_ms() - t0, 2500, "took %llu ms",
                  (unsigned long long)(itest_now_ms() - t0));
    IT_RC(brick_conn_last_error(bc), -ETIMEDOUT);
    cr_assert_neq(brick_conn_state(bc), BRICK_UP);
    itest_brick_resume(V, 1);
    IT_OK(brick_conn_wait_up(bc, 10000));
    IT_OK(brick_call_sync(bc, OP_GETATTR, &g, NULL, NULL));
}

Test(daemon, a_lock_wait_longer_than_the_ping_timeout_keeps_the_link)
{
    struct brick_conn_opts o = {.ping_timeout_ms = 600};
    struct brick_conn *waiter = itest_connect_opts(V, 1, &o, NULL);
    struct inodelk_req q = {.id = ROOT, .owner = 2, .type = LK_WR};
    struct pending p = {0};

    IT_OK(inodelk(BC, &ROOT, 1, LK_WR, 0));
    IT_OK(brick_call(waiter, OP_INODELK, &q, pending_cb, &p));
    run_ms(2000); /* > 3 ping timeouts: the brick must answer pings */
    cr_assert(!p.done, "lock wait ended early: %d", p.status);
    cr_assert_eq(brick_conn_state(waiter), BRICK_UP,
                 "a waiting lock made the link look dead");
    IT_OK(inodelk(BC, &ROOT, 1, LK_UN, 0));
    run_until_done(&p, 5000);
    cr_assert(p.done);
    IT_OK(p.status);
}
