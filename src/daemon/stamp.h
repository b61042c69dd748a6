/*
 * The brick stamp: .replicafs/stamp says which volume and brick number a
 * directory belongs to, and carries a uuid that changes when a disk is
 * replaced.  Text, "key = value" lines:
 *
 *   volume = upload
 *   brick = 2
 *   uuid = 0f3c...(32 hex)
 *   created = 2024-05-01T12:00:00Z
 *
 * The daemon serves only a directory stamped for its volume and brick, so
 * that a disk that failed to mount (an empty mount point) is never filled
 * from scratch by mistake.
 */
#ifndef RFS_DAEMON_STAMP_H
#define RFS_DAEMON_STAMP_H

#include <stddef.h>
#include <stdint.h>

#include "replicafs/proto.h"

#define STAMP_FILE "stamp"

struct stamp {
    char volume[PROTO_NAME_MAX + 1];
    unsigned brick;           /* 1-based */
    uint64_t uuid_hi;
    uint64_t uuid_lo;
    char created[32];         /* ISO 8601 UTC, informational */
};

/* Parse stamp text (len bytes).  0, or -EINVAL for a missing/bad/duplicate
 * key or a malformed line (unknown keys are ignored for forward
 * compatibility).  *s untouched on failure. */
int stamp_parse(const char *text, size_t len, struct stamp *s);
/* Format s into buf; returns the length or -ENOSPC. */
int stamp_format(const struct stamp *s, char *buf, size_t cap);

/*
 * Read <dir>/.replicafs/stamp.  0; -ENOENT if the directory is not stamped;
 * -EINVAL if the stamp is malformed; other -errno.  A human message goes to
 * err[errlen] on failure.
 */
int stamp_load(const char *dir, struct stamp *s, char *err, size_t errlen);

/* 0 if s is for this volume and brick, else -EINVAL with a message. */
int stamp_check(const struct stamp *s, const char *volume, unsigned brick,
                char *err, size_t errlen);

/*
 * --init: make the empty directory dir brick `brick` of `volume`: create
 * .replicafs/{ids/00..ff,heal,tmp}, give the root trusted.rfs.id = root id,
 * write the stamp (fsynced, via tmp + rename) with a fresh uuid.
 * -ENOTEMPTY if dir has any entry, -EEXIST if it is already stamped, other
 * -errno; message in err.  *out (may be NULL) gets the new stamp.
 */
int stamp_init_dir(const char *dir, const char *volume, unsigned brick,
                   struct stamp *out, char *err, size_t errlen);

#endif
