/* Log line format (admins grep it; docs/runbook quotes it). */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

static void redirect(void)
{
    cr_redirect_stderr();
}

static char *read_stderr(void)
{
    static char buf[65536];
    FILE *f = cr_get_redirected_stderr();
    size_t n;

    fflush(stderr);
    n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    return buf;
}

Test(log, stderr_line_format, .init = redirect)
{
    regex_t re;
    char pat[256];

    log_setup("replicafsd", false, LOG_LVL_INFO);
    log_info("brick %d up", 3);
    log_err("disk %s failed", "sdb");
    char *out = read_stderr();
    snprintf(pat, sizeof(pat),
             "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
             "replicafsd\\[%d\\] INFO brick 3 up\n"
             "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}\\.[0-9]{3}Z "
             "replicafsd\\[%d\\] ERROR disk sdb failed\n$",
             (int)getpid(), (int)getpid());
    cr_assert_eq(regcomp(&re, pat, REG_EXTENDED), 0);
    cr_assert_eq(regexec(&re, out, 0, NULL, 0), 0, "got: %s", out);
    regfree(&re);
}

Test(log, level_filter, .init = redirect)
{
    log_setup("t", false, LOG_LVL_WARN);
    log_debug("hidden-debug");
    log_info("hidden-info");
    log_warn("shown-warn");
    char *out = read_stderr();
    cr_assert_null(strstr(out, "hidden"));
    cr_assert_not_null(strstr(out, " t["));
    cr_assert_not_null(strstr(out, "WARN shown-warn\n"));
}

Test(log, long_messages_are_truncated_to_one_line, .init = redirect)
{
    static char big[10000];

    memset(big, 'q', sizeof(big) - 1);
    log_setup("t", false, LOG_LVL_DEBUG);
    log_debug("%s", big);
    log_debug("after");
    char *out = read_stderr();
    char *nl = strchr(out, '\n');
    cr_assert_not_null(nl);
    cr_assert_lt((size_t)(nl - out), 4096);
    cr_assert_not_null(strstr(nl + 1, "DEBUG after\n"));
}

Test(log, errno_is_preserved, .init = redirect)
{
    log_setup("t", false, LOG_LVL_INFO);
    errno = ENOSPC;
    log_info("x");
    cr_assert_eq(errno, ENOSPC);
}
