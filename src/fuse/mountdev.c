/*
 * mountdev: the kernel's device numbers of our FUSE mount, and what hangs
 * off them: the fusectl connection (guard.c) and the backing device's
 * readahead.
 *
 * Why readahead: the kernel gives a FUSE mount 128 KiB of readahead, so a
 * cold sequential read arrives as 128 KiB READs, one round trip to a brick
 * each.  256 KiB read a cold 512 MiB file a third faster here; 1 and 2 MiB
 * were no better than 128 KiB on a quiet machine, as fewer, larger READs
 * overlap less (docs/performance.md, finding 6).  The kernel does not let
 * the FUSE INIT reply raise it, but root may, per mount, through
 * /sys/class/bdi/MAJ:MIN/read_ahead_kb.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fuse/fs.h"

/* Unescape mountinfo's octal escapes (\040 for a space) in place. */
static void unescape(char *s)
{
    char *w = s;

    for (; *s; s++) {
        if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' &&
            s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
            *w++ = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
            s += 3;
        } else {
            *w++ = *s;
        }
    }
    *w = '\0';
}

/*
 * The device numbers of the FUSE mount on mountpoint, from
 * /proc/self/mountinfo (the last such mount: ours, just made).  Never
 * stat() the mount point: this process answers its requests, and the loop
 * is not running yet.  0 or -errno.
 */
int mount_dev(const char *mountpoint, unsigned *maj, unsigned *min)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    char line[4096];
    int rc = -ENOENT;

    if (!f)
        return -errno;
    while (fgets(line, sizeof(line), f)) {
        char mp[4096], *sep;
        unsigned a, b;

        /* id parent major:minor root mountpoint ... - fstype ... */
        if (sscanf(line, "%*u %*u %u:%u %*s %4095s", &a, &b, mp) != 3)
            continue;
        sep = strstr(line, " - ");
        if (!sep || strncmp(sep + 3, "fuse", 4))
            continue;
        unescape(mp);
        if (strcmp(mp, mountpoint))
            continue;
        *maj = a;
        *min = b;
        rc = 0;
    }
    fclose(f);
    return rc;
}

int mount_set_readahead(const char *mountpoint, unsigned kb)
{
    char path[96], val[16];
    unsigned maj, min;
    int fd, rc, n;

    rc = mount_dev(mountpoint, &maj, &min);
    if (rc < 0)
        return rc;
    snprintf(path, sizeof(path), "/sys/class/bdi/%u:%u/read_ahead_kb", maj,
             min);
    fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    n = snprintf(val, sizeof(val), "%u", kb);
    rc = write(fd, val, (size_t)n) == n ? 0 : -errno;
    close(fd);
    return rc;
}
