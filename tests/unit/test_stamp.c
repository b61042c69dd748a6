/* Brick stamp: parse/format round trip, load/check, --init rules. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "daemon/ids.h"
#include "daemon/stamp.h"

static char dir[256];

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/rfs-test-stamp-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[300];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(stamp, .init = setup, .fini = teardown);

Test(stamp, format_then_parse_round_trips)
{
    struct stamp s = {.brick = 3, .uuid_hi = 0x0123456789abcdefull,
                      .uuid_lo = 0xfedcba9876543210ull};
    struct stamp t;
    char buf[512];

    strcpy(s.volume, "upload");
    strcpy(s.created, "2024-01-01T00:00:00Z");
    cr_assert_gt(stamp_format(&s, buf, sizeof(buf)), 0);
    cr_assert_eq(stamp_parse(buf, strlen(buf), &t), 0);
    cr_assert_str_eq(t.volume, "upload");
    cr_assert_eq(t.brick, 3);
    cr_assert_eq(t.uuid_hi, s.uuid_hi);
    cr_assert_eq(t.uuid_lo, s.uuid_lo);
    cr_assert_str_eq(t.created, s.created);
}

Test(stamp, parse_rejects_missing_bad_and_duplicate_keys)
{
    struct stamp t = {.brick = 99};
    const char *bad[] = {
        "volume = upload\nbrick = 1\n",                              /* no uuid */
        "volume = upload\nbrick = 0\nuuid = 000102030405060708090a0b0c0d0e0f\n",
        "volume = upload\nbrick = x\nuuid = 000102030405060708090a0b0c0d0e0f\n",
        "volume = upload\nbrick = 1\nuuid = 0001\n",
        "volume = a\nvolume = b\nbrick = 1\nuuid = 000102030405060708090a0b0c0d0e0f\n",
        "just garbage\n",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(stamp_parse(bad[i], strlen(bad[i]), &t), -EINVAL,
                     "case %zu", i);
    cr_assert_eq(t.brick, 99, "out-parameter untouched on failure");
}

Test(stamp, parse_ignores_comments_and_unknown_keys)
{
    const char *txt = "# brick stamp\nvolume = v\nfuture = 1\nbrick = 2\r\n"
                      "uuid = 000102030405060708090A0B0C0D0E0F\n";
    struct stamp t;

    cr_assert_eq(stamp_parse(txt, strlen(txt), &t), 0);
    cr_assert_eq(t.brick, 2);
    cr_assert_eq(t.uuid_hi, 0x0001020304050607ull);
}

Test(stamp, init_makes_layout_and_loads_back)
{
    struct stamp s, t;
    char err[256], p[400];
    uint8_t idbuf[16];
    struct rfs_id root;
    struct stat st;

    cr_assert_eq(stamp_init_dir(dir, "upload", 2, &s, err, sizeof(err)), 0, "%s",
                 err);
    cr_assert_eq(stamp_load(dir, &t, err, sizeof(err)), 0);
    cr_assert_eq(stamp_check(&t, "upload", 2, err, sizeof(err)), 0);
    cr_assert_eq(t.uuid_hi, s.uuid_hi);
    cr_assert(s.uuid_hi || s.uuid_lo);
    for (const char *d = "ids\0heal\0tmp\0ids/00\0ids/ff\0"; *d; d += strlen(d) + 1) {
        snprintf(p, sizeof(p), "%s/.replicafs/%s", dir, d);
        cr_assert_eq(stat(p, &st), 0, "%s", p);
        cr_assert(S_ISDIR(st.st_mode));
    }
    cr_assert_eq(getxattr(dir, IDS_XATTR_ID, idbuf, sizeof(idbuf)), 16);
    ids_id_decode(idbuf, &root);
    cr_assert_eq(root.hi, 0);
    cr_assert_eq(root.lo, 1);
}

Test(stamp, check_refuses_other_volume_or_brick)
{
    struct stamp s;
    char err[256];

    cr_assert_eq(stamp_init_dir(dir, "upload", 1, &s, err, sizeof(err)), 0);
    cr_assert_eq(stamp_check(&s, "other", 1, err, sizeof(err)), -EINVAL);
    cr_assert(strstr(err, "other") != NULL);
    cr_assert_eq(stamp_check(&s, "upload", 2, err, sizeof(err)), -EINVAL);
    cr_assert(strstr(err, "brick 1") != NULL);
}

Test(stamp, init_refuses_stamped_or_nonempty)
{
    struct stamp s;
    char err[256], p[300];
    int fd;

    cr_assert_eq(stamp_init_dir(dir, "upload", 1, &s, err, sizeof(err)), 0);
    cr_assert_eq(stamp_init_dir(dir, "upload", 1, &s, err, sizeof(err)), -EEXIST);
    teardown();
    setup();
    snprintf(p, sizeof(p), "%s/file", dir);
    fd = open(p, O_CREAT | O_WRONLY, 0644);
    cr_assert_geq(fd, 0);
    close(fd);
    cr_assert_eq(stamp_init_dir(dir, "upload", 1, &s, err, sizeof(err)),
                 -ENOTEMPTY);
    snprintf(p, sizeof(p), "%s/.replicafs", dir);
    cr_assert_neq(access(p, F_OK), 0, "nothing was created");
}

Test(stamp, load_of_unstamped_dir_is_enoent_with_hint)
{
    struct stamp s;
    char err[512];

    cr_assert_eq(stamp_load(dir, &s, err, sizeof(err)), -ENOENT);
    cr_assert(strstr(err, "--init") != NULL);
}
