/*
 * Command line of mount.replicafs.
 *
 *   mount.replicafs VOLFILE MOUNTPOINT [-o OPT[,OPT...]] [-f] [-d]
 *
 * mount(8) runs /sbin/mount.replicafs this way for `mount -t replicafs` and
 * for fstab lines (it may add -n, -s, -v, which are accepted and ignored).
 * Each -o option is one of:
 *   ours         ping-timeout=S, prefer-brick=N, readahead=KIB, self-heal,
 *                noleases, nonamecache, attr_timeout=S,
 *                entry_timeout=S, log=error|warn|info|debug
 *   FUSE's       allow_other, allow_root, default_permissions, auto_unmount,
 *                max_read=N, fsname=, subtype= (passed to libfuse)
 *   the kernel's rw, ro, suid, nosuid, dev, nodev, exec, noexec, async,
 *                sync, atime, noatime, dirsync (passed to libfuse, which
 *                turns them into mount flags)
 *   mount(8)'s   defaults, auto, noauto, _netdev, nofail, user, users,
 *                nouser, owner, group, comment=..., x-... (ignored: they
 *                are for mount(8) and fstab, not for the filesystem)
 * Anything else is refused with a message: silently dropping an option the
 * admin believes is in force is worse than failing the mount.
 *
 * default_permissions is always on: the bricks run as root, so the kernel
 * is what checks permissions (docs/client.md).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuse/fs.h"

#define DEFAULT_PING_MS 5000u
#define DEFAULT_READAHEAD_KB 256u /* the fastest measured (mountdev.c) */

static const char *const pass_fuse[] = {
    "allow_other", "allow_root", "default_permissions", "auto_unmount",
    "rw", "ro", "suid", "nosuid", "dev", "nodev", "exec", "noexec",
    "async", "sync", "atime", "noatime", "dirsync", NULL,
};
static const char *const pass_fuse_prefix[] = {
    "max_read=", "fsname=", "subtype=", NULL,
};
static const char *const ignore_exact[] = {
    "defaults", "auto", "noauto", "_netdev", "nofail", "user", "users",
    "nouser", "owner", "group", "relatime", "norelatime", "strictatime",
    "nostrictatime", "lazytime", "nolazytime", "diratime", "nodiratime",
    "loud", "silent", NULL,
};
static const char *const ignore_prefix[] = {"comment=", "x-", NULL};

static bool in_list(const char *s, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(s, *list) == 0)
            return true;
    return false;
}

static bool has_prefix(const char *s, const char *const *list)
{
    for (; *list; list++)
        if (strncmp(s, *list, strlen(*list)) == 0)
            return true;
    return false;
}

static int parse_seconds(const char *name, const char *v, double max,
                         double *out)
{
    char *end;
    double d;

    errno = 0;
    d = strtod(v, &end);
    if (errno || end == v || *end || d < 0 || d > max) {
        fprintf(stderr, "mount.replicafs: bad value for %s: '%s'\n", name, v);
        return -EINVAL;
    }
    *out = d;
    return 0;
}

static int add_fuse_opt(struct mount_opts *o, const char *opt)
{
    char *arg;
    int rc;

    if (asprintf(&arg, "-o%s", opt) < 0)
        return -ENOMEM;
    rc = fuse_opt_add_arg(&o->fargs, arg) < 0 ? -ENOMEM : 0;
    free(arg);
    return rc;
}

/* One option from -o. */
static int take_opt(struct mount_opts *o, const char *opt, bool *fsname)
{
    const char *eq = strchr(opt, '=');
    double d;
    int rc;

    if (!*opt)
        return 0;
    if (strncmp(opt, "ping-timeout=", 13) == 0) {
        rc = parse_seconds("ping-timeout", eq + 1, 3600, &d);
        if (rc == 0 && d < 0.1)
            rc = parse_seconds("ping-timeout (>= 0.1)", "x", 0, &d);
        if (rc == 0)
            o->ping_timeout_ms = (unsigned)(d * 1000);
        return rc;
    }
    if (strncmp(opt, "attr_timeout=", 13) == 0)
        return parse_seconds("attr_timeout", eq + 1, 86400, &o->attr_timeout);
    if (strncmp(opt, "entry_timeout=", 14) == 0)
        return parse_seconds("entry_timeout", eq + 1, 86400,
                             &o->entry_timeout);
    if (strncmp(opt, "prefer-brick=", 13) == 0) {
        char *end;
        long n = strtol(eq + 1, &end, 10);

        if (end == eq + 1 || *end || n < 0 || n > PROTO_MAX_BRICKS) {
            fprintf(stderr, "mount.replicafs: bad prefer-brick '%s'\n",
                    eq + 1);
            return -EINVAL;
        }
        o->prefer_brick = (unsigned)n;
        return 0;
    }
    if (strncmp(opt, "readahead=", 10) == 0) {
        char *end;
        long n = strtol(eq + 1, &end, 10);

        if (end == eq + 1 || *end || n < 0 || n > 65536) {
            fprintf(stderr, "mount.replicafs: bad readahead '%s' (KiB, "
                    "0..65536)\n", eq + 1);
            return -EINVAL;
        }
        o->readahead_kb = (unsigned)n;
        return 0;
    }
    if (strcmp(opt, "self-heal") == 0) {
        o->self_heal = true;
        return 0;
    }
    if (strcmp(opt, "noleases") == 0) {
        o->no_leases = true;
        return 0;
    }
    if (strcmp(opt, "nonamecache") == 0) {
        o->no_namecache = true;
        return 0;
    }
    if (strncmp(opt, "log=", 4) == 0) {
        static const char *const lv[] = {"error", "warn", "info", "debug"};

        for (unsigned i = 0; i < 4; i++)
            if (strcmp(opt + 4, lv[i]) == 0) {
                o->log_level = (enum log_level)i;
                return 0;
            }
        fprintf(stderr, "mount.replicafs: bad log level '%s'\n", opt + 4);
        return -EINVAL;
    }
    if (in_list(opt, ignore_exact) || has_prefix(opt, ignore_prefix))
        return 0;
    if (strcmp(opt, "ro") == 0)
        o->read_only = true;
    if (strcmp(opt, "rw") == 0)
        o->read_only = false;
    if (strncmp(opt, "fsname=", 7) == 0)
        *fsname = true;
    if (in_list(opt, pass_fuse) || has_prefix(opt, pass_fuse_prefix))
        return add_fuse_opt(o, opt);
    fprintf(stderr, "mount.replicafs: unknown option '%s'\n", opt);
    return -EINVAL;
}

static int take_opts(struct mount_opts *o, const char *list, bool *fsname)
{
    char *copy = strdup(list), *save = NULL, *tok;
    int rc = 0;

    if (!copy)
        return -ENOMEM;
    for (tok = strtok_r(copy, ",", &save); tok && rc == 0;
         tok = strtok_r(NULL, ",", &save))
        rc = take_opt(o, tok, fsname);
    free(copy);
    return rc;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mount.replicafs VOLFILE MOUNTPOINT [-o OPTIONS] [-f] "
            "[-d]\n"
            "  -f  stay in the foreground, log to stderr\n"
            "  -d  like -f, with debug logging\n"
            "options: ping-timeout=SEC (5), prefer-brick=N, readahead=KIB (256), "
            "self-heal,\n  noleases, nonamecache, attr_timeout=SEC "
            "(ping-timeout),\n"
            "  entry_timeout=SEC (ping-timeout), log=LEVEL, allow_other, ro, "
            "default_permissions,\n"
            "  and the usual mount flags (see docs/admin.md, Mounting)\n");
}

int mount_opts_parse(int argc, char **argv, struct mount_opts *o)
{
    const char *pos[2] = {NULL, NULL};
    unsigned npos = 0;
    bool fsname = false;
    char *buf;
    int rc = 0;

    memset(o, 0, sizeof(*o));
    /* Negative: not given; see below. */
    o->attr_timeout = -1;
    o->entry_timeout = -1;
    o->ping_timeout_ms = DEFAULT_PING_MS;
    o->readahead_kb = DEFAULT_READAHEAD_KB;
    o->log_level = LOG_LVL_INFO;
    if (fuse_opt_add_arg(&o->fargs, "mount.replicafs") < 0)
        return -ENOMEM;
    for (int i = 1; i < argc && rc == 0; i++) {
        const char *a = argv[i];

        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            mount_opts_free(o);
            return 1;
        }
        if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
            printf("mount.replicafs 0.1.0 (protocol %u)\n", PROTO_VERSION_MAX);
            mount_opts_free(o);
            return 1;
        }
        if (strcmp(a, "-f") == 0) {
            o->foreground = true;
        } else if (strcmp(a, "-d") == 0) {
            o->foreground = o->debug = true;
            o->log_level = LOG_LVL_DEBUG;
        } else if (strcmp(a, "-n") == 0 || strcmp(a, "-s") == 0 ||
                   strcmp(a, "-v") == 0) {
            /* from mount(8): no mtab, sloppy, verbose */
        } else if (strcmp(a, "-o") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "mount.replicafs: -o needs options\n");
                rc = -EINVAL;
            } else {
                rc = take_opts(o, argv[++i], &fsname);
            }
        } else if (strncmp(a, "-o", 2) == 0) {
            rc = take_opts(o, a + 2, &fsname);
        } else if (a[0] == '-') {
            fprintf(stderr, "mount.replicafs: unknown argument '%s'\n", a);
            rc = -EINVAL;
        } else if (npos < 2) {
            pos[npos++] = a;
        } else {
            fprintf(stderr, "mount.replicafs: too many arguments\n");
            rc = -EINVAL;
        }
    }
    if (rc == 0 && npos < 2) {
        usage(stderr);
        rc = -EINVAL;
    }
    for (unsigned i = 0; rc == 0 && i < 2; i++) {
        char *abs = realpath(pos[i], NULL);

        if (!abs) {
            fprintf(stderr, "mount.replicafs: %s: %s\n", pos[i],
                    strerror(errno));
            rc = -EINVAL;
        } else if (i == 0) {
            o->volfile = abs;
        } else {
            o->mountpoint = abs;
        }
    }
    /* The kernel may trust its caches this long because the bricks push
     * invalidations; a mount cut off from them must not be trusted
     * longer than it takes to notice (docs/performance.md, staleness). */
    if (o->attr_timeout < 0)
        o->attr_timeout = o->ping_timeout_ms / 1000.0;
    if (o->entry_timeout < 0)
        o->entry_timeout = o->ping_timeout_ms / 1000.0;
    if (rc == 0)
        rc = add_fuse_opt(o, "default_permissions");
    if (rc == 0 && !fsname) {
        if (asprintf(&buf, "fsname=%s", o->volfile) < 0) {
            rc = -ENOMEM;
        } else {
            /* libfuse's option parser treats ',' as a separator */
            for (char *p = buf; *p; p++)
                if (*p == ',')
                    *p = '_';
            rc = add_fuse_opt(o, buf);
            free(buf);
        }
    }
    if (rc == 0)
        rc = add_fuse_opt(o, "subtype=replicafs");
    if (rc < 0) {
        mount_opts_free(o);
        return -EINVAL;
    }
    return 0;
}

void mount_opts_free(struct mount_opts *o)
{
    free(o->volfile);
    free(o->mountpoint);
    o->volfile = o->mountpoint = NULL;
    fuse_opt_free_args(&o->fargs);
}
