/*
 * Raw directory reading with getdents64(2), for the pool threads of READDIR
 * and HEAL_LIST: we need each entry's d_off as a resumable cookie, which
 * readdir(3) hides.  Header-only.
 */
#ifndef RFS_DAEMON_DENTS_H
#define RFS_DAEMON_DENTS_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <unistd.h>

#define DENTS_BUF (32u * 1024)

struct dents {
    int fd;                 /* owned: a private fd, so seeks do not race */
    long n;                 /* valid bytes in buf */
    long pos;               /* next entry in buf */
    union {
        char buf[DENTS_BUF];
        struct dirent64 align_;
    };
};

/* Open a private fd on dirfd's directory positioned at cookie.  0/-errno. */
static inline int dents_open(struct dents *d, int dirfd, uint64_t cookie)
{
    d->n = d->pos = 0;
    d->fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d->fd < 0)
        return -errno;
    if (cookie && lseek(d->fd, (off_t)cookie, SEEK_SET) < 0) {
        int rc = -errno;

        close(d->fd);
        d->fd = -1;
        return rc;
    }
    return 0;
}

/* 1 with *de (valid until the next call), 0 at the end, or -errno. */
static inline int dents_next(struct dents *d, struct dirent64 **de)
{
    if (d->pos >= d->n) {
        ssize_t n = getdents64(d->fd, d->buf, sizeof(d->buf));

        if (n < 0)
            return -errno;
        if (n == 0)
            return 0;
        d->n = n;
        d->pos = 0;
    }
    *de = (struct dirent64 *)(void *)(d->buf + d->pos);
    d->pos += (*de)->d_reclen;
    return 1;
}

static inline void dents_close(struct dents *d)
{
    if (d->fd >= 0)
        close(d->fd);
    d->fd = -1;
}

static inline bool dents_is_dot(const char *name)
{
    return name[0] == '.' &&
           (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

#endif
