/*
 * Wire protocol v1 codec: one table, one encoder, one decoder.
 *
 * Design.  Every message body in proto.h is a flat sequence of typed fields
 * (enum proto_ftype).  Instead of ~50 hand-written encode/decode functions,
 * each (op, kind) has a const table listing its fields as (type, offsetof into
 * the C struct, limits), and a single walker encodes or decodes any message.
 * Why:
 *   - the bounds checks live in one place (rd_need/wr_put), so a new message
 *     cannot forget one: it is a table row, not code;
 *   - encoder and decoder share the same validators (u32_ok, text_ok,
 *     time_ok...), so "encode refuses exactly what decode refuses" holds by
 *     construction instead of by review;
 *   - the table is the same shape as the struct comments in proto.h and the
 *     tables in docs/protocol.md, which makes the three easy to compare;
 *   - the fuzz driver exercises every message through the same code paths.
 * Cross-field rules that a row cannot express (hello version range, the
 * heal id list length, the readdir entry blob) are a per-message check hook.
 *
 * Invariants:
 *  1. No read or write touches memory outside [body, body+len) or
 *     [buf, buf+cap): every access goes through rd_need()/wr_put().
 *  2. A bytes field is the last field of its message (checked by assert in
 *     the walkers), so "the rest of the frame" is always its payload.
 *  3. A frame proto_decode() accepts has exactly one encoding, and
 *     proto_encode() of the decoded struct reproduces it byte for byte
 *     (tools/fuzz_proto.c aborts if not).  This is why decoding zeroes the
 *     struct first and why every value check is symmetric.
 *  4. -EINVAL from proto_decode() only ever means "well-framed request with a
 *     malformed name or path": any framing error found anywhere in the body
 *     wins and gives -EPROTO, so a connection is never kept open on a frame
 *     we could not parse to its end.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "replicafs/proto.h"
#include "proto_cmp.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define NSEC_PER_SEC 1000000000u
#define STATUS_MAX 4095u /* Linux errnos are below 4096 */

enum proto_ftype {
    F_U16,
    F_U32,
    F_U64,
    F_I64,
    F_ID,
    F_TIME,
    F_ATTR,
    F_NAME,    /* 1..255, proto_name_check */
    F_NAMEOPT, /* like F_NAME, or empty */
    F_PATH,    /* 1..4095, no NUL */
    F_STR,     /* 0..255, no NUL */
    F_RAW32,
    F_BYTES,   /* u32 len + payload; last field only */
    F_I64ARR,  /* u32 count at off, count i64 at off2 */
};

#define ATTR_WIRE_SIZE 88 /* 16 + 5*4 + 2*8 + 3*12 */
#define TIME_WIRE_SIZE 12

struct field {
    uint8_t type;  /* enum proto_ftype */
    uint16_t off;  /* offsetof the member in the message struct */
    uint16_t off2; /* F_I64ARR: offsetof the array (off is the count) */
    uint32_t min;  /* F_U32: allowed range */
    uint32_t max;  /* F_U32: allowed range; F_BYTES: max length */
    uint32_t mask; /* F_U32: allowed bits */
};

struct msg_desc {
    size_t size;                 /* sizeof the C struct; 1 for empty bodies */
    const struct field *fields;  /* borrowed: static table */
    size_t nfields;
    bool (*check)(const void *); /* cross-field rule, or NULL */
};

#define OFF(st, m) ((uint16_t)offsetof(struct st, m))
#define FLD(t, st, m) {t, OFF(st, m), 0, 0, UINT32_MAX, UINT32_MAX}
#define U32(st, m) FLD(F_U32, st, m)
#define U32R(st, m, lo, hi) {F_U32, OFF(st, m), 0, lo, hi, UINT32_MAX}
#define U32M(st, m, bits) {F_U32, OFF(st, m), 0, 0, UINT32_MAX, bits}
#define U64(st, m) FLD(F_U64, st, m)
#define I64(st, m) FLD(F_I64, st, m)
#define ID(st, m) FLD(F_ID, st, m)
#define TIME(st, m) FLD(F_TIME, st, m)
#define ATTR(st, m) FLD(F_ATTR, st, m)
#define NAME(st, m) FLD(F_NAME, st, m)
#define NAMEOPT(st, m) FLD(F_NAMEOPT, st, m)
#define PATH(st, m) FLD(F_PATH, st, m)
#define STR(st, m) FLD(F_STR, st, m)
#define RAW32(st, m) FLD(F_RAW32, st, m)
#define BYTES(st, m, lim) {F_BYTES, OFF(st, m), 0, 0, lim, 0}
#define I64ARR(st, cnt, arr) {F_I64ARR, OFF(st, cnt), OFF(st, arr), 0, 0, 0}

#define MSG(st, chk) {sizeof(struct st), st##_f, ARRAY_SIZE(st##_f), chk}

/* ---- cross-field rules ---- */

static bool hello_req_check(const void *m)
{
    const struct hello_req *r = m;

    return r->version_min <= r->version_max;
}

/* A birth lock is for a file this request makes and opens, never for an
 * existing one it would hand back (docs/protocol.md, CREATE). */
static bool create_req_check(const void *m)
{
    const struct create_req *r = m;
    const uint32_t need = CREATE_EXCL | CREATE_OPEN;

    return !(r->flags & CREATE_LOCK) || (r->flags & need) == need;
}

static bool heal_list_rep_check(const void *m)
{
    const struct heal_list_rep *r = m;

    return (uint64_t)r->count * 16 == r->ids.len;
}

static bool checksum_rep_check(const void *m)
{
    const struct checksum_rep *r = m;

    return (uint64_t)r->count * 8 == r->sums.len;
}

/* The entry blob must walk cleanly and hold exactly `count` entries: the
 * client iterates it later with proto_dirent_next() and must not meet a
 * surprise there. */
static bool readdir_rep_check(const void *m)
{
    const struct readdir_rep *r = m;
    char name[PROTO_NAME_MAX + 1];
    struct proto_attr attr;
    size_t off = 0;
    uint32_t n = 0;
    int rc;

    if (r->entries.len > 0 && r->entries.data == NULL)
        return false;
    while ((rc = proto_dirent_next(&r->entries, &off, name, &attr)) == 1)
        n++;
    return rc == 0 && n == r->count;
}

/* ---- the tables: one row per wire field, in wire order ---- */

static const struct field hello_req_f[] = {
    U32R(hello_req, magic, PROTO_MAGIC, PROTO_MAGIC),
    U32R(hello_req, version_min, 1, UINT32_MAX),
    U32R(hello_req, version_max, 1, UINT32_MAX),
    RAW32(hello_req, nonce),
    STR(hello_req, volume),
};
static const struct field hello_rep_f[] = {
    U32R(hello_rep, version, 1, UINT32_MAX),
    U32R(hello_rep, brick, 1, PROTO_MAX_BRICKS),
    RAW32(hello_rep, nonce),
    RAW32(hello_rep, mac),
};
static const struct field auth_req_f[] = {RAW32(auth_req, mac)};
static const struct field auth_rep_f[] = {
    U64(auth_rep, brick_uuid_hi),
    U64(auth_rep, brick_uuid_lo),
};
static const struct field ping_req_f[] = {U64(ping_req, stamp)};
static const struct field ping_rep_f[] = {U64(ping_rep, stamp)};
static const struct field lookup_req_f[] = {
    ID(lookup_req, parent),
    NAME(lookup_req, name),
    U32M(lookup_req, flags, LOOKUP_CLEAN | LOOKUP_OWN_MARK),
};
static const struct field attr_rep_f[] = {ATTR(attr_rep, attr)};
static const struct field getattr_req_f[] = {ID(getattr_req, id)};
static const struct field setattr_req_f[] = {
    ID(setattr_req, id),      U32M(setattr_req, valid, SETATTR__ALL),
    U32(setattr_req, mode),   U32(setattr_req, uid),
    U32(setattr_req, gid),    U64(setattr_req, size),
    TIME(setattr_req, atime), TIME(setattr_req, mtime),
};
static const struct field mkdir_req_f[] = {
    ID(mkdir_req, parent), NAME(mkdir_req, name), ID(mkdir_req, id),
    U32(mkdir_req, mode),  U32(mkdir_req, uid),   U32(mkdir_req, gid),
};
static const struct field create_req_f[] = {
    ID(create_req, parent),
    NAME(create_req, name),
    ID(create_req, id),
    U32(create_req, mode),
    U32(create_req, uid),
    U32(create_req, gid),
    U32M(create_req, flags, CREATE_EXCL | CREATE_OPEN | CREATE_LOCK),
    U64(create_req, lk_owner),
};
static const struct field create_rep_f[] = {
    ATTR(create_rep, attr),
    U32R(create_rep, created, 0, 1),
};
static const struct field mknod_req_f[] = {
    ID(mknod_req, parent), NAME(mknod_req, name), ID(mknod_req, id),
    U32(mknod_req, mode),  U32(mknod_req, rdev),  U32(mknod_req, uid),
    U32(mknod_req, gid),
};
static const struct field symlink_req_f[] = {
    ID(symlink_req, parent),   NAME(symlink_req, name), ID(symlink_req, id),
    PATH(symlink_req, target), U32(symlink_req, uid),   U32(symlink_req, gid),
};
static const struct field link_req_f[] = {
    ID(link_req, id),
    ID(link_req, newparent),
    NAME(link_req, newname),
};
static const struct field unlink_req_f[] = {
    ID(unlink_req, parent),
    NAME(unlink_req, name),
};
static const struct field rename_req_f[] = {
    ID(rename_req, parent),
    NAME(rename_req, name),
    ID(rename_req, newparent),
    NAME(rename_req, newname),
    U32M(rename_req, flags, RENAME_FLAG_NOREPLACE),
};
static const struct field readlink_req_f[] = {ID(readlink_req, id)};
static const struct field readlink_rep_f[] = {PATH(readlink_rep, target)};
static const struct field open_req_f[] = {
    ID(open_req, id),
    U32M(open_req, flags, O_ACCMODE | OPEN_LEASE),
};
static const struct field lease_ack_req_f[] = {ID(lease_ack_req, id)};
static const struct field openx_rep_f[] = {
    ATTR(openx_rep, attr),
    I64(openx_rep, dirty),
    I64ARR(openx_rep, npending, pending),
    U64(openx_rep, suspect),
};
static const struct field read_req_f[] = {
    ID(read_req, id),
    U64(read_req, offset),
    U32R(read_req, size, 0, PROTO_MAX_IO),
};
static const struct field read_rep_f[] = {BYTES(read_rep, data, PROTO_MAX_IO)};
static const struct field write_req_f[] = {
    ID(write_req, id),
    U64(write_req, offset),
    BYTES(write_req, data, PROTO_MAX_IO),
};
static const struct field write_rep_f[] = {
    U32R(write_rep, count, 0, PROTO_MAX_IO),
    ATTR(write_rep, attr),
};
static const struct field fsync_req_f[] = {
    ID(fsync_req, id),
    U32R(fsync_req, datasync, 0, 1),
};
static const struct field release_req_f[] = {ID(release_req, id)};
static const struct field readdir_req_f[] = {
    ID(readdir_req, id),
    U64(readdir_req, cookie),
    U32R(readdir_req, max_bytes, 0, PROTO_READDIR_MAX),
    U32M(readdir_req, flags, READDIR_SWEEP),
};
static const struct field readdir_rep_f[] = {
    U64(readdir_rep, next_cookie),
    U32R(readdir_rep, eof, 0, 1),
    U32(readdir_rep, count),
    U32R(readdir_rep, dirty, 0, 1),
    BYTES(readdir_rep, entries, PROTO_READDIR_MAX),
};
static const struct field statfs_req_f[] = {U32(statfs_req, reserved)};
static const struct field statfs_rep_f[] = {
    U64(statfs_rep, bsize), U64(statfs_rep, blocks), U64(statfs_rep, bfree),
    U64(statfs_rep, bavail), U64(statfs_rep, files), U64(statfs_rep, ffree),
    U32(statfs_rep, namemax),
};
static const struct field inodelk_req_f[] = {
    ID(inodelk_req, id),
    U64(inodelk_req, owner),
    U32R(inodelk_req, type, LK_RD, LK_UN),
    U32M(inodelk_req, flags, LK_NONBLOCK),
};
static const struct field entrylk_req_f[] = {
    ID(entrylk_req, parent),
    NAMEOPT(entrylk_req, name),
    U64(entrylk_req, owner),
    U32R(entrylk_req, type, LK_RD, LK_UN),
    U32M(entrylk_req, flags, LK_NONBLOCK),
};
static const struct field xattrop_req_f[] = {
    ID(xattrop_req, id),
    I64(xattrop_req, dirty),
    I64ARR(xattrop_req, npending, pending),
    U64(xattrop_req, clear_suspect),
    U32M(xattrop_req, lk, XO_LOCK | XO_UNLOCK | XO_NONBLOCK | XO_ENTRY),
    U64(xattrop_req, lk_owner),
    NAMEOPT(xattrop_req, lk_name),
};
static const struct field xattrop_rep_f[] = {
    I64(xattrop_rep, dirty),
    I64ARR(xattrop_rep, npending, pending),
    U64(xattrop_rep, suspect),
};
static const struct field heal_list_req_f[] = {
    U64(heal_list_req, cookie),
    U32R(heal_list_req, max, 0, PROTO_HEAL_LIST_MAX),
};
static const struct field heal_list_rep_f[] = {
    U64(heal_list_rep, next_cookie),
    U32R(heal_list_rep, eof, 0, 1),
    U32R(heal_list_rep, count, 0, PROTO_HEAL_LIST_MAX),
    BYTES(heal_list_rep, ids, PROTO_HEAL_LIST_MAX * 16),
};
static const struct field checksum_req_f[] = {
    ID(checksum_req, id),
    U64(checksum_req, offset),
    U64(checksum_req, length),
    U32R(checksum_req, block_size, PROTO_CSUM_BLOCK_MIN, PROTO_CSUM_BLOCK_MAX),
    U32M(checksum_req, flags, CHECKSUM_DEEP),
};
static const struct field checksum_rep_f[] = {
    U64(checksum_rep, size),
    U32R(checksum_rep, count, 0, PROTO_CSUM_MAX_BLOCKS),
    BYTES(checksum_rep, sums, PROTO_CSUM_MAX_BLOCKS * 8),
};
static const struct field inval_event_f[] = {
    ID(inval_event, id),
    U32M(inval_event, what, INVAL_ATTR | INVAL_DATA | INVAL_ENTRY |
                             INVAL_MARKERS | INVAL_RECALL | INVAL_LEASES_LOST),
    ID(inval_event, parent),
    NAMEOPT(inval_event, name),
};

static const struct msg_desc hello_req_d = MSG(hello_req, hello_req_check);
static const struct msg_desc hello_rep_d = MSG(hello_rep, NULL);
static const struct msg_desc auth_req_d = MSG(auth_req, NULL);
static const struct msg_desc auth_rep_d = MSG(auth_rep, NULL);
static const struct msg_desc ping_req_d = MSG(ping_req, NULL);
static const struct msg_desc ping_rep_d = MSG(ping_rep, NULL);
static const struct msg_desc lookup_req_d = MSG(lookup_req, NULL);
static const struct msg_desc attr_rep_d = MSG(attr_rep, NULL);
static const struct msg_desc getattr_req_d = MSG(getattr_req, NULL);
static const struct msg_desc setattr_req_d = MSG(setattr_req, NULL);
static const struct msg_desc mkdir_req_d = MSG(mkdir_req, NULL);
static const struct msg_desc create_req_d = MSG(create_req, create_req_check);
static const struct msg_desc create_rep_d = MSG(create_rep, NULL);
static const struct msg_desc mknod_req_d = MSG(mknod_req, NULL);
static const struct msg_desc symlink_req_d = MSG(symlink_req, NULL);
static const struct msg_desc link_req_d = MSG(link_req, NULL);
static const struct msg_desc unlink_req_d = MSG(unlink_req, NULL);
static const struct msg_desc rename_req_d = MSG(rename_req, NULL);
static const struct msg_desc readlink_req_d = MSG(readlink_req, NULL);
static const struct msg_desc readlink_rep_d = MSG(readlink_rep, NULL);
static const struct msg_desc open_req_d = MSG(open_req, NULL);
static const struct msg_desc openx_rep_d = MSG(openx_rep, NULL);
static const struct msg_desc read_req_d = MSG(read_req, NULL);
static const struct msg_desc read_rep_d = MSG(read_rep, NULL);
static const struct msg_desc write_req_d = MSG(write_req, NULL);
static const struct msg_desc write_rep_d = MSG(write_rep, NULL);
static const struct msg_desc fsync_req_d = MSG(fsync_req, NULL);
static const struct msg_desc release_req_d = MSG(release_req, NULL);
static const struct msg_desc lease_ack_req_d = MSG(lease_ack_req, NULL);
static const struct msg_desc readdir_req_d = MSG(readdir_req, NULL);
static const struct msg_desc readdir_rep_d = MSG(readdir_rep, readdir_rep_check);
static const struct msg_desc statfs_req_d = MSG(statfs_req, NULL);
static const struct msg_desc statfs_rep_d = MSG(statfs_rep, NULL);
static const struct msg_desc inodelk_req_d = MSG(inodelk_req, NULL);
static const struct msg_desc entrylk_req_d = MSG(entrylk_req, NULL);
static const struct msg_desc xattrop_req_d = MSG(xattrop_req, NULL);
static const struct msg_desc xattrop_rep_d = MSG(xattrop_rep, NULL);
static const struct msg_desc heal_list_req_d = MSG(heal_list_req, NULL);
static const struct msg_desc heal_list_rep_d =
    MSG(heal_list_rep, heal_list_rep_check);
static const struct msg_desc checksum_req_d = MSG(checksum_req, NULL);
static const struct msg_desc checksum_rep_d =
    MSG(checksum_rep, checksum_rep_check);
static const struct msg_desc inval_event_d = MSG(inval_event, NULL);
static const struct msg_desc empty_d = {1, NULL, 0, NULL};

#define REQ_REP(req, rep) {[PROTO_REQ] = req, [PROTO_REPLY] = rep}

static const struct msg_desc *const msgs[OP__MAX][3] = {
    [OP_HELLO] = REQ_REP(&hello_req_d, &hello_rep_d),
    [OP_AUTH] = REQ_REP(&auth_req_d, &auth_rep_d),
    [OP_PING] = REQ_REP(&ping_req_d, &ping_rep_d),
    [OP_LOOKUP] = REQ_REP(&lookup_req_d, &attr_rep_d),
    [OP_GETATTR] = REQ_REP(&getattr_req_d, &attr_rep_d),
    [OP_SETATTR] = REQ_REP(&setattr_req_d, &attr_rep_d),
    [OP_MKDIR] = REQ_REP(&mkdir_req_d, &attr_rep_d),
    [OP_CREATE] = REQ_REP(&create_req_d, &create_rep_d),
    [OP_MKNOD] = REQ_REP(&mknod_req_d, &attr_rep_d),
    [OP_SYMLINK] = REQ_REP(&symlink_req_d, &attr_rep_d),
    [OP_LINK] = REQ_REP(&link_req_d, &attr_rep_d),
    [OP_UNLINK] = REQ_REP(&unlink_req_d, &empty_d),
    [OP_RMDIR] = REQ_REP(&unlink_req_d, &empty_d),
    [OP_RENAME] = REQ_REP(&rename_req_d, &empty_d),
    [OP_READLINK] = REQ_REP(&readlink_req_d, &readlink_rep_d),
    [OP_OPEN] = REQ_REP(&open_req_d, &attr_rep_d),
    [OP_READ] = REQ_REP(&read_req_d, &read_rep_d),
    [OP_WRITE] = REQ_REP(&write_req_d, &write_rep_d),
    [OP_FSYNC] = REQ_REP(&fsync_req_d, &empty_d),
    [OP_RELEASE] = REQ_REP(&release_req_d, &empty_d),
    [OP_READDIR] = REQ_REP(&readdir_req_d, &readdir_rep_d),
    [OP_STATFS] = REQ_REP(&statfs_req_d, &statfs_rep_d),
    [OP_OPENX] = REQ_REP(&open_req_d, &openx_rep_d),
    [OP_LEASE_ACK] = REQ_REP(&lease_ack_req_d, &empty_d),
    [OP_INODELK] = REQ_REP(&inodelk_req_d, &empty_d),
    [OP_ENTRYLK] = REQ_REP(&entrylk_req_d, &empty_d),
    [OP_XATTROP] = REQ_REP(&xattrop_req_d, &xattrop_rep_d),
    [OP_HEAL_LIST] = REQ_REP(&heal_list_req_d, &heal_list_rep_d),
    [OP_CHECKSUM] = REQ_REP(&checksum_req_d, &checksum_rep_d),
    [OP_INVAL] = {[PROTO_EVENT] = &inval_event_d},
};

uint32_t proto_op_version(uint16_t op)
{
    return op == OP_LEASE_ACK ? 3 : op == OP_OPENX ? 2 : 1;
}

static const char *const op_names[OP__MAX] = {
    [OP_HELLO] = "HELLO",       [OP_AUTH] = "AUTH",
    [OP_PING] = "PING",         [OP_LOOKUP] = "LOOKUP",
    [OP_GETATTR] = "GETATTR",   [OP_SETATTR] = "SETATTR",
    [OP_MKDIR] = "MKDIR",       [OP_CREATE] = "CREATE",
    [OP_MKNOD] = "MKNOD",       [OP_SYMLINK] = "SYMLINK",
    [OP_LINK] = "LINK",         [OP_UNLINK] = "UNLINK",
    [OP_RMDIR] = "RMDIR",       [OP_RENAME] = "RENAME",
    [OP_READLINK] = "READLINK", [OP_OPEN] = "OPEN",
    [OP_READ] = "READ",         [OP_WRITE] = "WRITE",
    [OP_FSYNC] = "FSYNC",       [OP_RELEASE] = "RELEASE",
    [OP_READDIR] = "READDIR",   [OP_STATFS] = "STATFS",
    [OP_OPENX] = "OPENX",       [OP_LEASE_ACK] = "LEASE_ACK",
    [OP_INODELK] = "INODELK",   [OP_ENTRYLK] = "ENTRYLK",
    [OP_XATTROP] = "XATTROP",   [OP_HEAL_LIST] = "HEAL_LIST",
    [OP_CHECKSUM] = "CHECKSUM", [OP_INVAL] = "INVAL",
};

static const struct msg_desc *msg_desc(uint16_t op, uint8_t kind)
{
    if (op >= OP__MAX || kind > PROTO_EVENT)
        return NULL;
    return msgs[op][kind];
}

const char *proto_op_name(uint16_t op)
{
    if (op >= OP__MAX || op_names[op] == NULL)
        return "?";
    return op_names[op];
}

size_t proto_msg_size(uint16_t op, uint8_t kind)
{
    const struct msg_desc *d = msg_desc(op, kind);

    return d ? d->size : 0;
}

/* ---- shared validators: encoder and decoder both use these (inv. 3) ---- */

int proto_name_check(const char *name, size_t len)
{
    if (name == NULL || len == 0 || len > PROTO_NAME_MAX)
        return -EINVAL;
    if (memchr(name, '/', len) || memchr(name, '\0', len))
        return -EINVAL;
    if (name[0] == '.' && (len == 1 || (len == 2 && name[1] == '.')))
        return -EINVAL;
    return 0;
}

/* Text field content rule by type; s is len bytes, not NUL-terminated. */
static bool text_ok(uint8_t type, const char *s, size_t len)
{
    switch (type) {
    case F_NAME:
        return proto_name_check(s, len) == 0;
    case F_NAMEOPT:
        return len == 0 || proto_name_check(s, len) == 0;
    case F_PATH:
        return len >= 1 && len < PROTO_PATH_MAX && !memchr(s, '\0', len);
    case F_STR:
        return len <= PROTO_NAME_MAX && !memchr(s, '\0', len);
    }
    return false;
}

/* Capacity of the char array a text field is stored in. */
static size_t text_cap(uint8_t type)
{
    return type == F_PATH ? PROTO_PATH_MAX : PROTO_NAME_MAX + 1;
}

static bool u32_ok(const struct field *f, uint32_t v)
{
    return v >= f->min && v <= f->max && (v & ~f->mask) == 0;
}

static bool time_ok(const struct proto_time *t)
{
    return t->nsec < NSEC_PER_SEC;
}

static bool attr_ok(const struct proto_attr *a)
{
    return time_ok(&a->atime) && time_ok(&a->mtime) && time_ok(&a->ctime);
}

/* ---- little-endian primitives ---- */

static void put_le(uint8_t *p, uint64_t v, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;

    for (unsigned i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

void proto_id_put(uint8_t *buf, const struct rfs_id *id)
{
    put_le(buf, id->hi, 8);
    put_le(buf + 8, id->lo, 8);
}

void proto_id_get(const uint8_t *buf, struct rfs_id *id)
{
    id->hi = get_le(buf, 8);
    id->lo = get_le(buf + 8, 8);
}

void proto_hdr_encode(uint8_t *buf, const struct proto_hdr *h)
{
    put_le(buf, h->len, 4);
    put_le(buf + 4, h->op, 2);
    buf[6] = h->kind;
    buf[7] = h->flags;
    put_le(buf + 8, h->reqid, 8);
}

int proto_hdr_decode(const uint8_t *buf, struct proto_hdr *h)
{
    uint32_t len = (uint32_t)get_le(buf, 4);

    if (len < PROTO_HDR_SIZE || len > PROTO_MAX_FRAME)
        return -EPROTO;
    if (buf[6] > PROTO_EVENT || buf[7] != 0)
        return -EPROTO;
    h->len = len;
    h->op = (uint16_t)get_le(buf + 4, 2);
    h->kind = buf[6];
    h->flags = buf[7];
    h->reqid = get_le(buf + 8, 8);
    return 0;
}

/* ---- writer: counts only when buf is NULL (the sizing pass) ---- */

struct wr {
    uint8_t *buf; /* borrowed; NULL in the sizing pass */
    size_t pos;   /* bytes produced so far (written or counted) */
};

static void wr_put(struct wr *w, const void *src, size_t n)
{
    if (w->buf && n)
        memcpy(w->buf + w->pos, src, n);
    w->pos += n;
}

static void wr_int(struct wr *w, uint64_t v, unsigned n)
{
    uint8_t tmp[8];

    put_le(tmp, v, n);
    wr_put(w, tmp, n);
}

static void wr_time(struct wr *w, const struct proto_time *t)
{
    wr_int(w, (uint64_t)t->sec, 8);
    wr_int(w, t->nsec, 4);
}

static void wr_id(struct wr *w, const struct rfs_id *id)
{
    wr_int(w, id->hi, 8);
    wr_int(w, id->lo, 8);
}

static void wr_attr(struct wr *w, const struct proto_attr *a)
{
    wr_id(w, &a->id);
    wr_int(w, a->mode, 4);
    wr_int(w, a->nlink, 4);
    wr_int(w, a->uid, 4);
    wr_int(w, a->gid, 4);
    wr_int(w, a->rdev, 4);
    wr_int(w, a->size, 8);
    wr_int(w, a->blocks, 8);
    wr_time(w, &a->atime);
    wr_time(w, &a->mtime);
    wr_time(w, &a->ctime);
}

/*
 * Encode one field of msg.  Returns 0 or -EINVAL (a value decode would
 * refuse).  With split_tail, a bytes payload is not produced; its length is
 * stored in *tail_len instead.
 */
static int encode_field(struct wr *w, const struct field *f, const uint8_t *msg,
                        bool split_tail, size_t *tail_len)
{
    const void *p = msg + f->off;

    switch (f->type) {
    case F_U16: {
        uint16_t v;
        memcpy(&v, p, sizeof(v));
        wr_int(w, v, 2);
        return 0;
    }
    case F_U32: {
        uint32_t v;
        memcpy(&v, p, sizeof(v));
        if (!u32_ok(f, v))
            return -EINVAL;
        wr_int(w, v, 4);
        return 0;
    }
    case F_U64:
    case F_I64: {
        uint64_t v;
        memcpy(&v, p, sizeof(v));
        wr_int(w, v, 8);
        return 0;
    }
    case F_ID:
        wr_id(w, p);
        return 0;
    case F_TIME:
        if (!time_ok(p))
            return -EINVAL;
        wr_time(w, p);
        return 0;
    case F_ATTR:
        if (!attr_ok(p))
            return -EINVAL;
        wr_attr(w, p);
        return 0;
    case F_NAME:
    case F_NAMEOPT:
    case F_PATH:
    case F_STR: {
        size_t n = strnlen(p, text_cap(f->type));
        if (n == text_cap(f->type) || !text_ok(f->type, p, n))
            return -EINVAL; /* unterminated, or breaks the rule */
        wr_int(w, n, 2);
        wr_put(w, p, n);
        return 0;
    }
    case F_RAW32:
        wr_put(w, p, 32);
        return 0;
    case F_BYTES: {
        const struct proto_bytes *b = p;
        if (b->len > f->max || (b->len > 0 && b->data == NULL))
            return -EINVAL;
        wr_int(w, b->len, 4);
        if (split_tail)
            *tail_len = b->len;
        else
            wr_put(w, b->data, b->len);
        return 0;
    }
    case F_I64ARR: {
        uint32_t cnt;
        memcpy(&cnt, p, sizeof(cnt));
        if (cnt > PROTO_MAX_BRICKS)
            return -EINVAL;
        wr_int(w, cnt, 4);
        for (uint32_t i = 0; i < cnt; i++) {
            int64_t v;
            memcpy(&v, msg + f->off2 + i * sizeof(v), sizeof(v));
            wr_int(w, (uint64_t)v, 8);
        }
        return 0;
    }
    }
    return -EINVAL;
}

static int encode_fields(struct wr *w, const struct msg_desc *d, const void *msg,
                         bool split_tail, size_t *tail_len)
{
    int rc;

    if (d->check && !d->check(msg))
        return -EINVAL;
    for (size_t i = 0; i < d->nfields; i++) {
        assert(d->fields[i].type != F_BYTES || i + 1 == d->nfields); /* inv. 2 */
        rc = encode_field(w, &d->fields[i], msg, split_tail, tail_len);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static bool msg_has_tail(const struct msg_desc *d)
{
    return d->nfields > 0 && d->fields[d->nfields - 1].type == F_BYTES;
}

ssize_t proto_encode(uint8_t *buf, size_t cap, struct proto_hdr *h,
                     uint32_t status, const void *msg, struct proto_bytes *tail)
{
    const struct msg_desc *d = msg_desc(h->op, h->kind);
    bool is_reply = h->kind == PROTO_REPLY;
    bool has_body = !is_reply || status == 0;
    struct wr w = {NULL, PROTO_HDR_SIZE + (is_reply ? 4 : 0)};
    bool split;
    size_t tail_len = 0, total;
    int rc;

    if (h->kind > PROTO_EVENT || h->flags != 0)
        return -EINVAL;
    if (is_reply && status > STATUS_MAX)
        return -EINVAL;
    /* An error reply is just the status, for any op: the brick must be able
     * to answer an op it does not know (ENOSYS) with the request's reqid. */
    if (has_body && d == NULL)
        return -EINVAL;
    if (has_body && d->nfields > 0 && msg == NULL)
        return -EINVAL;
    split = tail != NULL && has_body && msg_has_tail(d);

    /* Pass 1: validate and size, so nothing is written on failure. */
    if (has_body) {
        rc = encode_fields(&w, d, msg, split, &tail_len);
        if (rc < 0)
            return rc;
    }
    total = w.pos + tail_len;
    if (total > PROTO_MAX_FRAME)
        return -EINVAL;
    if (w.pos > cap)
        return -ENOSPC;

    /* Pass 2: write. */
    h->len = (uint32_t)total;
    proto_hdr_encode(buf, h);
    w = (struct wr){buf, PROTO_HDR_SIZE};
    if (is_reply)
        wr_int(&w, status, 4);
    if (has_body) {
        rc = encode_fields(&w, d, msg, split, &tail_len);
        assert(rc == 0); /* pass 1 accepted the same input */
    }
    if (tail) {
        *tail = (struct proto_bytes){NULL, 0};
        if (split && tail_len > 0) {
            const struct field *f = &d->fields[d->nfields - 1];
            const struct proto_bytes *b =
                (const void *)((const uint8_t *)msg + f->off);
            tail->data = b->data;
            tail->len = b->len;
        }
    }
    return (ssize_t)w.pos;
}

static size_t field_bound(const struct field *f)
{
    switch (f->type) {
    case F_U16:
        return 2;
    case F_U32:
        return 4;
    case F_U64:
    case F_I64:
        return 8;
    case F_ID:
        return 16;
    case F_TIME:
        return TIME_WIRE_SIZE;
    case F_ATTR:
        return ATTR_WIRE_SIZE;
    case F_NAME:
    case F_NAMEOPT:
    case F_STR:
        return 2 + PROTO_NAME_MAX;
    case F_PATH:
        return 2 + PROTO_PATH_MAX - 1;
    case F_RAW32:
        return 32;
    case F_BYTES:
        return 4 + (size_t)f->max;
    case F_I64ARR:
        return 4 + 8 * PROTO_MAX_BRICKS;
    }
    return 0;
}

size_t proto_encode_bound(uint16_t op, uint8_t kind)
{
    const struct msg_desc *d = msg_desc(op, kind);
    size_t n = PROTO_HDR_SIZE;

    if (kind == PROTO_REPLY)
        n += 4; /* an error reply exists for every op */
    else if (d == NULL)
        return 0;
    for (size_t i = 0; d && i < d->nfields; i++)
        n += field_bound(&d->fields[i]);
    return n;
}

/* ---- reader ---- */

struct rd {
    const uint8_t *p; /* borrowed: the body */
    size_t len;
    size_t pos;
};

/* Invariant 1: the only gate to the body. */
static const uint8_t *rd_need(struct rd *r, size_t n)
{
    const uint8_t *q;

    if (n > r->len - r->pos)
        return NULL;
    q = r->p + r->pos;
    r->pos += n;
    return q;
}

static bool rd_int(struct rd *r, unsigned n, uint64_t *v)
{
    const uint8_t *q = rd_need(r, n);

    if (q == NULL)
        return false;
    *v = get_le(q, n);
    return true;
}

static bool rd_u32(struct rd *r, uint32_t *v)
{
    uint64_t x;

    if (!rd_int(r, 4, &x))
        return false;
    *v = (uint32_t)x;
    return true;
}

static bool rd_id(struct rd *r, struct rfs_id *id)
{
    const uint8_t *q = rd_need(r, 16);

    if (q == NULL)
        return false;
    proto_id_get(q, id);
    return true;
}

static bool rd_time(struct rd *r, struct proto_time *t)
{
    uint64_t sec;

    if (!rd_int(r, 8, &sec) || !rd_u32(r, &t->nsec))
        return false;
    t->sec = (int64_t)sec;
    return time_ok(t);
}

/* false for a short body or a bad timestamp: both are framing errors. */
static bool rd_attr(struct rd *r, struct proto_attr *a)
{
    return rd_id(r, &a->id) && rd_u32(r, &a->mode) && rd_u32(r, &a->nlink) &&
           rd_u32(r, &a->uid) && rd_u32(r, &a->gid) && rd_u32(r, &a->rdev) &&
           rd_int(r, 8, &a->size) && rd_int(r, 8, &a->blocks) &&
           rd_time(r, &a->atime) && rd_time(r, &a->mtime) &&
           rd_time(r, &a->ctime);
}

/*
 * Decode a text field into dst (text_cap(type) bytes).  Returns 0, -EPROTO
 * (short body), or -EINVAL (content breaks the rule; dst is "" and the field
 * has been skipped, so decoding can go on and find framing errors after it).
 */
static int rd_text(struct rd *r, uint8_t type, char *dst)
{
    uint64_t n;
    const uint8_t *q;

    if (!rd_int(r, 2, &n) || (q = rd_need(r, n)) == NULL)
        return -EPROTO;
    if (!text_ok(type, (const char *)q, n)) {
        dst[0] = '\0';
        return -EINVAL;
    }
    memcpy(dst, q, n);
    dst[n] = '\0';
    return 0;
}

/* Decode one field into msg (already zeroed).  0, -EPROTO or -EINVAL (see
 * rd_text). */
static int decode_field(struct rd *r, const struct field *f, uint8_t *msg)
{
    void *p = msg + f->off;
    uint64_t v;

    switch (f->type) {
    case F_U16: {
        if (!rd_int(r, 2, &v))
            return -EPROTO;
        uint16_t x = (uint16_t)v;
        memcpy(p, &x, sizeof(x));
        return 0;
    }
    case F_U32: {
        uint32_t x;
        if (!rd_u32(r, &x) || !u32_ok(f, x))
            return -EPROTO;
        memcpy(p, &x, sizeof(x));
        return 0;
    }
    case F_U64:
    case F_I64:
        if (!rd_int(r, 8, &v))
            return -EPROTO;
        memcpy(p, &v, sizeof(v));
        return 0;
    case F_ID:
        return rd_id(r, p) ? 0 : -EPROTO;
    case F_TIME:
        return rd_time(r, p) ? 0 : -EPROTO;
    case F_ATTR:
        return rd_attr(r, p) ? 0 : -EPROTO;
    case F_NAME:
    case F_NAMEOPT:
    case F_PATH:
        return rd_text(r, f->type, p);
    case F_STR: /* not a name: a bad one is a broken peer, never EINVAL */
        return rd_text(r, f->type, p) < 0 ? -EPROTO : 0;
    case F_RAW32: {
        const uint8_t *q = rd_need(r, 32);
        if (q == NULL)
            return -EPROTO;
        memcpy(p, q, 32);
        return 0;
    }
    case F_BYTES: {
        struct proto_bytes *b = p;
        const uint8_t *q;
        uint32_t n;
        if (!rd_u32(r, &n) || n > f->max || (q = rd_need(r, n)) == NULL)
            return -EPROTO;
        /* member-wise: the struct's padding stays zero (invariant 3) */
        b->data = n ? q : NULL; /* canonical: empty payload, no pointer */
        b->len = n;
        return 0;
    }
    case F_I64ARR: {
        uint32_t cnt;
        if (!rd_u32(r, &cnt) || cnt > PROTO_MAX_BRICKS)
            return -EPROTO;
        memcpy(p, &cnt, sizeof(cnt));
        for (uint32_t i = 0; i < cnt; i++) {
            if (!rd_int(r, 8, &v))
                return -EPROTO;
            memcpy(msg + f->off2 + i * sizeof(v), &v, sizeof(v));
        }
        return 0;
    }
    }
    return -EPROTO;
}

int proto_decode(const struct proto_hdr *h, const uint8_t *body, size_t len,
                 uint32_t *status, void *msg)
{
    const struct msg_desc *d;
    struct rd r = {body, len, 0};
    bool bad_text = false;
    uint32_t st = 0;
    int rc;

    if (h->kind > PROTO_EVENT)
        return -ENOSYS;
    if ((uint64_t)len + PROTO_HDR_SIZE != h->len)
        return -EPROTO;
    if (h->kind == PROTO_REPLY) {
        if (!rd_u32(&r, &st) || st > STATUS_MAX)
            return -EPROTO;
        if (status)
            *status = st;
        if (st != 0) /* an error reply carries nothing else, for any op */
            return r.pos == len ? 0 : -EPROTO;
    } else if (status) {
        *status = 0;
    }
    d = msg_desc(h->op, h->kind);
    if (d == NULL)
        return -ENOSYS;
    if (d->nfields > 0)
        memset(msg, 0, d->size); /* invariant 3: canonical struct */
    for (size_t i = 0; i < d->nfields; i++) {
        assert(d->fields[i].type != F_BYTES || i + 1 == d->nfields); /* inv. 2 */
        rc = decode_field(&r, &d->fields[i], msg);
        if (rc == -EINVAL && h->kind == PROTO_REQ) {
            bad_text = true; /* answer EINVAL, but only if framing holds */
            continue;
        }
        if (rc < 0)
            return -EPROTO;
    }
    if (r.pos != len)
        return -EPROTO;
    if (bad_text)
        return -EINVAL;
    if (d->check && !d->check(msg))
        return -EPROTO;
    return 0;
}

/* ---- readdir entry blobs ---- */

size_t proto_dirent_size(size_t name_len)
{
    return 2 + name_len + ATTR_WIRE_SIZE;
}

int proto_dirent_put(uint8_t *buf, size_t cap, size_t *off, const char *name,
                     const struct proto_attr *attr)
{
    size_t n = strnlen(name, PROTO_NAME_MAX + 1);
    struct wr w;

    if (proto_name_check(name, n) < 0 || !attr_ok(attr))
        return -EINVAL;
    if (*off > cap || proto_dirent_size(n) > cap - *off)
        return -ENOSPC;
    w = (struct wr){buf, *off};
    wr_int(&w, n, 2);
    wr_put(&w, name, n);
    wr_attr(&w, attr);
    *off = w.pos;
    return 0;
}

int proto_dirent_next(const struct proto_bytes *blob, size_t *off,
                      char name[PROTO_NAME_MAX + 1], struct proto_attr *attr)
{
    struct rd r = {blob->data, blob->len, *off};
    struct proto_attr a;
    char nm[PROTO_NAME_MAX + 1];

    memset(&a, 0, sizeof(a)); /* *attr gets zero padding, like decode */
    if (*off > blob->len)
        return -EPROTO;
    if (*off == blob->len)
        return 0;
    if (rd_text(&r, F_NAME, nm) < 0 || !rd_attr(&r, &a))
        return -EPROTO;
    memcpy(name, nm, strlen(nm) + 1);
    *attr = a;
    *off = r.pos;
    return 1;
}

/* ---- status <-> errno ---- */

uint32_t proto_status_from_errno(int rc)
{
    if (rc == 0)
        return 0;
    if (rc < 0 && rc >= -(int)STATUS_MAX)
        return (uint32_t)-rc;
    return EIO;
}

int proto_errno_from_status(uint32_t status)
{
    if (status == 0)
        return 0;
    if (status <= STATUS_MAX)
        return -(int)status;
    return -EIO;
}

/* ---- comparison (proto_cmp.h) ---- */

static bool time_eq(const struct proto_time *a, const struct proto_time *b)
{
    return a->sec == b->sec && a->nsec == b->nsec;
}

static bool attr_eq(const struct proto_attr *a, const struct proto_attr *b)
{
    return a->id.hi == b->id.hi && a->id.lo == b->id.lo &&
           a->mode == b->mode && a->nlink == b->nlink && a->uid == b->uid &&
           a->gid == b->gid && a->rdev == b->rdev && a->size == b->size &&
           a->blocks == b->blocks && time_eq(&a->atime, &b->atime) &&
           time_eq(&a->mtime, &b->mtime) && time_eq(&a->ctime, &b->ctime);
}

static bool field_eq(const struct field *f, const uint8_t *a, const uint8_t *b)
{
    const void *pa = a + f->off, *pb = b + f->off;

    switch (f->type) {
    case F_U16:
        return memcmp(pa, pb, 2) == 0;
    case F_U32:
        return memcmp(pa, pb, 4) == 0;
    case F_U64:
    case F_I64:
        return memcmp(pa, pb, 8) == 0;
    case F_ID:
        return memcmp(pa, pb, sizeof(struct rfs_id)) == 0; /* no padding */
    case F_TIME:
        return time_eq(pa, pb);
    case F_ATTR:
        return attr_eq(pa, pb);
    case F_NAME:
    case F_NAMEOPT:
    case F_PATH:
    case F_STR:
        return strncmp(pa, pb, text_cap(f->type)) == 0;
    case F_RAW32:
        return memcmp(pa, pb, 32) == 0;
    case F_BYTES: {
        const struct proto_bytes *x = pa, *y = pb;
        return x->len == y->len &&
               (x->len == 0 || memcmp(x->data, y->data, x->len) == 0);
    }
    case F_I64ARR: {
        uint32_t n;
        memcpy(&n, pa, sizeof(n));
        if (memcmp(pa, pb, sizeof(n)) != 0)
            return false;
        if (n > PROTO_MAX_BRICKS)
            n = PROTO_MAX_BRICKS;
        return memcmp(a + f->off2, b + f->off2, n * sizeof(int64_t)) == 0;
    }
    }
    return false;
}

bool proto_msg_equal(uint16_t op, uint8_t kind, const void *a, const void *b)
{
    const struct msg_desc *d = msg_desc(op, kind);

    if (d == NULL)
        return false;
    for (size_t i = 0; i < d->nfields; i++)
        if (!field_eq(&d->fields[i], a, b))
            return false;
    return true;
}
