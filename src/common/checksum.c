/* Block checksums: a thin wrapper so that callers do not depend on the
 * xxhash headers (and so the algorithm is named in one place). */
#include <xxhash.h>

#include "checksum.h"

uint64_t rfs_xxh3(const void *data, size_t len)
{
    return XXH3_64bits(data, len);
}
