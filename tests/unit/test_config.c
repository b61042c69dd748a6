/* Volume file and key file loading: the format in config.h and design.md is
 * a contract with admins, so every rule gets a test. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/auth.h"
#include "common/config.h"

#define KEY_HEX "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

static char dir[64];

static void put_file(const char *name, const char *text)
{
    char path[256];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

static void setup(void)
{
    char sub[128];

    strcpy(dir, "/tmp/rfs-test-config-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(sub, sizeof(sub), "%s/sub", dir);
    cr_assert_eq(mkdir(sub, 0700), 0);
    put_file("upload.key", KEY_HEX "\n");
    cr_assert_eq(auth_init(), 0);
}

static int rm_one(const char *p, const struct stat *sb, int flag,
                  struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void teardown(void)
{
    nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

TestSuite(config, .init = setup, .fini = teardown);

static const char good[] =
    "[volume]\n"
    "name = upload\n"
    "replica = 3                ; copies of each file\n"
    "secret-file = upload.key   ; relative to this file\n"
    "\n"
    "# a comment\n"
    "[brick.1]\n"
    "address = 127.0.0.1:7070\n"
    "[brick.2]\n"
    "address = 127.0.0.2:7071\n"
    "[brick.3]\n"
    "address = localhost:7072\n";

/* Load text as <dir>/upload.vol; returns the rc, message in err. */
static int load(const char *text, struct vol_config *cfg, char *err,
                size_t errlen)
{
    char path[256];

    put_file("upload.vol", text);
    snprintf(path, sizeof(path), "%s/upload.vol", dir);
    return vol_config_load(path, cfg, err, errlen);
}

/* Expect -EINVAL with a message containing each of the given strings. */
static void expect_err(const char *text, const char *want1, const char *want2)
{
    struct vol_config cfg;
    char err[512];

    memset(&cfg, 0x5a, sizeof(cfg));
    int rc = load(text, &cfg, err, sizeof(err));
    cr_assert_eq(rc, -EINVAL, "rc %d for:\n%s", rc, text);
    cr_assert(strstr(err, want1) != NULL, "message '%s' lacks '%s'", err,
              want1);
    if (want2)
        cr_assert(strstr(err, want2) != NULL, "message '%s' lacks '%s'", err,
                  want2);
    for (size_t i = 0; i < sizeof(cfg); i++)
        cr_assert_eq(((uint8_t *)&cfg)[i], 0x5a, "cfg untouched on failure");
}

Test(config, good_file_loads)
{
    struct vol_config cfg;
    char err[256] = "x", want[256];

    cr_assert_eq(load(good, &cfg, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(err, "");
    cr_assert_str_eq(cfg.name, "upload");
    cr_assert_eq(cfg.replica, 3);
    cr_assert_eq(cfg.nbricks, 3);
    cr_assert_str_eq(cfg.bricks[0].host, "127.0.0.1");
    cr_assert_eq(cfg.bricks[0].port, 7070);
    cr_assert_eq(cfg.bricks[0].addr.sin_family, AF_INET);
    cr_assert_eq(ntohs(cfg.bricks[0].addr.sin_port), 7070);
    cr_assert_eq(ntohl(cfg.bricks[0].addr.sin_addr.s_addr), 0x7f000001);
    cr_assert_eq(ntohl(cfg.bricks[1].addr.sin_addr.s_addr), 0x7f000002);
    cr_assert_str_eq(cfg.bricks[2].host, "localhost");
    cr_assert_eq(cfg.bricks[2].port, 7072);
    cr_assert_eq(ntohl(cfg.bricks[2].addr.sin_addr.s_addr) >> 24, 127);
    snprintf(want, sizeof(want), "%s/upload.key", dir);
    cr_assert_str_eq(cfg.secret_path, want);
    for (int i = 0; i < RFS_KEY_SIZE; i++)
        cr_assert_eq(cfg.key[i], i);
}

Test(config, bricks_in_any_order_and_replica_one)
{
    struct vol_config cfg;
    char err[256];

    cr_assert_eq(load("[brick.2]\naddress=10.0.0.2:1\n"
                      "[volume]\nname=v\nreplica=2\nsecret-file=upload.key\n"
                      "[brick.1]\naddress=10.0.0.1:65535\n",
                      &cfg, err, sizeof(err)),
                 0, "%s", err);
    cr_assert_eq(cfg.nbricks, 2);
    cr_assert_eq(cfg.bricks[0].port, 65535);
    cr_assert_eq(cfg.bricks[1].port, 1);
    cr_assert_eq(load("[volume]\nname=v\nreplica=1\nsecret-file=upload.key\n"
                      "[brick.1]\naddress=10.0.0.1:7070\n",
                      &cfg, err, sizeof(err)),
                 0, "%s", err);
    cr_assert_eq(cfg.nbricks, 1);
}

Test(config, sixteen_bricks)
{
    char text[4096];
    size_t n = 0;
    struct vol_config cfg;
    char err[256];

    n += (size_t)snprintf(text + n, sizeof(text) - n,
                          "[volume]\nname=v\nreplica=16\nsecret-file=upload.key\n");
    for (int i = 1; i <= 16; i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n,
                              "[brick.%d]\naddress=10.0.0.%d:7070\n", i, i);
    cr_assert_eq(load(text, &cfg, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(cfg.nbricks, 16);
    cr_assert_eq(ntohl(cfg.bricks[15].addr.sin_addr.s_addr) & 0xff, 16);
}

Test(config, unknown_key_names_line)
{
    expect_err("[volume]\nname = upload\nreplica = 1\ncolour = blue\n"
               "secret-file = upload.key\n[brick.1]\naddress = 1.2.3.4:5\n",
               "upload.vol:4:", "colour");
    expect_err("[volume]\nname=v\nreplica=1\nsecret-file=upload.key\n"
               "[brick.1]\naddress=1.2.3.4:5\nport=7\n",
               ":7:", "port");
}

Test(config, unknown_section_names_line_even_when_empty)
{
    expect_err("[volume]\nname=v\nreplica=1\nsecret-file=upload.key\n"
               "[brick.1]\naddress=1.2.3.4:5\n[extra]\n",
               ":7:", "[extra]");
    expect_err("[volume]\nname=v\nreplica=1\nsecret-file=upload.key\n"
               "  [Volume]\nname=x\n",
               ":5:", "[Volume]");
    const char *bad[] = {"brick.0", "brick.17", "brick.01", "brick.", "brick.1x",
                         "brick", "bricks.1", "brick.99999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[256];
        snprintf(text, sizeof(text),
                 "[volume]\nname=v\nreplica=1\nsecret-file=upload.key\n"
                 "[brick.1]\naddress=1.2.3.4:5\n[%s]\naddress=1.2.3.4:6\n",
                 bad[i]);
        expect_err(text, ":7:", bad[i]);
    }
}

Test(config, key_outside_section)
{
    expect_err("name = v\n[volume]\n", ":1:", "outside");
}

Test(config, syntax_error_names_line)
{
    expect_err("[volume]\nname=v\nthis line has no equals sign\n", ":3:",
               "syntax");
}

Test(config, duplicate_keys)
{
    expect_err("[volume]\nname=v\nname=w\n", ":3:", "duplicate");
    expect_err("[volume]\nname=v\nreplica=1\nsecret-file=upload.key\n"
               "[brick.1]\naddress=1.2.3.4:5\n[brick.1]\naddress=1.2.3.4:6\n",
               ":8:", "duplicate");
}

Test(config, replica_must_match_bricks)
{
    expect_err("[volume]\nname=v\nreplica=3\nsecret-file=upload.key\n"
               "[brick.1]\naddress=1.2.3.4:5\n[brick.2]\naddress=1.2.3.4:6\n",
               "replica = 3", "2 brick");
    expect_err("[volume]\nname=v\nreplica=1\nsecret-file=upload.key\n"
               "[brick.1]\naddress=1.2.3.4:5\n[brick.2]\naddress=1.2.3.4:6\n",
               "replica = 1", NULL);
    expect_err("[volume]\nname=v\nreplica=2\nsecret-file=upload.key\n"
               "[brick.1]\naddress=1.2.3.4:5\n[brick.3]\naddress=1.2.3.4:6\n",
               "brick.2 is missing", NULL);
    expect_err("[volume]\nname=v\nreplica=1\nsecret-file=upload.key\n",
               "0 brick", NULL);
}

Test(config, replica_range)
{
    const char *bad[] = {"0", "17", "-1", "3x", "", " ", "0x3", "99999999999999"};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[256];
        snprintf(text, sizeof(text),
                 "[volume]\nname=v\nreplica=%s\nsecret-file=upload.key\n"
                 "[brick.1]\naddress=1.2.3.4:5\n",
                 bad[i]);
        expect_err(text, ":3:", "replica");
    }
}

Test(config, required_keys)
{
    expect_err("[volume]\nreplica=1\nsecret-file=upload.key\n"
               "[brick.1]\naddress=1.2.3.4:5\n",
               "no 'name'", NULL);
    expect_err("[volume]\nname=v\nsecret-file=upload.key\n"
               "[brick.1]\naddress=1.2.3.4:5\n",
               "no 'replica'", NULL);
    expect_err("[volume]\nname=v\nreplica=1\n[brick.1]\naddress=1.2.3.4:5\n",
               "no 'secret-file'", NULL);
    expect_err("", "no 'name'", NULL);
}

Test(config, bad_volume_names)
{
    const char *bad[] = {"a/b", ".", ".."};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[256];
        snprintf(text, sizeof(text),
                 "[volume]\nname=%s\nreplica=1\nsecret-file=upload.key\n"
                 "[brick.1]\naddress=1.2.3.4:5\n",
                 bad[i]);
        expect_err(text, ":2:", "volume name");
    }
}

Test(config, bad_addresses)
{
    const char *bad[] = {"1.2.3.4",       "1.2.3.4:",     "1.2.3.4:0",
                         "1.2.3.4:65536", ":7070",        "1.2.3.4:70x",
                         "1.2.3.4:-1",    "no-such-host.invalid:7070"};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[256];
        snprintf(text, sizeof(text),
                 "[volume]\nname=v\nreplica=1\nsecret-file=upload.key\n"
                 "[brick.1]\naddress=%s\n",
                 bad[i]);
        expect_err(text, ":6:", "address");
    }
}

Test(config, parse_addr)
{
    struct sockaddr_in a, keep;

    cr_assert_eq(rfs_parse_addr("10.1.2.3:7070", &a), 0);
    cr_assert_eq(a.sin_family, AF_INET);
    cr_assert_eq(ntohl(a.sin_addr.s_addr), 0x0a010203);
    cr_assert_eq(ntohs(a.sin_port), 7070);
    memset(&keep, 0x44, sizeof(keep));
    a = keep;
    cr_assert_eq(rfs_parse_addr("10.1.2.3", &a), -EINVAL);
    cr_assert_eq(rfs_parse_addr("10.1.2.3:99999", &a), -EINVAL);
    cr_assert(memcmp(&a, &keep, sizeof(a)) == 0, "untouched on failure");
}

Test(config, secret_file_paths)
{
    struct vol_config cfg;
    char err[512], text[512], want[256];

    /* relative to the volume file's directory, not to the cwd */
    put_file("sub/k.key", KEY_HEX);
    cr_assert_eq(chdir("/"), 0);
    cr_assert_eq(load("[volume]\nname=v\nreplica=1\nsecret-file=sub/k.key\n"
                      "[brick.1]\naddress=1.2.3.4:5\n",
                      &cfg, err, sizeof(err)),
                 0, "%s", err);
    snprintf(want, sizeof(want), "%s/sub/k.key", dir);
    cr_assert_str_eq(cfg.secret_path, want);
    /* absolute */
    snprintf(text, sizeof(text),
             "[volume]\nname=v\nreplica=1\nsecret-file=%s/sub/k.key\n"
             "[brick.1]\naddress=1.2.3.4:5\n",
             dir);
    cr_assert_eq(load(text, &cfg, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(cfg.secret_path, want);
    /* missing key file: the errno, and the resolved path in the message */
    memset(&cfg, 0x5a, sizeof(cfg));
    cr_assert_eq(load("[volume]\nname=v\nreplica=1\nsecret-file=nope.key\n"
                      "[brick.1]\naddress=1.2.3.4:5\n",
                      &cfg, err, sizeof(err)),
                 -ENOENT);
    cr_assert(strstr(err, "nope.key") != NULL, "%s", err);
    cr_assert_eq(((uint8_t *)&cfg)[0], 0x5a);
}

Test(config, missing_volume_file)
{
    struct vol_config cfg;
    char err[256];

    cr_assert_eq(vol_config_load("/nonexistent/x.vol", &cfg, err, sizeof(err)),
                 -ENOENT);
    cr_assert(strstr(err, "/nonexistent/x.vol") != NULL);
    cr_assert_eq(vol_config_load("/nonexistent/x.vol", &cfg, NULL, 0), -ENOENT);
}

Test(config, key_file_format)
{
    uint8_t key[RFS_KEY_SIZE], keep[RFS_KEY_SIZE];
    char path[256];
    struct {
        const char *text;
        int rc;
    } cases[] = {
        {KEY_HEX "\n", 0},
        {KEY_HEX, 0},
        {"000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F\n", 0},
        {KEY_HEX "\n\n", -EINVAL},
        {KEY_HEX "0", -EINVAL},
        {KEY_HEX " ", -EINVAL},
        {KEY_HEX "\r\n", -EINVAL},
        {"00" KEY_HEX, -EINVAL},
        {"0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n",
         -EINVAL}, /* 62 digits */
        {"zz0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
         -EINVAL},
        {"", -EINVAL},
        {"\n", -EINVAL},
    };

    snprintf(path, sizeof(path), "%s/t.key", dir);
    memset(keep, 0x77, sizeof(keep));
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        put_file("t.key", cases[i].text);
        memcpy(key, keep, sizeof(key));
        cr_assert_eq(rfs_key_load(path, key), cases[i].rc, "case %zu", i);
        if (cases[i].rc == 0) {
            for (int j = 0; j < RFS_KEY_SIZE; j++)
                cr_assert_eq(key[j], j);
        } else {
            cr_assert(memcmp(key, keep, sizeof(key)) == 0, "untouched");
        }
    }
    cr_assert_eq(rfs_key_load("/nonexistent/key", key), -ENOENT);
    cr_assert_eq(rfs_key_load(dir, key), -EISDIR);
}

Test(config, generated_key_loads)
{
    char hex[2 * RFS_KEY_SIZE + 2], hex2[2 * RFS_KEY_SIZE + 2], path[256];
    uint8_t key[RFS_KEY_SIZE];

    rfs_key_generate_hex(hex);
    rfs_key_generate_hex(hex2);
    cr_assert_eq(strlen(hex), 65);
    cr_assert_eq(hex[64], '\n');
    cr_assert_str_neq(hex, hex2);
    put_file("gen.key", hex);
    snprintf(path, sizeof(path), "%s/gen.key", dir);
    cr_assert_eq(rfs_key_load(path, key), 0);
    char back[65];
    for (int i = 0; i < RFS_KEY_SIZE; i++)
        snprintf(back + 2 * i, 3, "%02x", key[i]);
    cr_assert(memcmp(back, hex, 64) == 0);
}

Test(config, long_error_messages_are_truncated_safely)
{
    struct vol_config cfg;
    char err[8];

    memset(err, 'Z', sizeof(err));
    cr_assert_eq(load("[volume]\nbogus=1\n", &cfg, err, sizeof(err)), -EINVAL);
    cr_assert(memchr(err, '\0', sizeof(err)) != NULL);
}
