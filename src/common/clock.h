/*
 * The monotonic clock in the units callers want: one place for the
 * clock_gettime arithmetic (deadlines, elapsed times in logs and output).
 */
#ifndef RFS_COMMON_CLOCK_H
#define RFS_COMMON_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static inline uint64_t mono_ms(void)
{
    return mono_us() / 1000u;
}

static inline double mono_s(void)
{
    return (double)mono_us() / 1e6;
}

#endif
