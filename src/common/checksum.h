/* Block checksums: xxh3-64 over fixed blocks (used by heal and verify). */
#ifndef RFS_COMMON_CHECKSUM_H
#define RFS_COMMON_CHECKSUM_H

#include <stddef.h>
#include <stdint.h>

#define RFS_CSUM_BLOCK (128u * 1024)

uint64_t rfs_xxh3(const void *data, size_t len);

#endif
