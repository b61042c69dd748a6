/*
 * replicafs rebuild --brick N --volume FILE [--max-rate MB/s]
 *                   [--jobs N] [--interval S] [--json]
 *
 * Fills a replaced, empty (freshly stamped: replicafsd --init) brick N with
 * everything it should hold, from the other bricks, while the volume is
 * mounted and written (src/client/rebuild.c); with --jobs N (default 4)
 * the files are copied by N forked workers once the names are made.  Progress: a bar (entries,
 * bytes, rate, ETA) redrawn in place when stdout is a terminal, else a
 * plain line every --interval seconds (default 5; on stderr with --json).
 * Ctrl-C or SIGTERM stops it after the object in hand; run it again and it
 * resumes from what is still marked for brick N on the other bricks.
 *
 * Exit: 0 brick N holds everything; 1 incomplete (interrupted, a failure,
 * split-brain, a brick went down: run it again); 2 usage, configuration,
 * brick N down or no other brick up.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "client/heal.h"
#include "client/rebuild.h"
#include "common/auth.h"
#include "common/config.h"

static volatile sig_atomic_t stop_flag;

static void on_stop(int sig)
{
    (void)sig;
    stop_flag = 1;
}

struct shown {
    bool tty;  /* redraw one line in place */
    FILE *out; /* where progress goes */
    bool drew; /* a bar is on screen: end it with a newline */
};

static int usage(FILE *f, int code)
{
    fprintf(f,
            "usage: replicafs rebuild --brick N --volume FILE "
            "[--max-rate MB/s] [--jobs N] [--interval S] [--json]\n"
            "  copy everything brick N (a replaced, empty, freshly stamped\n"
            "  disk) should hold from the other bricks, online.  Interrupted\n"
            "  and run again, it resumes.  Exit 0 done, 1 incomplete, 2 error.\n"
            "  --max-rate MB/s  throttle data writes (MB = 10^6 bytes)\n"
            "  --jobs N         processes copying files (4; 1: this one)\n"
            "  --interval S     seconds between plain progress lines (5)\n");
    return code;
}

/* "12.3 MB" (10^6), into buf. */
static const char *mb(uint64_t bytes, char *buf, size_t cap)
{
    snprintf(buf, cap, "%.1f MB", (double)bytes / 1e6);
    return buf;
}

static void progress_cb(const struct rebuild_progress *p, void *arg)
{
    struct shown *sh = arg;
    uint64_t etodo = p->entries_total - p->entries_skipped;
    uint64_t btodo = p->bytes_total - p->bytes_skipped;
    double rate = p->elapsed_s > 0 ? (double)p->bytes_done / p->elapsed_s : 0;
    double frac = btodo ? (double)(p->bytes_done + p->bytes_same) / btodo
                  : etodo ? (double)p->entries_done / etodo
                          : 1.0;
    char b1[32], b2[32], eta[32];

    if (frac > 1)
        frac = 1;
    if (rate > 0 && btodo > p->bytes_done + p->bytes_same) {
        unsigned s = (unsigned)((btodo - p->bytes_done - p->bytes_same) / rate);

        snprintf(eta, sizeof(eta), "%u:%02u", s / 60, s % 60);
    } else {
        snprintf(eta, sizeof(eta), "--:--");
    }
    if (sh->tty) {
        char bar[31];
        int fill = (int)(frac * 30);

        for (int i = 0; i < 30; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[30] = '\0';
        fprintf(sh->out,
                "\r[%s] %3d%%  %llu/%llu entries  %s/%s  %.1f MB/s  ETA %s ",
                bar, (int)(frac * 100), (unsigned long long)p->entries_done,
                (unsigned long long)etodo, mb(p->bytes_done, b1, sizeof(b1)),
                mb(btodo, b2, sizeof(b2)), rate / 1e6, eta);
        sh->drew = true;
    } else {
        fprintf(sh->out,
                "rebuild: %d%% entries %llu/%llu bytes %llu/%llu "
                "rate %.1f MB/s eta %s\n",
                (int)(frac * 100), (unsigned long long)p->entries_done,
                (unsigned long long)etodo,
                (unsigned long long)p->bytes_done, (unsigned long long)btodo,
                rate / 1e6, eta);
    }
    fflush(sh->out);
}

static void print_result(const struct rebuild_progress *p, int rc, bool json)
{
    double rate = p->elapsed_s > 0 ? (double)p->bytes_done / p->elapsed_s : 0;
    double fps = p->elapsed_s > 0 ? (double)p->files_done / p->elapsed_s : 0;
    const char *state = rc == 0 ? "complete"
                        : p->interrupted ? "interrupted"
                                         : "incomplete";
    char b1[32], b2[32], b3[32], b4[32];

    if (json) {
        printf("{\"brick\":%u,\"source\":%u,\"state\":\"%s\","
               "\"entries_total\":%llu,\"entries_skipped\":%llu,"
               "\"entries_made\":%llu,\"entries_linked\":%llu,"
               "\"bytes_total\":%llu,\"bytes_skipped\":%llu,"
               "\"bytes_copied\":%llu,\"bytes_same\":%llu,"
               "\"files_copied\":%llu,\"failed\":%llu,\"split_brain\":%llu,"
               "\"left\":%llu,\"seconds\":%.3f,\"bytes_per_s\":%.0f,"
               "\"files_per_s\":%.1f}\n",
               p->target, p->source, state,
               (unsigned long long)p->entries_total,
               (unsigned long long)p->entries_skipped,
               (unsigned long long)p->entries_done,
               (unsigned long long)p->entries_linked,
               (unsigned long long)p->bytes_total,
               (unsigned long long)p->bytes_skipped,
               (unsigned long long)p->bytes_done,
               (unsigned long long)p->bytes_same,
               (unsigned long long)p->files_done,
               (unsigned long long)p->failed,
               (unsigned long long)p->split_brain,
               (unsigned long long)p->left, p->elapsed_s, rate, fps);
        return;
    }
    printf("rebuild of brick %u (source brick %u): %s\n", p->target,
           p->source, state);
    printf("  entries: %llu on the source, %llu made now (%llu hard links), "
           "%llu already rebuilt (skipped)\n",
           (unsigned long long)p->entries_total,
           (unsigned long long)p->entries_done,
           (unsigned long long)p->entries_linked,
           (unsigned long long)p->entries_skipped);
    printf("  data: %s on the source, %s copied in %llu files, %s already "
           "rebuilt (skipped), %s found equal\n",
           mb(p->bytes_total, b1, sizeof(b1)),
           mb(p->bytes_done, b2, sizeof(b2)),
           (unsigned long long)p->files_done,
           mb(p->bytes_skipped, b3, sizeof(b3)),
           mb(p->bytes_same, b4, sizeof(b4)));
    printf("  time: %.1f s, %.1f MB/s, %.0f files/s\n", p->elapsed_s,
           rate / 1e6, fps);
    if (p->failed || p->split_brain || p->left)
        printf("  failed: %llu, split-brain: %llu, still to do: %llu\n",
               (unsigned long long)p->failed,
               (unsigned long long)p->split_brain,
               (unsigned long long)p->left);
    if (rc != 0)
        printf("  run it again to resume\n");
}

int cmd_rebuild(int argc, char **argv)
{
    static const struct option opts[] = {
        {"volume", required_argument, NULL, 'v'},
        {"brick", required_argument, NULL, 'b'},
        {"max-rate", required_argument, NULL, 'r'},
        {"interval", required_argument, NULL, 'i'},
        {"jobs", required_argument, NULL, 'J'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    const char *volfile = NULL;
    struct rebuild_opts ro = {.every_ms = 5000, .jobs = 4};
    struct rebuild_progress p;
    struct shown sh = {0};
    struct sigaction sa = {0}, old_int, old_term;
    struct vol_config vol;
    struct healer *h;
    bool json = false;
    char *end;
    uv_loop_t loop;
    int c, rc, code;

    optind = 1;
    while ((c = getopt_long(argc, argv, "v:b:r:i:J:jh", opts, NULL)) != -1) {
        switch (c) {
        case 'v': volfile = optarg; break;
        case 'b':
            ro.brick = (unsigned)strtoul(optarg, &end, 10);
            if (*end || !ro.brick)
                return usage(stderr, CLI_EXIT_ERROR);
            break;
        case 'r':
            ro.max_rate = strtod(optarg, &end) * 1e6;
            if (*end || ro.max_rate <= 0)
                return usage(stderr, CLI_EXIT_ERROR);
            break;
        case 'i': {
            double s = strtod(optarg, &end);

            if (*end || s <= 0 || s > 3600)
                return usage(stderr, CLI_EXIT_ERROR);
            ro.every_ms = (unsigned)(s * 1000);
            break;
        }
        case 'J':
            ro.jobs = (unsigned)strtoul(optarg, &end, 10);
            if (*end || ro.jobs < 1 || ro.jobs > 64)
                return usage(stderr, CLI_EXIT_ERROR);
            break;
        case 'j': json = true; break;
        case 'h': return usage(stdout, CLI_EXIT_OK);
        default: return usage(stderr, CLI_EXIT_ERROR);
        }
    }
    if (!volfile || !ro.brick || optind != argc)
        return usage(stderr, CLI_EXIT_ERROR);
    if (cli_load_volume("rebuild", volfile, &vol) < 0)
        return CLI_EXIT_ERROR;
    if (uv_loop_init(&loop) < 0)
        return CLI_EXIT_ERROR;
    rc = healer_new(&loop, &vol, 3000, &h);
    if (rc < 0) {
        fprintf(stderr, "replicafs rebuild: %s\n", strerror(-rc));
        uv_loop_close(&loop);
        return CLI_EXIT_ERROR;
    }
    sh.tty = !json && isatty(STDOUT_FILENO);
    sh.out = json ? stderr : stdout;
    if (sh.tty)
        ro.every_ms = 250;
    ro.progress = progress_cb;
    ro.arg = &sh;
    ro.stop = &stop_flag;
    ro.vol = &vol;
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    rc = rebuild_run(h, &ro, &p);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (sh.drew)
        fputc('\n', sh.out);
    if (rc < 0) {
        if (rc == -ENOTCONN)
            fprintf(stderr,
                    "replicafs rebuild: brick %u is down, or no other brick "
                    "is up\n", ro.brick);
        else if (rc == -EINVAL)
            fprintf(stderr, "replicafs rebuild: no brick %u in %s\n",
                    ro.brick, volfile);
        else
            fprintf(stderr, "replicafs rebuild: %s\n", strerror(-rc));
        code = CLI_EXIT_ERROR;
    } else {
        print_result(&p, rc, json);
        code = rc == 0 ? CLI_EXIT_OK : CLI_EXIT_DEGRADED;
    }
    healer_free(h);
    uv_loop_close(&loop);
    return code;
}
