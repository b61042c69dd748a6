/*
 * Helpers for the C integration tests: a temp dir with a volume file and key
 * for N bricks on free 127.0.0.1 ports, real replicafsd processes, and
 * brick_conn connections to them on a private libuv loop.
 *
 * Lifecycle in a Criterion test (see itest_daemon.c):
 *
 *   static struct itest_vol *V;
 *   static void setup(void) { V = itest_vol_new("itest", 1); itest_start_all(V); }
 *   static void teardown(void) { itest_vol_free(V); }
 *   TestSuite(daemon, .init = setup, .fini = teardown, .timeout = 60);
 *
 * Cleanup happens three ways, so that no daemon or temp dir outlives a test:
 *  1. itest_vol_free() in the fixture's fini (runs after a failed assert);
 *  2. an atexit handler in the test process (a test that calls exit());
 *  3. a Criterion POST_TEST report hook in the runner process, which reads
 *     the state file the test process keeps (temp dir, daemon PIDs, command
 *     lines), kills what is left (a crash or a timeout skips 1 and 2), removes
 *     the temp dir, and on failure prints the repro lines and log tails.
 * Daemons also get PR_SET_PDEATHSIG(SIGKILL), so they die with the test.
 *
 * Every helper that can fail asserts (cr_assert) with a message that names
 * what it was doing; they are meant to be called from tests and fixtures.
 * Set RFS_KEEP_TMP=1 to keep the temp dir of a failed test, and
 * RFS_ITEST_DEBUG=1 to see brick_conn's debug log.
 */
#ifndef RFS_ITEST_UTIL_H
#define RFS_ITEST_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>
#include <uv.h>

#include "common/config.h"
#include "replicafs/client.h"
#include "replicafs/proto.h"

#define ITEST_MAX_CONNS 64

struct itest_brick {
    unsigned no;           /* 1-based */
    uint16_t port;
    char dir[512];         /* brick directory */
    char log[512];         /* daemon stderr */
    pid_t pid;             /* 0 when not running */
    bool stopped;          /* SIGSTOPped */
    bool initialised;      /* started once with --init */
};

struct itest_vol {
    char tmp[256];                      /* owned temp dir; removed at free */
    char volfile[512];
    char keyfile[512];
    char name[64];
    unsigned nbricks;
    struct itest_brick bricks[PROTO_MAX_BRICKS];
    struct vol_config cfg;              /* loaded from volfile */
    uv_loop_t loop;                     /* for the connections below */
    struct brick_conn *conns[ITEST_MAX_CONNS]; /* closed at free */
    unsigned nconns;
};

/* Make the temp dir, key, volume file and empty brick dirs (not started). */
struct itest_vol *itest_vol_new(const char *name, unsigned nbricks);
/* Close connections (uv_loop_close must succeed), stop daemons, remove the
 * temp dir.  NULL-safe. */
void itest_vol_free(struct itest_vol *v);

/* Start brick `no` (first time with --init) and wait until its port
 * accepts.  Asserts on failure, printing the log tail. */
void itest_brick_start(struct itest_vol *v, unsigned no);
void itest_start_all(struct itest_vol *v);
/* SIGTERM, wait up to 5 s, then SIGKILL.  Returns the wait status. */
int itest_brick_stop(struct itest_vol *v, unsigned no);
/* SIGKILL and reap. */
void itest_brick_kill9(struct itest_vol *v, unsigned no);
void itest_brick_pause(struct itest_vol *v, unsigned no);  /* SIGSTOP */
void itest_brick_resume(struct itest_vol *v, unsigned no); /* SIGCONT */
void itest_brick_restart(struct itest_vol *v, unsigned no);
/* Still running (not exited)? */
bool itest_brick_alive(struct itest_vol *v, unsigned no);

/*
 * Run replicafsd with the given extra arguments (NULL-terminated, after
 * "--volume VOLFILE"; volfile NULL: v's) to completion; returns its exit
 * code, or -1 if it did not exit within timeout_ms (it is killed) or died
 * by a signal.  Its output goes to run.log in the temp dir.
 */
int itest_run_daemon(struct itest_vol *v, const char *volfile,
                     unsigned timeout_ms, const char *const extra[]);

/* Connect to brick `no` over brick_conn and wait until UP (asserts). */
struct brick_conn *itest_connect(struct itest_vol *v, unsigned no);
/* Same with options (ping timeout...); returns wait_up's result in *rc
 * instead of asserting when rc is non-NULL. */
struct brick_conn *itest_connect_opts(struct itest_vol *v, unsigned no,
                                      const struct brick_conn_opts *o,
                                      int *rc);
/* After brick bc talks to was stopped/killed and started again: run the
 * loop until bc has seen its old link go and is UP on a new one.  0 or
 * -errno from brick_conn_wait_up(). */
int itest_relink(struct itest_vol *v, struct brick_conn *bc,
                 unsigned timeout_ms);
/* Close one connection early (runs the loop until it is freed). */
void itest_disconnect(struct itest_vol *v, struct brick_conn *bc);

/* A plain TCP socket to brick `no` (blocking, 5 s timeouts), for raw
 * frames.  Asserts. */
int itest_raw_connect(struct itest_vol *v, unsigned no);
/* Do the HELLO/AUTH handshake on a raw socket.  0 or -errno. */
int itest_raw_handshake(struct itest_vol *v, int fd);
/* Send bytes; 0 or -errno. */
int itest_raw_send(int fd, const void *buf, size_t len);
/* Read one frame (header and body into buf, cap bytes).  Returns the frame
 * length, 0 on EOF, or -errno (-EAGAIN on timeout). */
ssize_t itest_raw_recv(int fd, void *buf, size_t cap);
/* True if the peer closed the socket within timeout_ms (reading and
 * discarding whatever comes first). */
bool itest_raw_closed(int fd, unsigned timeout_ms);

/* Assert that an expression returning 0/-errno gives `want`, printing both
 * as errno names when it does not. */
#define IT_RC(expr, want)                                                      \
    do {                                                                       \
        int it_rc_ = (expr), it_want_ = (want);                                \
        cr_assert_eq(it_rc_, it_want_, "%s: got %d (%s), want %d (%s)", #expr, \
                     it_rc_, strerror(-it_rc_), it_want_, strerror(-it_want_)); \
    } while (0)
#define IT_OK(expr) IT_RC(expr, 0)

/* ---- one-line operations over brick_call_sync (return 0 or -errno) ---- */

/* CREATE a regular file (mode 0644 | S_IFREG) with a fresh id; rep and id
 * may be NULL. */
int it_create(struct brick_conn *bc, const struct rfs_id *parent,
              const char *name, uint32_t flags, struct rfs_id *id,
              struct create_rep *rep);
int it_mkdir(struct brick_conn *bc, const struct rfs_id *parent,
             const char *name, struct rfs_id *id);
int it_lookup(struct brick_conn *bc, const struct rfs_id *parent,
              const char *name, struct proto_attr *attr);
int it_getattr(struct brick_conn *bc, const struct rfs_id *id,
               struct proto_attr *attr);
int it_unlink(struct brick_conn *bc, const struct rfs_id *parent,
              const char *name);
int it_write(struct brick_conn *bc, const struct rfs_id *id, uint64_t off,
             const void *data, uint32_t len);
/* READ into buf; *got gets the byte count. */
int it_read(struct brick_conn *bc, const struct rfs_id *id, uint64_t off,
            uint32_t len, void *buf, uint32_t *got);
int it_fsync(struct brick_conn *bc, const struct rfs_id *id);
/* Whole directory listing via READDIR pages of max_bytes: calls fn for each
 * entry.  Returns the number of entries or -errno. */
int it_readdir(struct brick_conn *bc, const struct rfs_id *dir,
               uint32_t max_bytes,
               void (*fn)(const char *name, const struct proto_attr *a,
                          void *arg),
               void *arg);
/* Fill buf with a pattern that depends on seed and absolute offset. */
void it_pattern(void *buf, size_t len, uint64_t seed, uint64_t off);

/* Path of `rel` inside brick no's directory, in a static buffer rotated
 * over 8 slots. */
const char *itest_brick_path(struct itest_vol *v, unsigned no, const char *rel);
/* Print the last lines of brick no's log to stderr. */
void itest_print_log_tail(struct itest_vol *v, unsigned no, int lines);
/* Monotonic milliseconds. */
uint64_t itest_now_ms(void);

#endif
