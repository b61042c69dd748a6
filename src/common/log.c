/*
 * Logging to stderr or syslog.
 *
 * The sink is process state chosen once at start (like openlog(3)), so it is
 * the one non-const file-static here: threading a logger through every call
 * would buy nothing.  log_setup() must run before other threads start;
 * log_msg() is then thread-safe: each line goes out in one write(2), so lines
 * from different threads never interleave.
 *
 * stderr format: "2026-11-26T12:00:00.123Z replicafsd[1234] INFO message"
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static struct {
    const char *ident;   /* borrowed for the process's life */
    bool use_syslog;
    enum log_level max;
} sink = {"replicafs", false, LOG_LVL_INFO};

static const char *const level_name[] = {
    [LOG_LVL_ERR] = "ERROR",
    [LOG_LVL_WARN] = "WARN",
    [LOG_LVL_INFO] = "INFO",
    [LOG_LVL_DEBUG] = "DEBUG",
};

static const int level_prio[] = {
    [LOG_LVL_ERR] = LOG_ERR,
    [LOG_LVL_WARN] = LOG_WARNING,
    [LOG_LVL_INFO] = LOG_INFO,
    [LOG_LVL_DEBUG] = LOG_DEBUG,
};

void log_setup(const char *ident, bool use_syslog, enum log_level max)
{
    sink.ident = ident;
    sink.use_syslog = use_syslog;
    sink.max = max;
    if (use_syslog)
        openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

/* "2026-11-26T12:00:00.123Z" (24 chars) into out[32]. */
static void timestamp(char out[32])
{
    struct timespec ts;
    struct tm tm;
    size_t n;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03uZ",
             (unsigned)(ts.tv_nsec / 1000000) % 1000u);
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
    int saved = errno; /* callers log between a failure and errno use */
    char line[4096];
    char ts[32];
    size_t n;
    int hdr, len;
    va_list ap;

    if (lvl > sink.max || lvl < LOG_LVL_ERR)
        return;
    va_start(ap, fmt);
    if (sink.use_syslog) {
        vsnprintf(line, sizeof(line), fmt, ap);
        syslog(level_prio[lvl], "%s", line);
        goto out;
    }
    timestamp(ts);
    hdr = snprintf(line, sizeof(line), "%s %s[%d] %s ", ts, sink.ident,
                   (int)getpid(), level_name[lvl]);
    len = vsnprintf(line + hdr, sizeof(line) - (size_t)hdr - 1, fmt, ap);
    n = (size_t)hdr + (len < 0 ? 0 : (size_t)len);
    if (n > sizeof(line) - 2)
        n = sizeof(line) - 2; /* truncated: keep the newline */
    line[n++] = '\n';
    while (write(STDERR_FILENO, line, n) < 0 && errno == EINTR)
        ;
out:
    va_end(ap);
    errno = saved;
}
