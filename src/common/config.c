/*
 * Volume file loading (format in config.h).
 *
 * The file is parsed with inih.  inih only calls us back for key = value
 * lines, so an unknown *empty* section would slip through; we therefore feed
 * inih through our own line reader, which counts lines (for messages) and
 * checks every section header as it passes.  The first error wins: its
 * message, with file name and line number, is what the admin sees.
 *
 * Rules:
 *  1. Sections: [volume] and [brick.N] with N = 1..PROTO_MAX_BRICKS written
 *     without leading zeros.  Anything else is an error.
 *  2. Keys: volume: name, replica, secret-file (all required);
 *     brick.N: address (required).  Unknown or repeated keys are errors.
 *  3. replica is 1..PROTO_MAX_BRICKS and equals the number of bricks, which
 *     are numbered 1..replica without gaps.
 *  4. secret-file is relative to the volume file's directory; the key file
 *     holds exactly 64 hex digits and an optional newline.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <netdb.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

struct parse {
    const char *path;        /* borrowed: the volume file name */
    FILE *f;                 /* borrowed */
    unsigned line;           /* line the reader returned last */
    bool at_bol;             /* next read starts a new line */
    int rc;                  /* first error, 0 if none */
    char *err;               /* borrowed: caller's buffer, may be NULL */
    size_t errlen;
    struct vol_config *cfg;  /* borrowed: being filled */
    bool have_name, have_replica, have_secret;
    char secret[PROTO_PATH_MAX];
    bool have_addr[PROTO_MAX_BRICKS];
};

static int fail(struct parse *p, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Record the first error only: later ones are usually consequences.
 * Returns rc, so callers can `return fail(...)`. */
static int fail(struct parse *p, int rc, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (p->rc)
        return rc;
    p->rc = rc;
    if (p->err == NULL || p->errlen == 0)
        return rc;
    n = p->line ? snprintf(p->err, p->errlen, "%s:%u: ", p->path, p->line)
                : snprintf(p->err, p->errlen, "%s: ", p->path);
    if (n < 0 || (size_t)n >= p->errlen)
        return rc;
    va_start(ap, fmt);
    vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return rc;
}

/* Brick number from a section name "brick.N", or 0. */
static unsigned brick_section(const char *s)
{
    unsigned n = 0;

    if (strncmp(s, "brick.", 6) != 0)
        return 0;
    s += 6;
    if (*s < '1' || *s > '9')
        return 0; /* empty, or a leading zero */
    for (; *s; s++) {
        if (!isdigit((unsigned char)*s) || n > PROTO_MAX_BRICKS)
            return 0;
        n = n * 10 + (unsigned)(*s - '0');
    }
    return n <= PROTO_MAX_BRICKS ? n : 0;
}

static bool section_known(const char *s)
{
    return strcmp(s, "volume") == 0 || brick_section(s) != 0;
}

/* A section header line "  [name]  ; comment": check name (rule 1). */
static void check_header(struct parse *p, const char *line)
{
    char name[64];
    const char *end;
    size_t n;

    while (isspace((unsigned char)*line))
        line++;
    if (*line != '[')
        return;
    line++;
    end = strchr(line, ']');
    if (end == NULL)
        return; /* inih reports the syntax error */
    n = (size_t)(end - line);
    if (n >= sizeof(name)) {
        fail(p, -EINVAL, "unknown section [%.*s...]", 20, line);
        return;
    }
    memcpy(name, line, n);
    name[n] = '\0';
    if (!section_known(name))
        fail(p, -EINVAL, "unknown section [%s]", name);
}

/* ini_reader: fgets that keeps the line number and checks headers. */
static char *reader(char *str, int num, void *stream)
{
    struct parse *p = stream;
    char *s = fgets(str, num, p->f);

    if (s == NULL)
        return NULL;
    if (p->at_bol) {
        p->line++;
        check_header(p, s);
    }
    p->at_bol = strchr(s, '\n') != NULL;
    return s;
}

static int parse_uint(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
    char *end;
    unsigned long v;

    if (!isdigit((unsigned char)*s))
        return -EINVAL;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return -EINVAL;
    *out = (unsigned)v;
    return 0;
}

static int volume_key(struct parse *p, const char *name, const char *value)
{
    struct vol_config *c = p->cfg;

    if (strcmp(name, "name") == 0) {
        if (p->have_name)
            return fail(p, -EINVAL, "duplicate key 'name'");
        p->have_name = true;
        if (proto_name_check(value, strlen(value)) < 0)
            return fail(p, -EINVAL, "bad volume name '%s'", value);
        strcpy(c->name, value); /* <= PROTO_NAME_MAX: checked above */
    } else if (strcmp(name, "replica") == 0) {
        if (p->have_replica)
            return fail(p, -EINVAL, "duplicate key 'replica'");
        p->have_replica = true;
        if (parse_uint(value, 1, PROTO_MAX_BRICKS, &c->replica) < 0)
            return fail(p, -EINVAL, "replica must be 1..%d, not '%s'",
                        PROTO_MAX_BRICKS, value);
    } else if (strcmp(name, "secret-file") == 0) {
        if (p->have_secret)
            return fail(p, -EINVAL, "duplicate key 'secret-file'");
        p->have_secret = true;
        if (*value == '\0' || strlen(value) >= sizeof(p->secret))
            return fail(p, -EINVAL, "bad secret-file");
        strcpy(p->secret, value);
    } else {
        return fail(p, -EINVAL, "unknown key '%s' in [volume]", name);
    }
    return 0;
}

static int brick_key(struct parse *p, unsigned no, const char *name,
                      const char *value)
{
    struct vol_brick *b = &p->cfg->bricks[no - 1];
    const char *colon;
    int rc;

    if (strcmp(name, "address") != 0)
        return fail(p, -EINVAL, "unknown key '%s' in [brick.%u]", name, no);
    if (p->have_addr[no - 1])
        return fail(p, -EINVAL, "duplicate key 'address' in [brick.%u]", no);
    p->have_addr[no - 1] = true;
    rc = rfs_parse_addr(value, &b->addr);
    if (rc < 0)
        return fail(p, rc, "bad address '%s' for brick %u (want HOST:PORT)",
                    value, no);
    colon = strrchr(value, ':');
    snprintf(b->host, sizeof(b->host), "%.*s", (int)(colon - value), value);
    b->port = ntohs(b->addr.sin_port);
    return 0;
}

static int handler(void *user, const char *section, const char *name,
                   const char *value)
{
    struct parse *p = user;
    unsigned no;

    if (strcmp(section, "volume") == 0)
        volume_key(p, name, value);
    else if ((no = brick_section(section)) != 0)
        brick_key(p, no, name, value);
    else if (*section == '\0')
        fail(p, -EINVAL, "key '%s' outside a section", name);
    /* else: unknown section, already reported by the reader */
    return p->rc == 0;
}

/* Rule 3, and the required keys. */
static int check_whole(struct parse *p)
{
    struct vol_config *c = p->cfg;
    unsigned n = 0;

    p->line = 0; /* messages about the whole file have no line */
    if (!p->have_name)
        return fail(p, -EINVAL, "[volume] has no 'name'");
    if (!p->have_replica)
        return fail(p, -EINVAL, "[volume] has no 'replica'");
    if (!p->have_secret)
        return fail(p, -EINVAL, "[volume] has no 'secret-file'");
    while (n < PROTO_MAX_BRICKS && p->have_addr[n])
        n++;
    for (unsigned i = n; i < PROTO_MAX_BRICKS; i++)
        if (p->have_addr[i])
            return fail(p, -EINVAL, "brick.%u is missing (bricks are numbered "
                                    "1..N without gaps)", n + 1);
    if (n != c->replica)
        return fail(p, -EINVAL, "replica = %u but %u brick(s) are defined",
                    c->replica, n);
    c->nbricks = n;
    return 0;
}

/* Rule 4: secret relative to the directory of the volume file. */
static void resolve_secret(struct parse *p)
{
    const char *slash = strrchr(p->path, '/');
    int n;

    if (p->secret[0] == '/' || slash == NULL)
        n = snprintf(p->cfg->secret_path, sizeof(p->cfg->secret_path), "%s",
                     p->secret);
    else
        n = snprintf(p->cfg->secret_path, sizeof(p->cfg->secret_path),
                     "%.*s/%s", (int)(slash - p->path), p->path, p->secret);
    if (n < 0 || (size_t)n >= sizeof(p->cfg->secret_path))
        fail(p, -ENAMETOOLONG, "secret-file path too long");
}

int vol_config_load(const char *path, struct vol_config *cfg, char *err,
                    size_t errlen)
{
    struct vol_config *c;
    struct parse p;
    int rc;

    if (err && errlen)
        err[0] = '\0';
    c = calloc(1, sizeof(*c)); /* not on the stack: it holds the key */
    if (c == NULL)
        return -ENOMEM;
    memset(&p, 0, sizeof(p));
    p.path = path;
    p.at_bol = true;
    p.err = err;
    p.errlen = errlen;
    p.cfg = c;
    p.f = fopen(path, "re");
    if (p.f == NULL) {
        rc = -errno;
        fail(&p, rc, "cannot open: %s", strerror(-rc));
        goto out_free;
    }
    rc = ini_parse_stream(reader, &p, handler, &p);
    if (rc > 0 && p.rc == 0) {
        p.line = (unsigned)rc;
        fail(&p, -EINVAL, "syntax error");
    } else if (rc < 0 && p.rc == 0) {
        fail(&p, -ENOMEM, "out of memory");
    }
    if (p.rc == 0)
        check_whole(&p);
    if (p.rc == 0)
        resolve_secret(&p);
    if (p.rc == 0) {
        rc = rfs_key_load(c->secret_path, c->key);
        if (rc < 0)
            fail(&p, rc, "secret-file %s: %s", c->secret_path,
                 rc == -EINVAL ? "not 64 hex digits" : strerror(-rc));
    }
    if (p.rc == 0)
        *cfg = *c;
    fclose(p.f);
out_free:
    sodium_memzero(c, sizeof(*c));
    free(c);
    return p.rc;
}

int rfs_parse_addr(const char *s, struct sockaddr_in *addr)
{
    const char *colon = strrchr(s, ':');
    struct addrinfo hints, *res;
    struct sockaddr_in a;
    char host[256];
    unsigned port;
    size_t hl;

    if (colon == NULL)
        return -EINVAL;
    hl = (size_t)(colon - s);
    if (hl == 0 || hl >= sizeof(host))
        return -EINVAL;
    if (parse_uint(colon + 1, 1, 65535, &port) < 0)
        return -EINVAL;
    memcpy(host, s, hl);
    host[hl] = '\0';
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_INET;
        hints.ai_socktype = SOCK_STREAM;
        if (getaddrinfo(host, NULL, &hints, &res) != 0)
            return -EINVAL;
        a.sin_addr = ((struct sockaddr_in *)res->ai_addr)->sin_addr;
        freeaddrinfo(res);
    }
    *addr = a;
    return 0;
}

int rfs_key_load(const char *path, uint8_t key[RFS_KEY_SIZE])
{
    char buf[2 * RFS_KEY_SIZE + 2]; /* hex, newline, one byte to see more */
    uint8_t k[RFS_KEY_SIZE];
    size_t got = 0, hexlen;
    ssize_t n;
    int fd, rc = 0;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    while (got < sizeof(buf)) {
        n = read(fd, buf + got, sizeof(buf) - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            goto out;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    hexlen = got;
    if (got == 2 * RFS_KEY_SIZE + 1 && buf[2 * RFS_KEY_SIZE] == '\n')
        hexlen--; /* the one allowed newline */
    if (hexlen != 2 * RFS_KEY_SIZE) {
        rc = -EINVAL;
        goto out;
    }
    for (size_t i = 0; i < hexlen; i++)
        if (!isxdigit((unsigned char)buf[i])) {
            rc = -EINVAL;
            goto out;
        }
    if (sodium_hex2bin(k, sizeof(k), buf, hexlen, NULL, NULL, NULL) != 0) {
        rc = -EINVAL;
        goto out;
    }
    memcpy(key, k, sizeof(k));
out:
    sodium_memzero(buf, sizeof(buf));
    sodium_memzero(k, sizeof(k));
    close(fd);
    return rc;
}

void rfs_key_generate_hex(char out[2 * RFS_KEY_SIZE + 2])
{
    uint8_t k[RFS_KEY_SIZE];

    randombytes_buf(k, sizeof(k));
    sodium_bin2hex(out, 2 * RFS_KEY_SIZE + 1, k, sizeof(k));
    out[2 * RFS_KEY_SIZE] = '\n';
    out[2 * RFS_KEY_SIZE + 1] = '\0';
    sodium_memzero(k, sizeof(k));
}
