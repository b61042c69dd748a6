/*
 * The volume file (INI, parsed with inih), the same on every node:
 *
 *   [volume]
 *   name = upload
 *   replica = 3
 *   secret-file = upload.key      ; relative to the volume file
 *   [brick.1]
 *   address = 10.0.0.11:7070
 *
 * Bricks are numbered 1..replica with no gaps; every brick needs an address.
 */
#ifndef RFS_COMMON_CONFIG_H
#define RFS_COMMON_CONFIG_H

#include <netinet/in.h>
#include <stdint.h>

#include "replicafs/proto.h"

#define RFS_KEY_SIZE 32

struct vol_brick {
    char host[256];         /* as written: IPv4 literal or host name */
    uint16_t port;
    struct sockaddr_in addr; /* resolved at load time */
};

struct vol_config {
    char name[PROTO_NAME_MAX + 1];
    unsigned replica;                 /* == nbricks */
    unsigned nbricks;
    struct vol_brick bricks[PROTO_MAX_BRICKS]; /* bricks[0] is brick.1 */
    char secret_path[4096];           /* resolved against the file's dir */
    uint8_t key[RFS_KEY_SIZE];        /* loaded from secret_path */
};

/*
 * Load and check a volume file, and the key it names.  On failure returns
 * -errno (-EINVAL for content errors) and, if err is non-NULL, writes a
 * one-line human message (with the line number where there is one) to
 * err[errlen].  *cfg is untouched on failure.
 */
int vol_config_load(const char *path, struct vol_config *cfg, char *err,
                    size_t errlen);

/* Parse "HOST:PORT" (IPv4 literal or resolvable name) into addr.  0 or
 * -EINVAL. */
int rfs_parse_addr(const char *s, struct sockaddr_in *addr);

/* The key file holds 64 hex digits and a newline (`replicafs keygen`).
 * 0, -errno from open/read, or -EINVAL for bad content. */
int rfs_key_load(const char *path, uint8_t key[RFS_KEY_SIZE]);
/* Write a new random key as hex + "\n" into out[65+1]. */
void rfs_key_generate_hex(char out[2 * RFS_KEY_SIZE + 2]);

#endif
