/*
 * Brick stamp: parse, format, load, check and --init (see stamp.h).
 *
 * Invariants:
 *  1. A stamp file is written only by stamp_init_dir(), complete and fsynced
 *     before it is renamed into place, so a crash leaves either no stamp or
 *     a whole one.
 *  2. stamp_init_dir() only stamps a directory with no entries at all, and
 *     never overwrites a stamp.
 *  3. The layout under .replicafs/ exists before the stamp does: a stamped
 *     brick always has ids/00..ff, heal/ and tmp/.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "common/id.h"
#include "ids.h"
#include "stamp.h"

#define STAMP_MAX 4096

static void say(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void say(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!err || !errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static char *trim(char *s)
{
    char *e;

    while (*s == ' ' || *s == '\t')
        s++;
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
        *--e = '\0';
    return s;
}

enum { HAVE_VOLUME = 1, HAVE_BRICK = 2, HAVE_UUID = 4, HAVE_CREATED = 8 };

static int parse_kv(const char *key, const char *val, struct stamp *s,
                    unsigned *have)
{
    char *end;
    unsigned long n;
    struct rfs_id u;
    unsigned bit;

    if (strcmp(key, "volume") == 0) {
        bit = HAVE_VOLUME;
        if (!*val || strlen(val) > PROTO_NAME_MAX)
            return -EINVAL;
        strcpy(s->volume, val);
    } else if (strcmp(key, "brick") == 0) {
        bit = HAVE_BRICK;
        errno = 0;
        n = strtoul(val, &end, 10);
        if (errno || *end || end == val || n < 1 || n > PROTO_MAX_BRICKS)
            return -EINVAL;
        s->brick = (unsigned)n;
    } else if (strcmp(key, "uuid") == 0) {
        bit = HAVE_UUID;
        if (strlen(val) != RFS_ID_HEX_LEN || rfs_id_from_hex(val, &u) < 0)
            return -EINVAL;
        s->uuid_hi = u.hi;
        s->uuid_lo = u.lo;
    } else if (strcmp(key, "created") == 0) {
        bit = HAVE_CREATED;
        snprintf(s->created, sizeof(s->created), "%s", val);
    } else {
        return 0; /* unknown key: a newer daemon's; ignore */
    }
    if (*have & bit)
        return -EINVAL;
    *have |= bit;
    return 0;
}

int stamp_parse(const char *text, size_t len, struct stamp *out)
{
    struct stamp s = {0};
    unsigned have = 0;
    char *copy, *line, *save = NULL;
    int rc = 0;

    if (len > STAMP_MAX || memchr(text, '\0', len))
        return -EINVAL;
    copy = strndup(text, len);
    if (!copy)
        return -ENOMEM;
    for (line = strtok_r(copy, "\n", &save); line && rc == 0;
         line = strtok_r(NULL, "\n", &save)) {
        char *eq, *t = trim(line);

        if (!*t || *t == '#')
            continue;
        eq = strchr(t, '=');
        if (!eq) {
            rc = -EINVAL;
            break;
        }
        *eq = '\0';
        rc = parse_kv(trim(t), trim(eq + 1), &s, &have);
    }
    free(copy);
    if (rc == 0 && (have & (HAVE_VOLUME | HAVE_BRICK | HAVE_UUID)) !=
                       (HAVE_VOLUME | HAVE_BRICK | HAVE_UUID))
        rc = -EINVAL;
    if (rc == 0)
        *out = s;
    return rc;
}

int stamp_format(const struct stamp *s, char *buf, size_t cap)
{
    struct rfs_id u = {s->uuid_hi, s->uuid_lo};
    char hex[RFS_ID_HEX_LEN + 1];
    int n;

    rfs_id_to_hex(&u, hex);
    n = snprintf(buf, cap, "volume = %s\nbrick = %u\nuuid = %s\ncreated = %s\n",
                 s->volume, s->brick, hex, s->created);
    if (n < 0 || (size_t)n >= cap)
        return -ENOSPC;
    return n;
}

static ssize_t read_all(int fd, char *buf, size_t cap)
{
    size_t got = 0;

    while (got < cap) {
        ssize_t n = read(fd, buf + got, cap - got);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

int stamp_load(const char *dir, struct stamp *s, char *err, size_t errlen)
{
    char path[4200], buf[STAMP_MAX + 1];
    ssize_t n;
    int fd, rc;

    snprintf(path, sizeof(path), "%s/.replicafs/" STAMP_FILE, dir);
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        rc = -errno;
        if (rc == -ENOENT)
            say(err, errlen, "%s is not a replicafs brick (no %s); "
                "use --init to stamp an empty directory", dir, path);
        else
            say(err, errlen, "cannot open %s: %s", path, strerror(-rc));
        return rc;
    }
    n = read_all(fd, buf, sizeof(buf));
    close(fd);
    if (n < 0) {
        say(err, errlen, "cannot read %s: %s", path, strerror((int)-n));
        return (int)n;
    }
    rc = (size_t)n > STAMP_MAX ? -EINVAL : stamp_parse(buf, (size_t)n, s);
    if (rc < 0)
        say(err, errlen, "%s: malformed stamp", path);
    return rc;
}

int stamp_check(const struct stamp *s, const char *volume, unsigned brick,
                char *err, size_t errlen)
{
    if (strcmp(s->volume, volume) != 0) {
        say(err, errlen, "directory is stamped for volume '%s', not '%s'",
            s->volume, volume);
        return -EINVAL;
    }
    if (s->brick != brick) {
        say(err, errlen, "directory is stamped as brick %u, not brick %u",
            s->brick, brick);
        return -EINVAL;
    }
    return 0;
}

/* -ENOTEMPTY if dirfd has any entry but "." and "..". */
static int check_empty(int dirfd)
{
    int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct dirent *de;
    DIR *d;
    int rc = 0;

    if (fd < 0)
        return -errno;
    d = fdopendir(fd);
    if (!d) {
        rc = -errno;
        close(fd);
        return rc;
    }
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
            rc = -ENOTEMPTY;
            break;
        }
    }
    closedir(d);
    return rc;
}

static void unmake_layout(int rootfd)
{
    char p[64];

    for (unsigned i = 0; i < 256; i++) {
        snprintf(p, sizeof(p), ".replicafs/ids/%02x", i);
        unlinkat(rootfd, p, AT_REMOVEDIR);
    }
    unlinkat(rootfd, ".replicafs/tmp/" STAMP_FILE ".new", 0);
    unlinkat(rootfd, ".replicafs/ids", AT_REMOVEDIR);
    unlinkat(rootfd, ".replicafs/heal", AT_REMOVEDIR);
    unlinkat(rootfd, ".replicafs/tmp", AT_REMOVEDIR);
    unlinkat(rootfd, ".replicafs", AT_REMOVEDIR);
}

static int make_layout(int rootfd)
{
    const char *dirs[] = {".replicafs", ".replicafs/ids", ".replicafs/heal",
                          ".replicafs/tmp"};
    char p[64];

    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
        if (mkdirat(rootfd, dirs[i], 0700) < 0)
            return -errno;
    for (unsigned i = 0; i < 256; i++) {
        snprintf(p, sizeof(p), ".replicafs/ids/%02x", i);
        if (mkdirat(rootfd, p, 0700) < 0)
            return -errno;
    }
    return 0;
}

static int fsync_at(int dirfd, const char *path)
{
    int fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
    int rc = 0;

    if (fd < 0)
        return -errno;
    if (fsync(fd) < 0)
        rc = -errno;
    close(fd);
    return rc;
}

static int write_stamp(int rootfd, const struct stamp *s)
{
    const char *tmp = ".replicafs/tmp/" STAMP_FILE ".new";
    char buf[STAMP_MAX];
    int n = stamp_format(s, buf, sizeof(buf));
    int fd, rc = 0;

    if (n < 0)
        return n;
    fd = openat(rootfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    /* fsync before rename: invariant 1, never a torn stamp. */
    if (write(fd, buf, (size_t)n) != n || fsync(fd) < 0)
        rc = errno ? -errno : -EIO;
    close(fd);
    if (rc == 0 && renameat(rootfd, tmp, rootfd, ".replicafs/" STAMP_FILE) < 0)
        rc = -errno;
    if (rc == 0)
        rc = fsync_at(rootfd, ".replicafs");
    if (rc == 0)
        rc = fsync_at(rootfd, ".");
    return rc;
}

static void new_stamp(struct stamp *s, const char *volume, unsigned brick)
{
    uint64_t u[2] = {0, 0};
    time_t now = time(NULL);
    struct tm tm;

    memset(s, 0, sizeof(*s));
    snprintf(s->volume, sizeof(s->volume), "%s", volume);
    s->brick = brick;
    if (getrandom(u, sizeof(u), 0) != sizeof(u)) { /* fallback: time + pid */
        u[0] = (uint64_t)now ^ ((uint64_t)getpid() << 32);
        u[1] = (uint64_t)clock();
    }
    s->uuid_hi = u[0];
    s->uuid_lo = u[1] | 1; /* never all zero */
    gmtime_r(&now, &tm);
    strftime(s->created, sizeof(s->created), "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int stamp_init_dir(const char *dir, const char *volume, unsigned brick,
                   struct stamp *out, char *err, size_t errlen)
{
    struct rfs_id root = RFS_ROOT_ID;
    uint8_t idbuf[16];
    struct stamp s;
    struct stat st;
    int rootfd, rc;

    rootfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0) {
        rc = -errno;
        say(err, errlen, "cannot open directory %s: %s", dir, strerror(-rc));
        return rc;
    }
    if (fstatat(rootfd, ".replicafs/" STAMP_FILE, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        say(err, errlen, "%s is already a stamped brick; refusing to --init it",
            dir);
        rc = -EEXIST;
        goto out_close;
    }
    rc = check_empty(rootfd);
    if (rc < 0) {
        say(err, errlen, "%s: %s; --init only stamps an empty directory", dir,
            rc == -ENOTEMPTY ? "directory is not empty" : strerror(-rc));
        goto out_close;
    }
    new_stamp(&s, volume, brick);
    ids_id_encode(&root, idbuf);
    rc = make_layout(rootfd);
    if (rc == 0 && fsetxattr(rootfd, IDS_XATTR_ID, idbuf, sizeof(idbuf), 0) < 0)
        rc = -errno;
    if (rc == 0)
        rc = write_stamp(rootfd, &s);
    if (rc < 0) {
        say(err, errlen, "cannot stamp %s: %s", dir, strerror(-rc));
        unmake_layout(rootfd);
        goto out_close;
    }
    if (out)
        *out = s;
out_close:
    close(rootfd);
    return rc;
}
