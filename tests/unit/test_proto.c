/*
 * Codec tests: every (op, kind) message in proto.h round-trips, and every
 * malformed variant we can think of is refused the way proto.h promises.
 *
 * The sample table below holds one fully populated struct per message, with
 * every field set to a distinct non-zero value, so that a field missing from
 * the codec's table shows up as a round-trip mismatch (the decoder zeroes
 * the struct first).  Decoding always reads from a heap buffer of exactly the
 * frame's size, so ASan catches any read past the end.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "replicafs/proto.h"

enum text_type { T_NAME, T_NAMEOPT, T_PATH, T_STR };

struct text_field {
    size_t off;          /* offsetof the char array in the struct */
    enum text_type type;
};

struct sample {
    const char *what;
    uint16_t op;
    uint8_t kind;
    void *msg;       /* NULL for empty replies */
    size_t size;     /* sizeof the struct (1 for empty) */
    long bytes_off;  /* offsetof a struct proto_bytes, or -1 */
    int ntext;
    struct text_field text[2];
};

/* ---- sample messages, every field distinct and non-zero ---- */

static uint8_t payload[200];
static uint8_t dirents[4096];
static uint8_t heal_ids[3 * 16];

static struct hello_req m_hello_req;
static struct hello_rep m_hello_rep;
static struct auth_req m_auth_req;
static struct auth_rep m_auth_rep;
static struct ping_req m_ping_req;
static struct ping_rep m_ping_rep;
static struct lookup_req m_lookup_req;
static struct attr_rep m_attr_rep;
static struct getattr_req m_getattr_req;
static struct setattr_req m_setattr_req;
static struct mkdir_req m_mkdir_req;
static struct create_req m_create_req;
static struct create_rep m_create_rep;
static struct mknod_req m_mknod_req;
static struct symlink_req m_symlink_req;
static struct link_req m_link_req;
static struct unlink_req m_unlink_req;
static struct unlink_req m_rmdir_req;
static struct rename_req m_rename_req;
static struct readlink_req m_readlink_req;
static struct readlink_rep m_readlink_rep;
static struct open_req m_open_req;
static struct read_req m_read_req;
static struct read_rep m_read_rep;
static struct write_req m_write_req;
static struct write_rep m_write_rep;
static struct fsync_req m_fsync_req;
static struct release_req m_release_req;
static struct lease_ack_req m_lease_ack_req;
static struct readdir_req m_readdir_req;
static struct readdir_rep m_readdir_rep;
static struct statfs_req m_statfs_req;
static struct statfs_rep m_statfs_rep;
static struct inodelk_req m_inodelk_req;
static struct entrylk_req m_entrylk_req;
static struct xattrop_req m_xattrop_req;
static struct xattrop_rep m_xattrop_rep;
static struct openx_rep m_openx_rep;
static struct heal_list_req m_heal_list_req;
static struct heal_list_rep m_heal_list_rep;
static struct checksum_req m_checksum_req;
static struct checksum_rep m_checksum_rep;
static uint8_t csum_bytes[5 * 8];
static struct inval_event m_inval_event;

static uint64_t ctr = 0x0102030405060708ull;

static uint64_t nx(void)
{
    ctr = ctr * 6364136223846793005ull + 1442695040888963407ull;
    return ctr | 1;
}

static uint32_t nx32(void)
{
    return (uint32_t)(nx() >> 33) | 1;
}

static void fill_id(struct rfs_id *id)
{
    id->hi = nx();
    id->lo = nx();
}

/* Member-wise, so the struct's padding stays zero (memcmp below). */
static void fill_time(struct proto_time *t)
{
    t->sec = (int64_t)nx();
    t->nsec = nx32() % 1000000000u;
}

static void fill_attr(struct proto_attr *a)
{
    fill_id(&a->id);
    a->mode = nx32();
    a->nlink = nx32();
    a->uid = nx32();
    a->gid = nx32();
    a->rdev = nx32();
    a->size = nx();
    a->blocks = nx();
    fill_time(&a->atime);
    fill_time(&a->mtime);
    fill_time(&a->ctime);
}

static void set_bytes(struct proto_bytes *b, const uint8_t *data, size_t len)
{
    b->data = data;
    b->len = (uint32_t)len;
}

static void fill_raw(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)nx();
}

#define TXT(st, m, t) {offsetof(struct st, m), t}
#define S(op, kind, var, st, boff, n, ...)                                     \
    {#op "/" #kind, op, kind, &var, sizeof(struct st), boff, n, {__VA_ARGS__}}
#define EMPTY(op) {#op "/PROTO_REPLY", op, PROTO_REPLY, NULL, 1, -1, 0, {{0, 0}}}
#define NOTXT {0, 0}

static struct sample samples[] = {
    S(OP_HELLO, PROTO_REQ, m_hello_req, hello_req, -1, 1,
      TXT(hello_req, volume, T_STR)),
    S(OP_HELLO, PROTO_REPLY, m_hello_rep, hello_rep, -1, 0, NOTXT),
    S(OP_AUTH, PROTO_REQ, m_auth_req, auth_req, -1, 0, NOTXT),
    S(OP_AUTH, PROTO_REPLY, m_auth_rep, auth_rep, -1, 0, NOTXT),
    S(OP_PING, PROTO_REQ, m_ping_req, ping_req, -1, 0, NOTXT),
    S(OP_PING, PROTO_REPLY, m_ping_rep, ping_rep, -1, 0, NOTXT),
    S(OP_LOOKUP, PROTO_REQ, m_lookup_req, lookup_req, -1, 1,
      TXT(lookup_req, name, T_NAME)),
    S(OP_LOOKUP, PROTO_REPLY, m_attr_rep, attr_rep, -1, 0, NOTXT),
    S(OP_GETATTR, PROTO_REQ, m_getattr_req, getattr_req, -1, 0, NOTXT),
    S(OP_GETATTR, PROTO_REPLY, m_attr_rep, attr_rep, -1, 0, NOTXT),
    S(OP_SETATTR, PROTO_REQ, m_setattr_req, setattr_req, -1, 0, NOTXT),
    S(OP_SETATTR, PROTO_REPLY, m_attr_rep, attr_rep, -1, 0, NOTXT),
    S(OP_MKDIR, PROTO_REQ, m_mkdir_req, mkdir_req, -1, 1,
      TXT(mkdir_req, name, T_NAME)),
    S(OP_MKDIR, PROTO_REPLY, m_attr_rep, attr_rep, -1, 0, NOTXT),
    S(OP_CREATE, PROTO_REQ, m_create_req, create_req, -1, 1,
      TXT(create_req, name, T_NAME)),
    S(OP_CREATE, PROTO_REPLY, m_create_rep, create_rep, -1, 0, NOTXT),
    S(OP_MKNOD, PROTO_REQ, m_mknod_req, mknod_req, -1, 1,
      TXT(mknod_req, name, T_NAME)),
    S(OP_MKNOD, PROTO_REPLY, m_attr_rep, attr_rep, -1, 0, NOTXT),
    S(OP_SYMLINK, PROTO_REQ, m_symlink_req, symlink_req, -1, 2,
      TXT(symlink_req, name, T_NAME), TXT(symlink_req, target, T_PATH)),
    S(OP_SYMLINK, PROTO_REPLY, m_attr_rep, attr_rep, -1, 0, NOTXT),
    S(OP_LINK, PROTO_REQ, m_link_req, link_req, -1, 1,
      TXT(link_req, newname, T_NAME)),
    S(OP_LINK, PROTO_REPLY, m_attr_rep, attr_rep, -1, 0, NOTXT),
    S(OP_UNLINK, PROTO_REQ, m_unlink_req, unlink_req, -1, 1,
      TXT(unlink_req, name, T_NAME)),
    EMPTY(OP_UNLINK),
    S(OP_RMDIR, PROTO_REQ, m_rmdir_req, unlink_req, -1, 1,
      TXT(unlink_req, name, T_NAME)),
    EMPTY(OP_RMDIR),
    S(OP_RENAME, PROTO_REQ, m_rename_req, rename_req, -1, 2,
      TXT(rename_req, name, T_NAME), TXT(rename_req, newname, T_NAME)),
    EMPTY(OP_RENAME),
    S(OP_READLINK, PROTO_REQ, m_readlink_req, readlink_req, -1, 0, NOTXT),
    S(OP_READLINK, PROTO_REPLY, m_readlink_rep, readlink_rep, -1, 1,
      TXT(readlink_rep, target, T_PATH)),
    S(OP_OPEN, PROTO_REQ, m_open_req, open_req, -1, 0, NOTXT),
    S(OP_OPEN, PROTO_REPLY, m_attr_rep, attr_rep, -1, 0, NOTXT),
    S(OP_OPENX, PROTO_REQ, m_open_req, open_req, -1, 0, NOTXT),
    S(OP_OPENX, PROTO_REPLY, m_openx_rep, openx_rep, -1, 0, NOTXT),
    S(OP_LEASE_ACK, PROTO_REQ, m_lease_ack_req, lease_ack_req, -1, 0, NOTXT),
    EMPTY(OP_LEASE_ACK),
    S(OP_READ, PROTO_REQ, m_read_req, read_req, -1, 0, NOTXT),
    S(OP_READ, PROTO_REPLY, m_read_rep, read_rep,
      (long)offsetof(struct read_rep, data), 0, NOTXT),
    S(OP_WRITE, PROTO_REQ, m_write_req, write_req,
      (long)offsetof(struct write_req, data), 0, NOTXT),
    S(OP_WRITE, PROTO_REPLY, m_write_rep, write_rep, -1, 0, NOTXT),
    S(OP_FSYNC, PROTO_REQ, m_fsync_req, fsync_req, -1, 0, NOTXT),
    EMPTY(OP_FSYNC),
    S(OP_RELEASE, PROTO_REQ, m_release_req, release_req, -1, 0, NOTXT),
    EMPTY(OP_RELEASE),
    S(OP_READDIR, PROTO_REQ, m_readdir_req, readdir_req, -1, 0, NOTXT),
    S(OP_READDIR, PROTO_REPLY, m_readdir_rep, readdir_rep,
      (long)offsetof(struct readdir_rep, entries), 0, NOTXT),
    S(OP_STATFS, PROTO_REQ, m_statfs_req, statfs_req, -1, 0, NOTXT),
    S(OP_STATFS, PROTO_REPLY, m_statfs_rep, statfs_rep, -1, 0, NOTXT),
    S(OP_INODELK, PROTO_REQ, m_inodelk_req, inodelk_req, -1, 0, NOTXT),
    EMPTY(OP_INODELK),
    S(OP_ENTRYLK, PROTO_REQ, m_entrylk_req, entrylk_req, -1, 1,
      TXT(entrylk_req, name, T_NAMEOPT)),
    EMPTY(OP_ENTRYLK),
    S(OP_XATTROP, PROTO_REQ, m_xattrop_req, xattrop_req, -1, 0, NOTXT),
    S(OP_XATTROP, PROTO_REPLY, m_xattrop_rep, xattrop_rep, -1, 0, NOTXT),
    S(OP_HEAL_LIST, PROTO_REQ, m_heal_list_req, heal_list_req, -1, 0, NOTXT),
    S(OP_HEAL_LIST, PROTO_REPLY, m_heal_list_rep, heal_list_rep,
      (long)offsetof(struct heal_list_rep, ids), 0, NOTXT),
    S(OP_CHECKSUM, PROTO_REQ, m_checksum_req, checksum_req, -1, 0, NOTXT),
    S(OP_CHECKSUM, PROTO_REPLY, m_checksum_rep, checksum_rep,
      (long)offsetof(struct checksum_rep, sums), 0, NOTXT),
    S(OP_INVAL, PROTO_EVENT, m_inval_event, inval_event, -1, 1,
      TXT(inval_event, name, T_NAMEOPT)),
};
#define NSAMPLES (sizeof(samples) / sizeof(samples[0]))

static size_t dirents_len;

static void fill_samples(void)
{
    struct proto_attr a;

    fill_raw(payload, sizeof(payload));
    m_hello_req.magic = PROTO_MAGIC;
    m_hello_req.version_min = 1;
    m_hello_req.version_max = 7;
    fill_raw(m_hello_req.nonce, sizeof(m_hello_req.nonce));
    strcpy(m_hello_req.volume, "vol-upload");
    m_hello_rep.version = 1;
    m_hello_rep.brick = 3;
    fill_raw(m_hello_rep.nonce, sizeof(m_hello_rep.nonce));
    fill_raw(m_hello_rep.mac, sizeof(m_hello_rep.mac));
    fill_raw(m_auth_req.mac, sizeof(m_auth_req.mac));
    m_auth_rep.brick_uuid_hi = nx();
    m_auth_rep.brick_uuid_lo = nx();
    m_ping_req.stamp = nx();
    m_ping_rep.stamp = nx();
    fill_id(&m_lookup_req.parent);
    strcpy(m_lookup_req.name, "lookup-name.jpg");
    m_lookup_req.flags = LOOKUP_CLEAN | LOOKUP_OWN_MARK;
    fill_attr(&m_attr_rep.attr);
    fill_id(&m_getattr_req.id);
    fill_id(&m_setattr_req.id);
    m_setattr_req.valid = SETATTR__ALL;
    m_setattr_req.mode = nx32();
    m_setattr_req.uid = nx32();
    m_setattr_req.gid = nx32();
    m_setattr_req.size = nx();
    fill_time(&m_setattr_req.atime);
    fill_time(&m_setattr_req.mtime);
    fill_id(&m_mkdir_req.parent);
    strcpy(m_mkdir_req.name, "mkdir-name");
    fill_id(&m_mkdir_req.id);
    m_mkdir_req.mode = nx32();
    m_mkdir_req.uid = nx32();
    m_mkdir_req.gid = nx32();
    fill_id(&m_create_req.parent);
    strcpy(m_create_req.name, "create-name");
    fill_id(&m_create_req.id);
    m_create_req.mode = nx32();
    m_create_req.uid = nx32();
    m_create_req.gid = nx32();
    m_create_req.flags = CREATE_EXCL | CREATE_OPEN | CREATE_LOCK;
    m_create_req.lk_owner = nx();
    fill_attr(&m_create_rep.attr);
    m_create_rep.created = 1;
    fill_id(&m_mknod_req.parent);
    strcpy(m_mknod_req.name, "mknod-name");
    fill_id(&m_mknod_req.id);
    m_mknod_req.mode = nx32();
    m_mknod_req.rdev = nx32();
    m_mknod_req.uid = nx32();
    m_mknod_req.gid = nx32();
    fill_id(&m_symlink_req.parent);
    strcpy(m_symlink_req.name, "symlink-name");
    fill_id(&m_symlink_req.id);
    strcpy(m_symlink_req.target, "../some/where/target");
    m_symlink_req.uid = nx32();
    m_symlink_req.gid = nx32();
    fill_id(&m_link_req.id);
    fill_id(&m_link_req.newparent);
    strcpy(m_link_req.newname, "link-newname");
    fill_id(&m_unlink_req.parent);
    strcpy(m_unlink_req.name, "unlink-name");
    fill_id(&m_rmdir_req.parent);
    strcpy(m_rmdir_req.name, "rmdir-name");
    fill_id(&m_rename_req.parent);
    strcpy(m_rename_req.name, "rename-old");
    fill_id(&m_rename_req.newparent);
    strcpy(m_rename_req.newname, "rename-new");
    m_rename_req.flags = RENAME_FLAG_NOREPLACE;
    fill_id(&m_readlink_req.id);
    strcpy(m_readlink_rep.target, "/abs/readlink/target");
    fill_id(&m_open_req.id);
    m_open_req.flags = O_RDONLY | OPEN_LEASE;
    fill_id(&m_read_req.id);
    m_read_req.offset = nx();
    m_read_req.size = PROTO_MAX_IO;
    set_bytes(&m_read_rep.data, payload, 77);
    fill_id(&m_write_req.id);
    m_write_req.offset = nx();
    set_bytes(&m_write_req.data, payload, sizeof(payload));
    m_write_rep.count = 12345;
    fill_attr(&m_write_rep.attr);
    fill_id(&m_fsync_req.id);
    m_fsync_req.datasync = 1;
    fill_id(&m_release_req.id);
    fill_id(&m_lease_ack_req.id);
    fill_id(&m_readdir_req.id);
    m_readdir_req.cookie = nx();
    m_readdir_req.max_bytes = PROTO_READDIR_MAX;
    m_readdir_req.flags = READDIR_SWEEP;
    dirents_len = 0;
    for (int i = 0; i < 5; i++) {
        char nm[32];
        snprintf(nm, sizeof(nm), "entry-%d%s", i, i == 4 ? ".longer-ext" : "");
        fill_attr(&a);
        cr_assert_eq(proto_dirent_put(dirents, sizeof(dirents), &dirents_len,
                                      nm, &a), 0);
    }
    m_readdir_rep.next_cookie = nx();
    m_readdir_rep.eof = 1;
    m_readdir_rep.count = 5;
    m_readdir_rep.dirty = 1;
    set_bytes(&m_readdir_rep.entries, dirents, dirents_len);
    m_statfs_req.reserved = 0;
    m_statfs_rep.bsize = nx();
    m_statfs_rep.blocks = nx();
    m_statfs_rep.bfree = nx();
    m_statfs_rep.bavail = nx();
    m_statfs_rep.files = nx();
    m_statfs_rep.ffree = nx();
    m_statfs_rep.namemax = 255;
    fill_id(&m_inodelk_req.id);
    m_inodelk_req.owner = nx();
    m_inodelk_req.type = LK_WR;
    m_inodelk_req.flags = LK_NONBLOCK;
    fill_id(&m_entrylk_req.parent);
    strcpy(m_entrylk_req.name, "entrylk-name");
    m_entrylk_req.owner = nx();
    m_entrylk_req.type = LK_UN;
    m_entrylk_req.flags = LK_NONBLOCK;
    fill_id(&m_xattrop_req.id);
    m_xattrop_req.dirty = -3;
    m_xattrop_req.npending = 3;
    m_xattrop_req.pending[0] = -1;
    m_xattrop_req.pending[1] = (int64_t)nx();
    m_xattrop_req.pending[2] = 7;
    m_xattrop_req.clear_suspect = nx();
    m_xattrop_req.lk = XO_LOCK | XO_NONBLOCK | XO_ENTRY;
    m_xattrop_req.lk_owner = nx();
    strcpy(m_xattrop_req.lk_name, "xattrop-lk-name");
    m_xattrop_rep.dirty = (int64_t)nx();
    m_xattrop_rep.npending = PROTO_MAX_BRICKS;
    for (int i = 0; i < PROTO_MAX_BRICKS; i++)
        m_xattrop_rep.pending[i] = (int64_t)nx();
    m_xattrop_rep.suspect = nx();
    fill_attr(&m_openx_rep.attr);
    m_openx_rep.dirty = (int64_t)nx();
    m_openx_rep.npending = 3;
    for (int i = 0; i < 3; i++)
        m_openx_rep.pending[i] = (int64_t)nx();
    m_openx_rep.suspect = nx();
    m_heal_list_req.cookie = nx();
    m_heal_list_req.max = PROTO_HEAL_LIST_MAX;
    m_heal_list_rep.next_cookie = nx();
    m_heal_list_rep.eof = 1;
    m_heal_list_rep.count = 3;
    for (int i = 0; i < 3; i++) {
        struct rfs_id id;
        fill_id(&id);
        proto_id_put(heal_ids + 16 * i, &id);
    }
    set_bytes(&m_heal_list_rep.ids, heal_ids, sizeof(heal_ids));
    fill_id(&m_checksum_req.id);
    m_checksum_req.offset = 3u << 16;
    m_checksum_req.length = nx();
    m_checksum_req.block_size = 1u << 16;
    m_checksum_req.flags = CHECKSUM_DEEP;
    m_checksum_rep.size = nx();
    m_checksum_rep.count = 5;
    fill_raw(csum_bytes, sizeof(csum_bytes));
    set_bytes(&m_checksum_rep.sums, csum_bytes, sizeof(csum_bytes));
    fill_id(&m_inval_event.id);
    m_inval_event.what = INVAL_ATTR | INVAL_DATA | INVAL_ENTRY | INVAL_MARKERS |
                         INVAL_RECALL;
    fill_id(&m_inval_event.parent);
    strcpy(m_inval_event.name, "inval-name");
}

TestSuite(proto, .init = fill_samples);

/* ---- helpers ---- */

static struct proto_hdr hdr_for(const struct sample *s)
{
    return (struct proto_hdr){0, s->op, s->kind, 0,
                              s->kind == PROTO_EVENT ? 0 : 0x1122334455667788ull};
}

/* Encode s (status 0) into an exact-size heap frame. */
static uint8_t *enc(const struct sample *s, const void *msg, size_t *n)
{
    struct proto_hdr h = hdr_for(s);
    size_t cap = proto_encode_bound(s->op, s->kind);
    uint8_t *buf = malloc(cap);
    ssize_t rc;

    cr_assert_not_null(buf);
    rc = proto_encode(buf, cap, &h, 0, msg, NULL);
    cr_assert_gt(rc, 0, "%s: encode %zd", s->what, rc);
    cr_assert_eq(h.len, (uint32_t)rc, "%s", s->what);
    *n = (size_t)rc;
    return realloc(buf, *n);
}

/* Decode a whole frame; frame must be exactly n heap bytes so ASan sees
 * overruns.  Header problems are returned as they are. */
static int dec(const uint8_t *frame, size_t n, uint32_t *st, void *out)
{
    struct proto_hdr h;
    int rc;

    cr_assert_geq(n, PROTO_HDR_SIZE);
    rc = proto_hdr_decode(frame, &h);
    if (rc < 0)
        return rc;
    cr_assert_eq(h.len, n);
    return proto_decode(&h, frame + PROTO_HDR_SIZE, n - PROTO_HDR_SIZE, st,
                        out);
}

/* A copy of frame with [at, at+oldlen) replaced by rep[newlen] and the
 * header's len fixed up; exact-size heap buffer. */
static uint8_t *frame_splice(const uint8_t *frame, size_t n, size_t at, size_t oldlen,
                       const void *rep, size_t newlen, size_t *outn)
{
    size_t m = n - oldlen + newlen;
    uint8_t *b = malloc(m);

    cr_assert_not_null(b);
    memcpy(b, frame, at);
    memcpy(b + at, rep, newlen);
    memcpy(b + at + newlen, frame + at + oldlen, n - at - oldlen);
    b[0] = (uint8_t)m;
    b[1] = (uint8_t)(m >> 8);
    b[2] = (uint8_t)(m >> 16);
    b[3] = (uint8_t)(m >> 24);
    *outn = m;
    return b;
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Compare decoded with original: bytes fields by content, the rest by
 * memcmp of the whole struct (so padding and unused tails count too). */
static void assert_same(const struct sample *s, const void *orig, void *got)
{
    if (s->msg == NULL)
        return;
    if (s->bytes_off >= 0) {
        struct proto_bytes *a = (void *)((const uint8_t *)orig + s->bytes_off);
        struct proto_bytes *b = (void *)((uint8_t *)got + s->bytes_off);
        cr_assert_eq(a->len, b->len, "%s: bytes len", s->what);
        if (a->len)
            cr_assert(memcmp(a->data, b->data, a->len) == 0, "%s", s->what);
        b->data = a->data;
    }
    cr_assert(memcmp(orig, got, s->size) == 0, "%s: round trip differs",
              s->what);
}

/* ---- every message ---- */

Test(proto, samples_cover_every_message)
{
    int found = 0;

    for (unsigned op = 0; op < 65536; op++)
        for (unsigned k = 0; k <= 3; k++) {
            size_t sz = proto_msg_size((uint16_t)op, (uint8_t)k);
            if (sz == 0)
                continue;
            found++;
            bool covered = false;
            for (size_t i = 0; i < NSAMPLES; i++)
                if (samples[i].op == op && samples[i].kind == k) {
                    covered = true;
                    cr_assert_eq(samples[i].size, sz, "%s", samples[i].what);
                }
            cr_assert(covered, "op %u kind %u has no sample", op, k);
        }
    cr_assert_eq((size_t)found, NSAMPLES);
    cr_assert_eq(NSAMPLES, 59); /* 29 ops x req+reply, plus INVAL */
}

Test(proto, msg_size_mapping)
{
    cr_assert_eq(proto_msg_size(OP_LOOKUP, PROTO_REPLY), sizeof(struct attr_rep));
    cr_assert_eq(proto_msg_size(OP_OPEN, PROTO_REPLY), sizeof(struct attr_rep));
    cr_assert_eq(proto_msg_size(OP_OPENX, PROTO_REPLY), sizeof(struct openx_rep));
    cr_assert_eq(proto_msg_size(OP_CREATE, PROTO_REPLY),
                 sizeof(struct create_rep));
    cr_assert_eq(proto_msg_size(OP_RMDIR, PROTO_REQ), sizeof(struct unlink_req));
    cr_assert_eq(proto_msg_size(OP_UNLINK, PROTO_REPLY), 1);
    cr_assert_eq(proto_msg_size(OP_ENTRYLK, PROTO_REPLY), 1);
    cr_assert_eq(proto_msg_size(OP_INVAL, PROTO_EVENT),
                 sizeof(struct inval_event));
    cr_assert_eq(proto_msg_size(OP_INVAL, PROTO_REQ), 0);
    cr_assert_eq(proto_msg_size(OP_INVAL, PROTO_REPLY), 0);
    cr_assert_eq(proto_msg_size(OP_LOOKUP, PROTO_EVENT), 0);
    cr_assert_eq(proto_msg_size(0, PROTO_REQ), 0);
    cr_assert_eq(proto_msg_size(OP__MAX, PROTO_REQ), 0);
    cr_assert_eq(proto_msg_size(OP_PING, 3), 0);
    cr_assert_eq(proto_msg_size(0xffff, PROTO_REPLY), 0);
}

Test(proto, op_names)
{
    cr_assert_str_eq(proto_op_name(OP_LOOKUP), "LOOKUP");
    cr_assert_str_eq(proto_op_name(OP_HEAL_LIST), "HEAL_LIST");
    cr_assert_str_eq(proto_op_name(OP_INVAL), "INVAL");
    cr_assert_str_eq(proto_op_name(0), "?");
    cr_assert_str_eq(proto_op_name(4), "?");
    cr_assert_str_eq(proto_op_name(0xffff), "?");
    for (size_t i = 0; i < NSAMPLES; i++)
        cr_assert_str_neq(proto_op_name(samples[i].op), "?");
}

Test(proto, every_message_round_trips)
{
    for (size_t i = 0; i < NSAMPLES; i++) {
        const struct sample *s = &samples[i];
        size_t n;
        uint8_t *f = enc(s, s->msg, &n);
        void *out = malloc(s->size);
        uint32_t st = 0xdead;
        struct proto_hdr h;

        cr_assert_leq(n, proto_encode_bound(s->op, s->kind), "%s", s->what);
        cr_assert_eq(proto_hdr_decode(f, &h), 0);
        cr_assert_eq(h.op, s->op);
        cr_assert_eq(h.kind, s->kind);
        cr_assert_eq(h.reqid, hdr_for(s).reqid);
        memset(out, 0xa5, s->size);
        cr_assert_eq(dec(f, n, &st, out), 0, "%s", s->what);
        if (s->kind == PROTO_REPLY)
            cr_assert_eq(st, 0);
        assert_same(s, s->msg, out);
        free(out);
        free(f);
    }
}

Test(proto, every_truncation_is_eproto)
{
    for (size_t i = 0; i < NSAMPLES; i++) {
        const struct sample *s = &samples[i];
        size_t n;
        uint8_t *f = enc(s, s->msg, &n);
        void *out = malloc(s->size);
        uint32_t st;

        for (size_t l = PROTO_HDR_SIZE; l < n; l++) {
            uint8_t *t = malloc(l);
            memcpy(t, f, l);
            put32(t, (uint32_t)l);
            cr_assert_eq(dec(t, l, &st, out), -EPROTO, "%s cut at %zu",
                         s->what, l);
            free(t);
        }
        free(out);
        free(f);
    }
}

Test(proto, trailing_byte_is_eproto)
{
    for (size_t i = 0; i < NSAMPLES; i++) {
        const struct sample *s = &samples[i];
        size_t n, m;
        uint8_t *f = enc(s, s->msg, &n);
        uint8_t zero = 0;
        uint8_t *t = frame_splice(f, n, n, 0, &zero, 1, &m);
        void *out = malloc(s->size);
        uint32_t st;

        cr_assert_eq(dec(t, m, &st, out), -EPROTO, "%s", s->what);
        free(out);
        free(t);
        free(f);
    }
}

Test(proto, header_mismatched_body_length_is_eproto)
{
    const struct sample *s = &samples[0];
    size_t n;
    uint8_t *f = enc(s, s->msg, &n);
    struct proto_hdr h;
    struct hello_req out;

    cr_assert_eq(proto_hdr_decode(f, &h), 0);
    cr_assert_eq(proto_decode(&h, f + PROTO_HDR_SIZE, n - PROTO_HDR_SIZE - 1,
                              NULL, &out),
                 -EPROTO);
    free(f);
}

Test(proto, cap_too_small_is_enospc_and_writes_nothing)
{
    for (size_t i = 0; i < NSAMPLES; i++) {
        const struct sample *s = &samples[i];
        size_t n;
        uint8_t *f = enc(s, s->msg, &n);
        uint8_t *buf = malloc(n);
        struct proto_hdr h = hdr_for(s);

        memset(buf, 0x5a, n);
        cr_assert_eq(proto_encode(buf, n - 1, &h, 0, s->msg, NULL), -ENOSPC,
                     "%s", s->what);
        cr_assert_eq(h.len, 0, "h->len untouched on failure");
        for (size_t j = 0; j < n; j++)
            cr_assert_eq(buf[j], 0x5a);
        cr_assert_eq(proto_encode(buf, n, &h, 0, s->msg, NULL), (ssize_t)n);
        cr_assert(memcmp(buf, f, n) == 0);
        free(buf);
        free(f);
    }
}

Test(proto, tail_gives_same_wire_bytes)
{
    for (size_t i = 0; i < NSAMPLES; i++) {
        const struct sample *s = &samples[i];
        size_t n;
        uint8_t *f = enc(s, s->msg, &n);
        uint8_t *buf = malloc(n);
        struct proto_hdr h = hdr_for(s);
        struct proto_bytes tail = {(const uint8_t *)1, 99};
        ssize_t rc = proto_encode(buf, n, &h, 0, s->msg, &tail);

        cr_assert_gt(rc, 0, "%s", s->what);
        cr_assert_eq(h.len, n, "%s: len counts the tail", s->what);
        cr_assert_eq((size_t)rc + tail.len, n, "%s", s->what);
        cr_assert(memcmp(buf, f, (size_t)rc) == 0, "%s", s->what);
        if (s->bytes_off < 0) {
            cr_assert_null(tail.data, "%s", s->what);
            cr_assert_eq(tail.len, 0);
        } else {
            const struct proto_bytes *b =
                (const void *)((const uint8_t *)s->msg + s->bytes_off);
            cr_assert_eq(tail.data, b->data, "%s: tail not copied", s->what);
            cr_assert(memcmp(f + rc, tail.data, tail.len) == 0);
            /* the header-only part fits in a smaller buffer */
            cr_assert_eq(proto_encode(buf, (size_t)rc, &h, 0, s->msg, &tail),
                         rc);
        }
        free(buf);
        free(f);
    }
}

Test(proto, error_reply_is_status_only)
{
    for (size_t i = 0; i < NSAMPLES; i++) {
        const struct sample *s = &samples[i];
        struct proto_hdr h = hdr_for(s);
        uint8_t buf[64];
        uint8_t out[8192];
        uint32_t st = 0;
        size_t m;

        if (s->kind != PROTO_REPLY)
            continue;
        /* msg is ignored for an error reply (garbage would be refused) */
        cr_assert_eq(proto_encode(buf, sizeof(buf), &h, ENOENT, NULL, NULL), 20);
        cr_assert_eq(h.len, 20);
        uint8_t *f = malloc(20);
        memcpy(f, buf, 20);
        memset(out, 0x77, sizeof(out));
        cr_assert_eq(dec(f, 20, &st, out), 0, "%s", s->what);
        cr_assert_eq(st, ENOENT);
        for (size_t j = 0; j < s->size; j++)
            cr_assert_eq(out[j], 0x77, "%s: msg untouched", s->what);
        uint8_t junk = 0;
        uint8_t *t = frame_splice(f, 20, 20, 0, &junk, 1, &m);
        cr_assert_eq(dec(t, m, &st, out), -EPROTO, "%s: body after error",
                     s->what);
        free(t);
        free(f);
    }
}

Test(proto, status_over_4095_is_refused)
{
    struct proto_hdr h = {0, OP_PING, PROTO_REPLY, 0, 1};
    uint8_t buf[64];
    struct ping_rep rep = {7};
    uint32_t st;

    cr_assert_eq(proto_encode(buf, sizeof(buf), &h, 4096, &rep, NULL), -EINVAL);
    cr_assert_eq(proto_encode(buf, sizeof(buf), &h, 4095, &rep, NULL), 20);
    uint8_t *f = malloc(20);
    memcpy(f, buf, 20);
    put32(f + 16, 4096);
    cr_assert_eq(dec(f, 20, &st, &rep), -EPROTO);
    put32(f + 16, 0xffffffffu);
    cr_assert_eq(dec(f, 20, &st, &rep), -EPROTO);
    free(f);
}

Test(proto, unknown_op)
{
    struct proto_hdr h = {0, 99, PROTO_REQ, 0, 5};
    uint8_t buf[64], body[4] = {0};
    struct ping_req m = {1};
    uint32_t st;

    cr_assert_eq(proto_encode(buf, sizeof(buf), &h, 0, &m, NULL), -EINVAL);
    h.len = PROTO_HDR_SIZE + 4;
    cr_assert_eq(proto_decode(&h, body, 4, &st, &m), -ENOSYS);
    /* but a brick can answer it: an error reply exists for any op */
    h.kind = PROTO_REPLY;
    cr_assert_eq(proto_encode(buf, sizeof(buf), &h, ENOSYS, NULL, NULL), 20);
    cr_assert_eq(proto_encode_bound(99, PROTO_REPLY), 20);
    cr_assert_eq(proto_encode_bound(99, PROTO_REQ), 0);
    uint8_t *f = malloc(20);
    memcpy(f, buf, 20);
    cr_assert_eq(dec(f, 20, &st, NULL), 0);
    cr_assert_eq(st, ENOSYS);
    put32(f + 16, 0);
    cr_assert_eq(dec(f, 20, &st, NULL), -ENOSYS);
    free(f);
    /* event-only op asked as a request, reply or event of a request op */
    h = (struct proto_hdr){0, OP_INVAL, PROTO_REQ, 0, 5};
    cr_assert_eq(proto_encode(buf, sizeof(buf), &h, 0, &m_inval_event, NULL),
                 -EINVAL);
    h = (struct proto_hdr){0, OP_LOOKUP, PROTO_EVENT, 0, 0};
    cr_assert_eq(proto_encode(buf, sizeof(buf), &h, 0, &m_lookup_req, NULL),
                 -EINVAL);
}

Test(proto, encode_refuses_bad_header_fields)
{
    struct proto_hdr h = {0, OP_PING, PROTO_REQ, 1, 5};
    uint8_t buf[64];
    struct ping_req m = {1};

    cr_assert_eq(proto_encode(buf, sizeof(buf), &h, 0, &m, NULL), -EINVAL);
    h.flags = 0;
    h.kind = 3;
    cr_assert_eq(proto_encode(buf, sizeof(buf), &h, 0, &m, NULL), -EINVAL);
    h.kind = PROTO_REQ;
    cr_assert_eq(proto_encode(buf, sizeof(buf), &h, 0, NULL, NULL), -EINVAL);
}

/* ---- frame header ---- */

Test(proto, header_limits)
{
    uint8_t b[PROTO_HDR_SIZE];
    struct proto_hdr in = {0, OP_READ, PROTO_REQ, 0, 0x0102030405060708ull};
    struct proto_hdr out, keep;

    in.len = PROTO_HDR_SIZE;
    proto_hdr_encode(b, &in);
    cr_assert_eq(b[0], 16);
    cr_assert_eq(b[4], OP_READ);
    cr_assert_eq(b[8], 0x08);
    cr_assert_eq(b[15], 0x01);
    cr_assert_eq(proto_hdr_decode(b, &out), 0);
    cr_assert(memcmp(&in, &out, sizeof(in)) == 0);

    in.len = PROTO_MAX_FRAME;
    proto_hdr_encode(b, &in);
    cr_assert_eq(proto_hdr_decode(b, &out), 0);
    cr_assert_eq(out.len, PROTO_MAX_FRAME);

    memset(&keep, 0x33, sizeof(keep));
    uint32_t bad_len[] = {0, 1, 15, PROTO_MAX_FRAME + 1, 0xffffffffu};
    for (size_t i = 0; i < sizeof(bad_len) / sizeof(bad_len[0]); i++) {
        in.len = bad_len[i];
        proto_hdr_encode(b, &in);
        out = keep;
        cr_assert_eq(proto_hdr_decode(b, &out), -EPROTO, "len %u", bad_len[i]);
        cr_assert(memcmp(&out, &keep, sizeof(out)) == 0, "untouched");
    }
    in.len = 100;
    in.kind = 3;
    proto_hdr_encode(b, &in);
    cr_assert_eq(proto_hdr_decode(b, &out), -EPROTO);
    in.kind = PROTO_EVENT;
    in.flags = 0x80;
    proto_hdr_encode(b, &in);
    cr_assert_eq(proto_hdr_decode(b, &out), -EPROTO);
    /* unknown op is left for the dispatcher */
    in.flags = 0;
    in.op = 0xfffe;
    proto_hdr_encode(b, &in);
    cr_assert_eq(proto_hdr_decode(b, &out), 0);
    cr_assert_eq(out.op, 0xfffe);
}

/* ---- names ---- */

struct bad_text {
    const char *s;
    size_t len;
};

static const struct bad_text name_bad[] = {
    {"", 0}, {".", 1}, {"..", 2}, {"a/b", 3}, {"/", 1}, {"a\0b", 3},
    {"\0", 1}, {NULL, 256}, /* NULL: len bytes of 'a' */
};

static bool text_bad(enum text_type t, const struct bad_text *b)
{
    bool has_nul = b->s && memchr(b->s, '\0', b->len);

    switch (t) {
    case T_NAME:
        return true;
    case T_NAMEOPT:
        return b->len != 0;
    case T_PATH:
        return b->len == 0 || has_nul || b->len >= PROTO_PATH_MAX;
    case T_STR:
        return has_nul || b->len > PROTO_NAME_MAX;
    }
    return true;
}

static const char *text_of(const struct bad_text *b, char *tmp)
{
    if (b->s)
        return b->s;
    memset(tmp, 'a', b->len);
    return tmp;
}

/* Replace the text field whose current value is `cur` (found in frame f by
 * its bytes, with its u16 length before it) by new[len]. */
static uint8_t *respell(const uint8_t *f, size_t n, const char *cur,
                        const char *new, size_t len, size_t *m)
{
    size_t cl = strlen(cur);
    uint8_t *rep = malloc(2 + len + 1);
    const uint8_t *at = memmem(f + PROTO_HDR_SIZE, n - PROTO_HDR_SIZE, cur, cl);

    cr_assert_not_null(at, "marker %s not found", cur);
    cr_assert_eq((size_t)(at[-2] | at[-1] << 8), cl);
    rep[0] = (uint8_t)len;
    rep[1] = (uint8_t)(len >> 8);
    memcpy(rep + 2, new, len);
    uint8_t *out = frame_splice(f, n, (size_t)(at - 2 - f), 2 + cl, rep, 2 + len, m);
    free(rep);
    return out;
}

Test(proto, bad_names_refused_both_ways)
{
    static char tmp[8192];
    struct bad_text extra[] = {
        {NULL, PROTO_PATH_MAX}, /* 4096: one over the path limit */
        {"a/b/../c", 8},        /* fine as a path */
    };

    for (size_t i = 0; i < NSAMPLES; i++) {
        const struct sample *s = &samples[i];
        for (int j = 0; j < s->ntext; j++) {
            const struct text_field *tf = &s->text[j];
            const char *cur = (const char *)s->msg + tf->off;
            size_t cap = tf->type == T_PATH ? PROTO_PATH_MAX : PROTO_NAME_MAX + 1;
            size_t nb = sizeof(name_bad) / sizeof(name_bad[0]);
            size_t n;
            uint8_t *f = enc(s, s->msg, &n);

            for (size_t k = 0; k < nb + 2; k++) {
                const struct bad_text *b = k < nb ? &name_bad[k] : &extra[k - nb];
                const char *txt = text_of(b, tmp);
                bool bad = text_bad(tf->type, b);
                int want = !bad ? 0
                           : (s->kind == PROTO_REQ && tf->type != T_STR)
                               ? -EINVAL
                               : -EPROTO;
                size_t m;
                uint8_t *g = respell(f, n, cur, txt, b->len, &m);
                void *out = malloc(s->size);
                uint32_t st;

                cr_assert_eq(dec(g, m, &st, out), want, "%s field %d case %zu",
                             s->what, j, k);
                if (want == -EINVAL) {
                    /* a framing error after the bad name still wins */
                    uint8_t *t = malloc(m - 1);
                    memcpy(t, g, m - 1);
                    put32(t, (uint32_t)(m - 1));
                    cr_assert_eq(dec(t, m - 1, &st, out), -EPROTO, "%s",
                                 s->what);
                    free(t);
                }
                /* encode side: whatever a C string can express */
                if (!memchr(txt, '\0', b->len) || b->len == 0) {
                    uint8_t *copy = malloc(s->size);
                    uint8_t buf[8192];
                    struct proto_hdr h = hdr_for(s);
                    memcpy(copy, s->msg, s->size);
                    if (b->len < cap) {
                        memcpy(copy + tf->off, txt, b->len);
                        copy[tf->off + b->len] = '\0';
                    } else {
                        memset(copy + tf->off, 'a', cap); /* unterminated */
                    }
                    ssize_t rc = proto_encode(buf, sizeof(buf), &h, 0, copy, NULL);
                    if (bad || b->len >= cap)
                        cr_assert_eq(rc, -EINVAL, "%s field %d case %zu",
                                     s->what, j, k);
                    else
                        cr_assert_gt(rc, 0, "%s field %d case %zu", s->what,
                                     j, k);
                    free(copy);
                }
                free(out);
                free(g);
            }
            free(f);
        }
    }
}

Test(proto, longest_names_accepted)
{
    struct rename_req r;
    struct symlink_req sl;
    uint8_t buf[16384];
    struct proto_hdr h = {0, OP_RENAME, PROTO_REQ, 0, 1};
    ssize_t n;

    memset(&r, 0, sizeof(r));
    memset(r.name, 'x', PROTO_NAME_MAX);
    memset(r.newname, 'y', PROTO_NAME_MAX);
    n = proto_encode(buf, sizeof(buf), &h, 0, &r, NULL);
    cr_assert_eq(n, 16 + 16 + 2 + 255 + 16 + 2 + 255 + 4);
    struct rename_req out;
    cr_assert_eq(proto_decode(&h, buf + 16, (size_t)n - 16, NULL, &out), 0);
    cr_assert(memcmp(&r, &out, sizeof(r)) == 0);

    memset(&sl, 0, sizeof(sl));
    strcpy(sl.name, "l");
    memset(sl.target, 't', PROTO_PATH_MAX - 1);
    h = (struct proto_hdr){0, OP_SYMLINK, PROTO_REQ, 0, 1};
    n = proto_encode(buf, sizeof(buf), &h, 0, &sl, NULL);
    cr_assert_gt(n, 0);
    cr_assert_leq((size_t)n, proto_encode_bound(OP_SYMLINK, PROTO_REQ));
    struct symlink_req slo;
    cr_assert_eq(proto_decode(&h, buf + 16, (size_t)n - 16, NULL, &slo), 0);
    cr_assert(memcmp(&sl, &slo, sizeof(sl)) == 0);
}

Test(proto, entrylk_and_inval_allow_empty_name)
{
    struct entrylk_req e = m_entrylk_req, eo;
    struct inval_event v = m_inval_event, vo;
    uint8_t buf[1024];
    struct proto_hdr h = {0, OP_ENTRYLK, PROTO_REQ, 0, 1};
    ssize_t n;

    memset(e.name, 0, sizeof(e.name));
    n = proto_encode(buf, sizeof(buf), &h, 0, &e, NULL);
    cr_assert_gt(n, 0);
    cr_assert_eq(proto_decode(&h, buf + 16, (size_t)n - 16, NULL, &eo), 0);
    cr_assert_str_eq(eo.name, "");
    memset(v.name, 0, sizeof(v.name));
    h = (struct proto_hdr){0, OP_INVAL, PROTO_EVENT, 0, 0};
    n = proto_encode(buf, sizeof(buf), &h, 0, &v, NULL);
    cr_assert_gt(n, 0);
    cr_assert_eq(proto_decode(&h, buf + 16, (size_t)n - 16, NULL, &vo), 0);
    cr_assert_str_eq(vo.name, "");
}

/* ---- value limits: encode says -EINVAL, decode of the same wire -EPROTO ---- */

/* Encode s's struct with a u32 at struct offset `soff` set to v and expect
 * -EINVAL; then patch v into the valid encoding at wire offset `woff`
 * (from the body start) and expect -EPROTO. */
static void check_u32_limit(uint16_t op, uint8_t kind, const void *msg,
                            size_t size, size_t soff, size_t woff, uint32_t v)
{
    struct sample s = {"limit", op, kind, (void *)msg, size, -1, 0, {{0, 0}}};
    uint8_t *copy = malloc(size);
    uint8_t buf[8192];
    struct proto_hdr h = hdr_for(&s);
    size_t n;
    uint32_t st;

    memcpy(copy, msg, size);
    memcpy(copy + soff, &v, 4);
    cr_assert_eq(proto_encode(buf, sizeof(buf), &h, 0, copy, NULL), -EINVAL,
                 "%s value %u", proto_op_name(op), v);
    uint8_t *f = enc(&s, msg, &n);
    put32(f + PROTO_HDR_SIZE + woff, v);
    cr_assert_eq(dec(f, n, &st, copy), -EPROTO, "%s value %u",
                 proto_op_name(op), v);
    free(f);
    free(copy);
}

#define LIMIT(op, kind, var, st, member, woff, v)                              \
    check_u32_limit(op, kind, &var, sizeof(struct st),                         \
                    offsetof(struct st, member), woff, v)

Test(proto, u32_limits)
{
    LIMIT(OP_SETATTR, PROTO_REQ, m_setattr_req, setattr_req, valid, 16,
          SETATTR__ALL + 1);
    LIMIT(OP_SETATTR, PROTO_REQ, m_setattr_req, setattr_req, valid, 16,
          0x80000000u);
    LIMIT(OP_INODELK, PROTO_REQ, m_inodelk_req, inodelk_req, type, 24, 3);
    LIMIT(OP_INODELK, PROTO_REQ, m_inodelk_req, inodelk_req, flags, 28, 2);
    /* entrylk: parent 16, name 2+12, owner 8 */
    LIMIT(OP_ENTRYLK, PROTO_REQ, m_entrylk_req, entrylk_req, type,
          16 + 14 + 8, 3);
    LIMIT(OP_READDIR, PROTO_REQ, m_readdir_req, readdir_req, max_bytes, 24,
          PROTO_READDIR_MAX + 1);
    LIMIT(OP_READDIR, PROTO_REQ, m_readdir_req, readdir_req, flags, 28,
          READDIR_SWEEP << 1);
    LIMIT(OP_READDIR, PROTO_REPLY, m_readdir_rep, readdir_rep, dirty, 16, 2);
    /* lookup: parent 16, name 2+15 */
    LIMIT(OP_LOOKUP, PROTO_REQ, m_lookup_req, lookup_req, flags, 16 + 17,
          LOOKUP_OWN_MARK << 1);
    LIMIT(OP_HEAL_LIST, PROTO_REQ, m_heal_list_req, heal_list_req, max, 8,
          PROTO_HEAL_LIST_MAX + 1);
    LIMIT(OP_READ, PROTO_REQ, m_read_req, read_req, size, 24,
          PROTO_MAX_IO + 1);
    LIMIT(OP_WRITE, PROTO_REPLY, m_write_rep, write_rep, count, 4,
          PROTO_MAX_IO + 1);
    LIMIT(OP_OPEN, PROTO_REQ, m_open_req, open_req, flags, 16, O_CREAT);
    LIMIT(OP_FSYNC, PROTO_REQ, m_fsync_req, fsync_req, datasync, 16, 2);
    LIMIT(OP_CREATE, PROTO_REPLY, m_create_rep, create_rep, created, 4 + 88, 2);
    /* create: parent 16, name 2+11, id 16, mode uid gid 12 */
    LIMIT(OP_CREATE, PROTO_REQ, m_create_req, create_req, flags,
          16 + 13 + 16 + 12, CREATE_LOCK << 1);
    /* CREATE_LOCK only with both EXCL and OPEN: never an existing file */
    LIMIT(OP_CREATE, PROTO_REQ, m_create_req, create_req, flags,
          16 + 13 + 16 + 12, CREATE_LOCK);
    LIMIT(OP_CREATE, PROTO_REQ, m_create_req, create_req, flags,
          16 + 13 + 16 + 12, CREATE_LOCK | CREATE_OPEN);
    LIMIT(OP_CREATE, PROTO_REQ, m_create_req, create_req, flags,
          16 + 13 + 16 + 12, CREATE_LOCK | CREATE_EXCL);
    LIMIT(OP_HELLO, PROTO_REQ, m_hello_req, hello_req, magic, 0, 0x31534653u);
    LIMIT(OP_HELLO, PROTO_REQ, m_hello_req, hello_req, version_min, 4, 0);
    LIMIT(OP_HELLO, PROTO_REQ, m_hello_req, hello_req, version_min, 4, 8);
    LIMIT(OP_HELLO, PROTO_REPLY, m_hello_rep, hello_rep, brick, 8, 0);
    LIMIT(OP_HELLO, PROTO_REPLY, m_hello_rep, hello_rep, brick, 8,
          PROTO_MAX_BRICKS + 1);
    LIMIT(OP_INVAL, PROTO_EVENT, m_inval_event, inval_event, what, 16,
          INVAL_LEASES_LOST << 1);
    LIMIT(OP_OPENX, PROTO_REQ, m_open_req, open_req, flags, 16, 0x80000000u);
    LIMIT(OP_READDIR, PROTO_REPLY, m_readdir_rep, readdir_rep, eof, 4 + 8, 2);
    LIMIT(OP_READDIR, PROTO_REPLY, m_readdir_rep, readdir_rep, count, 4 + 12, 4);
    LIMIT(OP_READDIR, PROTO_REPLY, m_readdir_rep, readdir_rep, count, 4 + 12, 6);
    LIMIT(OP_HEAL_LIST, PROTO_REPLY, m_heal_list_rep, heal_list_rep, count,
          4 + 12, 2);
    LIMIT(OP_HEAL_LIST, PROTO_REPLY, m_heal_list_rep, heal_list_rep, count,
          4 + 12, PROTO_HEAL_LIST_MAX + 1);
    LIMIT(OP_XATTROP, PROTO_REQ, m_xattrop_req, xattrop_req, npending,
          16 + 8, PROTO_MAX_BRICKS + 1);
}

Test(proto, nsec_limit)
{
    struct setattr_req r = m_setattr_req;
    uint8_t buf[256];
    struct proto_hdr h = {0, OP_SETATTR, PROTO_REQ, 0, 1};
    size_t n;
    uint32_t st;

    r.mtime.nsec = 1000000000u;
    cr_assert_eq(proto_encode(buf, sizeof(buf), &h, 0, &r, NULL), -EINVAL);
    r.mtime.nsec = 999999999u;
    cr_assert_gt(proto_encode(buf, sizeof(buf), &h, 0, &r, NULL), 0);

    struct attr_rep a = m_attr_rep;
    a.attr.ctime.nsec = 0xffffffffu;
    h = (struct proto_hdr){0, OP_GETATTR, PROTO_REPLY, 0, 1};
    cr_assert_eq(proto_encode(buf, sizeof(buf), &h, 0, &a, NULL), -EINVAL);

    /* wire: setattr atime.nsec at 16+4+4+4+4+8+8 */
    struct sample s = {"setattr", OP_SETATTR, PROTO_REQ, &m_setattr_req,
                       sizeof(r), -1, 0, {{0, 0}}};
    uint8_t *f = enc(&s, &m_setattr_req, &n);
    put32(f + PROTO_HDR_SIZE + 48, 1000000000u);
    cr_assert_eq(dec(f, n, &st, &r), -EPROTO);
    free(f);
    /* attr reply: ctime.nsec is the last 4 bytes */
    s = (struct sample){"getattr", OP_GETATTR, PROTO_REPLY, &m_attr_rep,
                        sizeof(a), -1, 0, {{0, 0}}};
    f = enc(&s, &m_attr_rep, &n);
    put32(f + n - 4, 1000000000u);
    cr_assert_eq(dec(f, n, &st, &a), -EPROTO);
    free(f);
}

Test(proto, bytes_limits)
{
    size_t big = PROTO_MAX_IO + 1;
    uint8_t *data = calloc(1, big);
    size_t cap = big + 1024;
    uint8_t *buf = malloc(cap);
    struct write_req w = m_write_req;
    struct proto_hdr h = {0, OP_WRITE, PROTO_REQ, 0, 1};
    struct proto_bytes tail;
    uint32_t st;
    ssize_t n;

    w.data = (struct proto_bytes){data, (uint32_t)big};
    cr_assert_eq(proto_encode(buf, cap, &h, 0, &w, NULL), -EINVAL);
    cr_assert_eq(proto_encode(buf, cap, &h, 0, &w, &tail), -EINVAL);
    w.data.len = PROTO_MAX_IO;
    n = proto_encode(buf, cap, &h, 0, &w, NULL);
    cr_assert_eq((size_t)n, 16 + 16 + 8 + 4 + PROTO_MAX_IO);
    cr_assert_eq((size_t)n, proto_encode_bound(OP_WRITE, PROTO_REQ));
    cr_assert_leq((size_t)n, PROTO_MAX_FRAME);
    /* a max-size frame decodes; one byte more in the length is refused */
    uint8_t *f = malloc((size_t)n);
    memcpy(f, buf, (size_t)n);
    struct write_req out;
    cr_assert_eq(dec(f, (size_t)n, &st, &out), 0);
    cr_assert_eq(out.data.len, PROTO_MAX_IO);
    free(f);
    size_t m = (size_t)n + 1;
    f = malloc(m);
    memcpy(f, buf, (size_t)n);
    f[m - 1] = 0;
    put32(f, (uint32_t)m);
    put32(f + 16 + 24, PROTO_MAX_IO + 1);
    cr_assert_eq(dec(f, m, &st, &out), -EPROTO);
    free(f);

    /* a length prefix far beyond the frame must not be trusted */
    struct read_rep rr = {{data, 1}};
    h = (struct proto_hdr){0, OP_READ, PROTO_REPLY, 0, 1};
    n = proto_encode(buf, cap, &h, 0, &rr, NULL);
    cr_assert_eq(n, 16 + 4 + 4 + 1);
    f = malloc((size_t)n);
    memcpy(f, buf, (size_t)n);
    put32(f + 20, 0xfffffff0u);
    cr_assert_eq(dec(f, (size_t)n, &st, &rr), -EPROTO);
    put32(f + 20, 2);
    cr_assert_eq(dec(f, (size_t)n, &st, &rr), -EPROTO);
    free(f);

    /* NULL data with a length */
    w.data = (struct proto_bytes){NULL, 3};
    h = (struct proto_hdr){0, OP_WRITE, PROTO_REQ, 0, 1};
    cr_assert_eq(proto_encode(buf, cap, &h, 0, &w, NULL), -EINVAL);
    /* empty payload is fine and decodes as {NULL, 0} */
    w.data = (struct proto_bytes){NULL, 0};
    n = proto_encode(buf, cap, &h, 0, &w, &tail);
    cr_assert_eq(n, 16 + 16 + 8 + 4);
    cr_assert_null(tail.data);
    cr_assert_eq(proto_decode(&h, buf + 16, (size_t)n - 16, NULL, &out), 0);
    cr_assert_null(out.data.data);
    cr_assert_eq(out.data.len, 0);

    free(buf);
    free(data);
}

Test(proto, xattrop_counts)
{
    struct xattrop_req r = m_xattrop_req, o;
    uint8_t buf[1024];
    struct proto_hdr h = {0, OP_XATTROP, PROTO_REQ, 0, 1};
    ssize_t n;

    r.npending = 0;
    memset(r.pending, 0, sizeof(r.pending));
    n = proto_encode(buf, sizeof(buf), &h, 0, &r, NULL);
    /* id, dirty, npending, clear_suspect, lk, lk_owner, lk_name (u16 len) */
    cr_assert_eq(n, (ssize_t)(16 + 16 + 8 + 4 + 8 + 4 + 8 + 2 + strlen(r.lk_name)));
    cr_assert_eq(proto_decode(&h, buf + 16, (size_t)n - 16, NULL, &o), 0);
    cr_assert(memcmp(&r, &o, sizeof(r)) == 0);
    r.npending = PROTO_MAX_BRICKS;
    for (int i = 0; i < PROTO_MAX_BRICKS; i++)
        r.pending[i] = -i - 1;
    memset(r.lk_name, 'n', PROTO_NAME_MAX);
    r.lk_name[PROTO_NAME_MAX] = '\0';
    n = proto_encode(buf, sizeof(buf), &h, 0, &r, NULL);
    cr_assert_eq(n, 16 + 16 + 8 + 4 + 8 * PROTO_MAX_BRICKS + 8 + 4 + 8 + 2 +
                        PROTO_NAME_MAX);
    cr_assert_eq((size_t)n, proto_encode_bound(OP_XATTROP, PROTO_REQ));
    cr_assert_eq(proto_decode(&h, buf + 16, (size_t)n - 16, NULL, &o), 0);
    cr_assert(memcmp(&r, &o, sizeof(r)) == 0);
}

Test(proto, hello_version_range_and_wire_layout)
{
    struct hello_req r = m_hello_req;
    uint8_t buf[512];
    struct proto_hdr h = {0, OP_HELLO, PROTO_REQ, 0, 1};
    ssize_t n;

    r.version_min = 2;
    r.version_max = 1;
    cr_assert_eq(proto_encode(buf, sizeof(buf), &h, 0, &r, NULL), -EINVAL);
    r.version_min = 1;
    strcpy(r.volume, "upload");
    n = proto_encode(buf, sizeof(buf), &h, 0, &r, NULL);
    cr_assert_eq(n, 16 + 4 + 4 + 4 + 32 + 2 + 6);
    cr_assert(memcmp(buf + 16, "RFS1", 4) == 0, "magic reads RFS1");
    cr_assert_eq(buf[16 + 44], 6);
    cr_assert(memcmp(buf + 16 + 46, "upload", 6) == 0);
    /* empty volume string is legal for str */
    r.volume[0] = '\0';
    cr_assert_eq(proto_encode(buf, sizeof(buf), &h, 0, &r, NULL), 16 + 46);
}

Test(proto, attr_wire_layout)
{
    struct attr_rep a;
    uint8_t buf[256];
    struct proto_hdr h = {0, OP_GETATTR, PROTO_REPLY, 0, 9};

    memset(&a, 0, sizeof(a));
    a.attr.id = (struct rfs_id){0x1112131415161718ull, 0x2122232425262728ull};
    a.attr.mode = 0x31323334;
    a.attr.size = 0x4142434445464748ull;
    a.attr.ctime.sec = -2;
    a.attr.ctime.nsec = 999999999;
    cr_assert_eq(proto_encode(buf, sizeof(buf), &h, 0, &a, NULL),
                 16 + 4 + 88);
    const uint8_t *p = buf + 20;
    cr_assert_eq(p[0], 0x18);
    cr_assert_eq(p[7], 0x11);
    cr_assert_eq(p[8], 0x28);
    cr_assert_eq(p[16], 0x34);
    cr_assert_eq(p[36], 0x48);
    cr_assert_eq(p[76], 0xfe); /* ctime.sec = -2, LE */
    cr_assert_eq(p[83], 0xff);
    cr_assert_eq(p[84] | p[85] << 8 | p[86] << 16 | (uint32_t)p[87] << 24,
                 999999999u);
}

/* ---- readdir blobs ---- */

Test(proto, dirent_walk)
{
    uint8_t blob[4096];
    size_t off = 0;
    struct proto_attr in[4], a;
    const char *names[4] = {"a", "file.txt", "..x", NULL};
    char longname[PROTO_NAME_MAX + 1];
    char nm[PROTO_NAME_MAX + 1];

    memset(longname, 'n', PROTO_NAME_MAX);
    longname[PROTO_NAME_MAX] = '\0';
    names[3] = longname;
    memset(in, 0, sizeof(in));
    for (int i = 0; i < 4; i++) {
        fill_attr(&in[i]);
        size_t before = off;
        cr_assert_eq(proto_dirent_put(blob, sizeof(blob), &off, names[i], &in[i]),
                     0);
        cr_assert_eq(off - before, proto_dirent_size(strlen(names[i])));
    }
    struct proto_bytes b = {blob, (uint32_t)off};
    size_t pos = 0;
    for (int i = 0; i < 4; i++) {
        memset(&a, 0, sizeof(a));
        cr_assert_eq(proto_dirent_next(&b, &pos, nm, &a), 1);
        cr_assert_str_eq(nm, names[i]);
        cr_assert(memcmp(&a, &in[i], sizeof(a)) == 0);
    }
    cr_assert_eq(proto_dirent_next(&b, &pos, nm, &a), 0);
    cr_assert_eq(pos, off);

    /* every truncation of the blob fails at its last entry, never crashes */
    for (size_t l = 0; l < off; l++) {
        uint8_t *t = malloc(l ? l : 1);
        memcpy(t, blob, l);
        struct proto_bytes tb = {t, (uint32_t)l};
        size_t p = 0;
        int rc;
        while ((rc = proto_dirent_next(&tb, &p, nm, &a)) == 1)
            ;
        bool boundary = l == 0 || l == proto_dirent_size(1) ||
                        l == proto_dirent_size(1) + proto_dirent_size(8) ||
                        l == proto_dirent_size(1) + proto_dirent_size(8) +
                                 proto_dirent_size(3);
        cr_assert_eq(rc, boundary ? 0 : -EPROTO, "cut at %zu", l);
        free(t);
    }
    /* an offset past the end is malformed, not the end */
    pos = off + 1;
    cr_assert_eq(proto_dirent_next(&b, &pos, nm, &a), -EPROTO);
    cr_assert_eq(pos, off + 1, "untouched on failure");
}

Test(proto, dirent_put_refuses)
{
    uint8_t blob[256];
    size_t off = 0;
    struct proto_attr a;

    memset(&a, 0, sizeof(a));
    memset(blob, 0x11, sizeof(blob));
    cr_assert_eq(proto_dirent_put(blob, sizeof(blob), &off, ".", &a), -EINVAL);
    cr_assert_eq(proto_dirent_put(blob, sizeof(blob), &off, "..", &a), -EINVAL);
    cr_assert_eq(proto_dirent_put(blob, sizeof(blob), &off, "", &a), -EINVAL);
    cr_assert_eq(proto_dirent_put(blob, sizeof(blob), &off, "a/b", &a), -EINVAL);
    a.mtime.nsec = 1000000000u;
    cr_assert_eq(proto_dirent_put(blob, sizeof(blob), &off, "ok", &a), -EINVAL);
    a.mtime.nsec = 0;
    cr_assert_eq(off, 0);
    size_t one = proto_dirent_size(2);
    cr_assert_eq(proto_dirent_put(blob, one - 1, &off, "ok", &a), -ENOSPC);
    cr_assert_eq(off, 0);
    for (size_t i = 0; i < sizeof(blob); i++)
        cr_assert_eq(blob[i], 0x11, "nothing written");
    cr_assert_eq(proto_dirent_put(blob, one, &off, "ok", &a), 0);
    cr_assert_eq(off, one);
    cr_assert_eq(proto_dirent_put(blob, one, &off, "ok", &a), -ENOSPC);
}

Test(proto, readdir_reply_with_bad_entry_is_eproto)
{
    uint8_t blob[512];
    size_t off = 0, n, m;
    struct proto_attr a;
    struct readdir_rep r = m_readdir_rep;
    struct sample s = {"readdir", OP_READDIR, PROTO_REPLY, &r, sizeof(r),
                       (long)offsetof(struct readdir_rep, entries), 0, {{0, 0}}};
    uint32_t st;

    memset(&a, 0, sizeof(a));
    cr_assert_eq(proto_dirent_put(blob, sizeof(blob), &off, "dotdot", &a), 0);
    r.count = 1;
    r.entries = (struct proto_bytes){blob, (uint32_t)off};
    uint8_t *f = enc(&s, &r, &n);
    uint8_t *g = respell(f, n, "dotdot", "..", 2, &m);
    cr_assert_eq(dec(g, m, &st, &r), -EPROTO);
    free(g);
    /* an empty directory page */
    r.count = 0;
    r.entries = (struct proto_bytes){NULL, 0};
    free(f);
    f = enc(&s, &r, &n);
    struct readdir_rep o;
    cr_assert_eq(dec(f, n, &st, &o), 0);
    cr_assert_eq(o.count, 0);
    free(f);
    /* the encoder refuses a blob that does not walk */
    r.count = 1;
    r.entries = (struct proto_bytes){blob, (uint32_t)off - 1};
    struct proto_hdr h = hdr_for(&s);
    uint8_t buf[1024];
    cr_assert_eq(proto_encode(buf, sizeof(buf), &h, 0, &r, NULL), -EINVAL);
}

/* ---- ids ---- */

Test(proto, id_encoding)
{
    struct rfs_id id = {0x0123456789abcdefull, 0xfedcba9876543210ull}, out;
    uint8_t b[16];

    proto_id_put(b, &id);
    cr_assert_eq(b[0], 0xef);
    cr_assert_eq(b[7], 0x01);
    cr_assert_eq(b[8], 0x10);
    cr_assert_eq(b[15], 0xfe);
    proto_id_get(b, &out);
    cr_assert_eq(out.hi, id.hi);
    cr_assert_eq(out.lo, id.lo);
}

/* ---- status mapping ---- */

Test(proto, status_errno_mapping)
{
    cr_assert_eq(proto_status_from_errno(0), 0);
    cr_assert_eq(proto_status_from_errno(-ENOENT), ENOENT);
    cr_assert_eq(proto_status_from_errno(-EROFS), EROFS);
    cr_assert_eq(proto_status_from_errno(-4095), 4095);
    cr_assert_eq(proto_status_from_errno(-4096), EIO);
    cr_assert_eq(proto_status_from_errno(-2147483647 - 1), EIO);
    cr_assert_eq(proto_status_from_errno(5), EIO);
    cr_assert_eq(proto_errno_from_status(0), 0);
    cr_assert_eq(proto_errno_from_status(ENOENT), -ENOENT);
    cr_assert_eq(proto_errno_from_status(4095), -4095);
    cr_assert_eq(proto_errno_from_status(4096), -EIO);
    cr_assert_eq(proto_errno_from_status(0xffffffffu), -EIO);
    for (int e = 1; e < 4096; e++)
        cr_assert_eq(proto_errno_from_status(proto_status_from_errno(-e)), -e);
}

/* CHECKSUM: the sums blob must be exactly count * 8 bytes, the block size in
 * range and the flags known, or the frame is refused both ways. */
Test(proto, checksum_limits)
{
    uint8_t buf[512];
    struct proto_hdr h = {0, OP_CHECKSUM, PROTO_REQ, 0, 1};
    struct checksum_req q = m_checksum_req, qo;
    struct checksum_rep p = m_checksum_rep, po;
    uint32_t st;
    ssize_t n;

    q.block_size = PROTO_CSUM_BLOCK_MIN - 1;
    cr_assert_eq(proto_encode(buf, sizeof(buf), &h, 0, &q, NULL), -EINVAL);
    q.block_size = PROTO_CSUM_BLOCK_MAX * 2;
    cr_assert_eq(proto_encode(buf, sizeof(buf), &h, 0, &q, NULL), -EINVAL);
    q.block_size = PROTO_CSUM_BLOCK_MAX;
    q.flags = 2;
    cr_assert_eq(proto_encode(buf, sizeof(buf), &h, 0, &q, NULL), -EINVAL);
    q.flags = CHECKSUM_DEEP;
    n = proto_encode(buf, sizeof(buf), &h, 0, &q, NULL);
    cr_assert_eq(n, 16 + 16 + 8 + 8 + 4 + 4);
    cr_assert_eq(proto_decode(&h, buf + 16, (size_t)n - 16, &st, &qo), 0);
    cr_assert_eq(qo.flags, CHECKSUM_DEEP);
    put32(buf + n - 4, 4); /* unknown flag bit on the wire */
    cr_assert_eq(proto_decode(&h, buf + 16, (size_t)n - 16, &st, &qo), -EPROTO);

    h = (struct proto_hdr){0, OP_CHECKSUM, PROTO_REPLY, 0, 1};
    p.count = 4; /* 5 sums sent */
    cr_assert_eq(proto_encode(buf, sizeof(buf), &h, 0, &p, NULL), -EINVAL);
    p.count = 5;
    n = proto_encode(buf, sizeof(buf), &h, 0, &p, NULL);
    cr_assert_eq(n, 16 + 4 + 8 + 4 + 4 + 40);
    cr_assert_eq(proto_decode(&h, buf + 16, (size_t)n - 16, &st, &po), 0);
    cr_assert_eq(po.count, 5);
    cr_assert_eq(memcmp(po.sums.data, csum_bytes, 40), 0);
    put32(buf + 16 + 4 + 8, 6); /* count says 6, blob has 5 */
    cr_assert_eq(proto_decode(&h, buf + 16, (size_t)n - 16, &st, &po), -EPROTO);
    cr_assert_str_eq(proto_op_name(OP_CHECKSUM), "CHECKSUM");
}
