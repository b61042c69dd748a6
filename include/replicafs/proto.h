/*
 * replicafs wire protocol, version 1.
 *
 * Every message is one frame: a 16-byte header followed by a body.  All
 * integers are little-endian.  docs/protocol.md is the prose twin of this
 * file; change both in the same commit.
 *
 *   offset size field
 *   0      4    len    total frame length in bytes, header included
 *   4      2    op     enum proto_op
 *   6      1    kind   enum proto_kind (request, reply, event)
 *   7      1    flags  0 in v1; receivers reject anything else
 *   8      8    reqid  chosen by the requester, echoed in the reply;
 *                      0 for events.  Replies may come in any order.
 *
 * A reply body starts with a u32 status: 0 or a positive Linux errno.  Only a
 * status of 0 is followed by the op's reply fields.
 *
 * Field encodings (enum proto_ftype):
 *   u16/u32/u64/i64  fixed width
 *   id               16 bytes: hi u64, lo u64
 *   time             i64 sec, u32 nsec (nsec < 1e9)
 *   attr             id, mode, nlink, uid, gid, rdev (u32 each), size u64,
 *                    blocks u64, atime, mtime, ctime (time each) = 88 bytes
 *   name             u16 length + bytes; 1..255 bytes, no '/', no NUL, not
 *                    "." or ".."; decoded NUL-terminated into char[256]
 *   name?            like name, but length 0 is allowed (whole-dir lock)
 *   path             u16 length + bytes; 1..4095 bytes, no NUL (symlink
 *                    targets: not resolved by the brick, so not checked more)
 *   str              u16 length + bytes; 0..255, no NUL (volume names)
 *   raw32            32 bytes (nonces, MACs)
 *   bytes            u32 length + bytes; must be the last field; decoded as
 *                    a pointer into the frame (borrowed for the frame's life)
 *   i64arr           u32 count (<= PROTO_MAX_BRICKS) + count i64
 *
 * Decoding is strict: a field that runs past the body, trailing bytes, a
 * count over its limit or a bad enum is -EPROTO (the connection is closed);
 * a malformed name is -EINVAL (the request gets an EINVAL reply).
 */
#ifndef REPLICAFS_PROTO_H
#define REPLICAFS_PROTO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PROTO_MAGIC 0x31534652u /* "RFS1" as little-endian bytes */
#define PROTO_VERSION_MIN 1
#define PROTO_VERSION_MAX 3 /* 2: OPENX; 3: read leases */
#define PROTO_HDR_SIZE 16
#define PROTO_MAX_IO (1u << 20)         /* largest read or write payload */
#define PROTO_MAX_FRAME (PROTO_MAX_IO + 65536u)
#define PROTO_NAME_MAX 255
#define PROTO_PATH_MAX 4096 /* including the NUL */
#define PROTO_MAX_BRICKS 16
#define PROTO_NONCE_SIZE 32
#define PROTO_MAC_SIZE 32
#define PROTO_READDIR_MAX (256u * 1024) /* max_bytes cap for one READDIR */
#define PROTO_HEAL_LIST_MAX 4096        /* max ids in one HEAL_LIST reply */
#define PROTO_CSUM_BLOCK_MIN 4096u      /* CHECKSUM block sizes: powers of */
#define PROTO_CSUM_BLOCK_MAX (1u << 20) /*   two in [MIN, MAX] */
#define PROTO_CSUM_MAX_BLOCKS 16384u    /* max sums in one CHECKSUM reply */

/* Object identity: 128 bits, the same on every brick. */
struct rfs_id {
    uint64_t hi;
    uint64_t lo;
};
#define RFS_ROOT_ID ((struct rfs_id){0, 1})

enum proto_kind {
    PROTO_REQ = 0,
    PROTO_REPLY = 1,
    PROTO_EVENT = 2,
};

enum proto_op {
    /* connection */
    OP_HELLO = 1,
    OP_AUTH = 2,
    OP_PING = 3,
    /* namespace and data, addressed by object id */
    OP_LOOKUP = 10,
    OP_GETATTR = 11,
    OP_SETATTR = 12,
    OP_MKDIR = 13,
    OP_CREATE = 14,
    OP_MKNOD = 15,
    OP_SYMLINK = 16,
    OP_LINK = 17,
    OP_UNLINK = 18,
    OP_RMDIR = 19,
    OP_RENAME = 20,
    OP_READLINK = 21,
    OP_OPEN = 22,
    OP_READ = 23,
    OP_WRITE = 24,
    OP_FSYNC = 25,
    OP_RELEASE = 26,
    OP_READDIR = 27,
    OP_STATFS = 28,
    OP_OPENX = 29, /* version 2: OPEN and the markers in one round trip */
    OP_LEASE_ACK = 30, /* version 3: a recalled read lease is given back */
    /* replication */
    OP_INODELK = 40,
    OP_ENTRYLK = 41,
    OP_XATTROP = 42,
    OP_HEAL_LIST = 43,
    OP_CHECKSUM = 45,
    /* brick -> client events */
    OP_INVAL = 60,
    OP__MAX = 64,
};

struct proto_hdr {
    uint32_t len;
    uint16_t op;
    uint8_t kind;
    uint8_t flags;
    uint64_t reqid;
};

struct proto_time {
    int64_t sec;
    uint32_t nsec;
};

struct proto_attr {
    struct rfs_id id;
    uint32_t mode;
    uint32_t nlink;
    uint32_t uid;
    uint32_t gid;
    uint32_t rdev;
    uint64_t size;
    uint64_t blocks; /* 512-byte units */
    struct proto_time atime;
    struct proto_time mtime;
    struct proto_time ctime;
};

struct proto_bytes {
    const uint8_t *data; /* borrowed: points into the frame */
    uint32_t len;
};

/* ---- per-op messages: <op>_req is the request body, <op>_rep the reply
 * body after status 0.  Field order in each struct is the wire order. ---- */

/* HELLO: client -> brick, first frame on a connection.  The brick answers
 * with its own nonce and a MAC proving it holds the secret:
 *   brick_mac  = HMAC-SHA256(key, "rfs1-brick" | client_nonce | brick_nonce | volume)
 * The client checks it, then proves itself with AUTH:
 *   client_mac = HMAC-SHA256(key, "rfs1-client" | brick_nonce | client_nonce | volume)
 * Any frame other than HELLO/AUTH before AUTH succeeds closes the
 * connection. */
struct hello_req {
    uint32_t magic;
    uint32_t version_min;
    uint32_t version_max;
    uint8_t nonce[PROTO_NONCE_SIZE];
    char volume[PROTO_NAME_MAX + 1];
};
struct hello_rep {
    uint32_t version;
    uint32_t brick; /* 1-based brick number from the stamp */
    uint8_t nonce[PROTO_NONCE_SIZE];
    uint8_t mac[PROTO_MAC_SIZE];
};
struct auth_req {
    uint8_t mac[PROTO_MAC_SIZE];
};
struct auth_rep {
    uint64_t brick_uuid_hi; /* the brick's stamp uuid: tells a replaced disk */
    uint64_t brick_uuid_lo;
};

struct ping_req {
    uint64_t stamp; /* echoed; lets the client time the round trip */
};
struct ping_rep {
    uint64_t stamp;
};

struct lookup_req {
    struct rfs_id parent;
    char name[PROTO_NAME_MAX + 1];
    uint32_t flags; /* LOOKUP_* */
};
/* Answer only if this brick's copy of the parent is clean (its dirty
 * counter is 0), else EAGAIN: a dirty copy may hold a change that was never
 * committed (done by a minority, or cut off mid-way), so its answer alone
 * proves nothing and the client asks every brick (docs/protocol.md). */
#define LOOKUP_CLEAN 1u
/* With LOOKUP_CLEAN: the caller holds one dirty mark on the parent itself
 * (a create's precheck under its entry lock), so a counter of 1 is clean. */
#define LOOKUP_OWN_MARK 2u
struct attr_rep { /* reply of LOOKUP, GETATTR, SETATTR, MKDIR, MKNOD,
                     SYMLINK, LINK, OPEN */
    struct proto_attr attr;
};

struct getattr_req {
    struct rfs_id id;
};

enum setattr_valid {
    SETATTR_MODE = 1u << 0,
    SETATTR_UID = 1u << 1,
    SETATTR_GID = 1u << 2,
    SETATTR_SIZE = 1u << 3,
    SETATTR_ATIME = 1u << 4,
    SETATTR_MTIME = 1u << 5,
    SETATTR_ATIME_NOW = 1u << 6,
    SETATTR_MTIME_NOW = 1u << 7,
    SETATTR__ALL = (1u << 8) - 1,
};
struct setattr_req {
    struct rfs_id id;
    uint32_t valid; /* enum setattr_valid; unknown bits are -EPROTO */
    uint32_t mode;
    uint32_t uid;
    uint32_t gid;
    uint64_t size;
    struct proto_time atime;
    struct proto_time mtime;
};

/* The client chooses new ids so that every brick stamps the same one. */
struct mkdir_req {
    struct rfs_id parent;
    char name[PROTO_NAME_MAX + 1];
    struct rfs_id id;
    uint32_t mode;
    uint32_t uid;
    uint32_t gid;
};

enum create_flags {
    CREATE_EXCL = 1u << 0,
    /* Open the new file for this connection, as an OPEN would (pinned
     * until RELEASE): a create+open costs one request, not two. */
    CREATE_OPEN = 1u << 1,
    /* Only with CREATE_EXCL and CREATE_OPEN: the new file is born locked
     * and marked, as an XATTROP(dirty+1, XO_LOCK) on it would leave it: the
     * inode write lock of holder (connection, lk_owner) and dirty = 1, both
     * or neither (a failed CREATE holds neither).  The client's first write
     * window then starts held, without its own lock request. */
    CREATE_LOCK = 1u << 2,
};
struct create_req {
    struct rfs_id parent;
    char name[PROTO_NAME_MAX + 1];
    struct rfs_id id;
    uint32_t mode;
    uint32_t uid;
    uint32_t gid;
    uint32_t flags;    /* enum create_flags */
    uint64_t lk_owner; /* CREATE_LOCK: the lock's owner (else ignored) */
};
struct create_rep {
    struct proto_attr attr; /* of the new file, or of the existing one */
    uint32_t created;       /* 0: it existed (only without CREATE_EXCL) */
};

struct mknod_req {
    struct rfs_id parent;
    char name[PROTO_NAME_MAX + 1];
    struct rfs_id id;
    uint32_t mode; /* S_IFREG or S_IFIFO only; else EPERM */
    uint32_t rdev;
    uint32_t uid;
    uint32_t gid;
};

struct symlink_req {
    struct rfs_id parent;
    char name[PROTO_NAME_MAX + 1];
    struct rfs_id id;
    char target[PROTO_PATH_MAX];
    uint32_t uid;
    uint32_t gid;
};

struct link_req {
    struct rfs_id id;
    struct rfs_id newparent;
    char newname[PROTO_NAME_MAX + 1];
};

struct unlink_req { /* also RMDIR */
    struct rfs_id parent;
    char name[PROTO_NAME_MAX + 1];
};

enum rename_flags {
    RENAME_FLAG_NOREPLACE = 1u << 0,
};
struct rename_req {
    struct rfs_id parent;
    char name[PROTO_NAME_MAX + 1];
    struct rfs_id newparent;
    char newname[PROTO_NAME_MAX + 1];
    uint32_t flags; /* enum rename_flags */
};

struct readlink_req {
    struct rfs_id id;
};
struct readlink_rep {
    char target[PROTO_PATH_MAX];
};

struct open_req { /* OPEN and OPENX */
    struct rfs_id id;
    uint32_t flags; /* O_ACCMODE bits and OPEN_LEASE; the brick opens
                       lazily */
};
/* Version 3, OPENX only: also grant this connection a read lease on the
 * object (docs/protocol.md "Read leases").  A brick that cannot grant it
 * sends an INVAL with INVAL_RECALL for the object before the reply. */
#define OPEN_LEASE 0x40000000u

/* LEASE_ACK (version 3): the lease on id is given back, answering a recall
 * or unasked.  Before it, on the same connection, the client sends one
 * OPEN of id per open file it had opened from the lease alone. */
struct lease_ack_req {
    struct rfs_id id;
};
struct openx_rep { /* OPEN's reply and an all-zero XATTROP's, together */
    struct proto_attr attr;
    int64_t dirty;
    uint32_t npending;
    int64_t pending[PROTO_MAX_BRICKS];
    uint64_t suspect;
};

struct read_req {
    struct rfs_id id;
    uint64_t offset;
    uint32_t size; /* <= PROTO_MAX_IO */
};
struct read_rep {
    struct proto_bytes data; /* shorter than asked at end of file */
};

struct write_req {
    struct rfs_id id;
    uint64_t offset;
    struct proto_bytes data; /* <= PROTO_MAX_IO */
};
struct write_rep {
    uint32_t count;
    struct proto_attr attr; /* after the write */
};

struct fsync_req {
    struct rfs_id id;
    uint32_t datasync;
};

struct release_req {
    struct rfs_id id;
};

/* READDIR: entries are packed into `entries` as (name, attr) pairs in the
 * name/attr encodings above; walk them with proto_dirent_next().  "." and
 * ".." are never sent; `.replicafs` at the root is never sent. */
struct readdir_req {
    struct rfs_id id;
    uint64_t cookie;    /* 0 to start; next_cookie of the previous reply */
    uint32_t max_bytes; /* <= PROTO_READDIR_MAX */
    uint32_t flags;     /* READDIR_* */
};
/* The caller holds the directory's whole entry lock (ENTRYLK, name ""):
 * the brick removes, while listing, the debris a crash of an earlier run
 * left (names without an id made before this run started; heal). */
#define READDIR_SWEEP 1u
struct readdir_rep {
    uint64_t next_cookie;
    uint32_t eof;
    uint32_t count;
    /* 1: this brick's copy of the directory was dirty when the batch was
     * read, so the names may include a change no quorum made (the client
     * lets the kernel cache none of them: docs/client.md, "Reads"). */
    uint32_t dirty;
    struct proto_bytes entries;
};

struct statfs_req {
    uint32_t reserved;
};
struct statfs_rep {
    uint64_t bsize;
    uint64_t blocks;
    uint64_t bfree;
    uint64_t bavail;
    uint64_t files;
    uint64_t ffree;
    uint32_t namemax;
};

/* Locks.  Owners are chosen by clients (unique per client and lock holder);
 * a brick drops every lock a connection holds when it closes.  A blocking
 * request is answered when granted; LK_NONBLOCK answers EAGAIN instead. */
enum lk_type {
    LK_RD = 0,
    LK_WR = 1,
    LK_UN = 2,
};
enum lk_flags {
    LK_NONBLOCK = 1u << 0,
};
struct inodelk_req {
    struct rfs_id id;
    uint64_t owner;
    uint32_t type;  /* enum lk_type */
    uint32_t flags; /* enum lk_flags */
};
struct entrylk_req {
    struct rfs_id parent;
    char name[PROTO_NAME_MAX + 1]; /* "" locks the whole directory */
    uint64_t owner;
    uint32_t type;
    uint32_t flags;
};

/* XATTROP: atomically add deltas to an object's replication markers and
 * return the new values.  All-zero deltas just read them.  The brick keeps
 * the object in its heal index exactly while dirty != 0 or any pending
 * counter != 0.  pending[i] counts changes brick i+1 missed. */
/* XATTROP with a lock: the client's transaction steps "lock, mark dirty"
 * and "clear dirty, unlock" each in one round trip instead of two.  The
 * lock is a write lock of holder (connection, lk_owner): the inode lock of
 * id, or with XO_ENTRY the entry lock (id, lk_name) ("" = whole folder). */
enum xattrop_lk {
    XO_LOCK = 1u << 0,     /* take the lock, then apply the deltas; if they
                              fail the lock is released: both or neither */
    XO_UNLOCK = 1u << 1,   /* apply the deltas, then release the lock, even
                              when they failed */
    XO_NONBLOCK = 1u << 2, /* with XO_LOCK: EAGAIN instead of waiting */
    XO_ENTRY = 1u << 3,    /* the entry lock, not the inode lock */
};
struct xattrop_req {
    struct rfs_id id;
    int64_t dirty;
    uint32_t npending;
    int64_t pending[PROTO_MAX_BRICKS];
    /* Heal only, on the root id: clear the brick's suspect mark if it is
     * still this generation (0: leave it).  docs/reliability.md, rule 7. */
    uint64_t clear_suspect;
    uint32_t lk;           /* enum xattrop_lk; 0: no lock */
    uint64_t lk_owner;
    char lk_name[PROTO_NAME_MAX + 1]; /* XO_ENTRY only */
};
struct xattrop_rep {
    int64_t dirty;
    uint32_t npending;
    int64_t pending[PROTO_MAX_BRICKS];
    /* The brick's suspect generation, 0 when clean: nonzero since the brick
     * last started, lost a client or failed a change, until a heal found
     * nothing pending for it (then it may have missed changes). */
    uint64_t suspect;
};

struct heal_list_req {
    uint64_t cookie;
    uint32_t max; /* <= PROTO_HEAL_LIST_MAX */
};
struct heal_list_rep {
    uint64_t next_cookie;
    uint32_t eof;
    uint32_t count;
    struct proto_bytes ids; /* count * 16 bytes, id encoding */
};

/* CHECKSUM: xxh3-64 of each block_size block of a regular file, for verify
 * and data heal.  Block i of the reply covers [offset + i*block_size,
 * min(offset + (i+1)*block_size, size)): the last block may be short, and
 * blocks at or past the end of the file are not sent (an empty file gives
 * count 0).  length 0 means "to the end of the file".  At most
 * PROTO_CSUM_MAX_BLOCKS sums per reply: when count reaches it, ask again
 * from offset + count*block_size.  offset must be a multiple of block_size
 * and block_size a power of two in [PROTO_CSUM_BLOCK_MIN,
 * PROTO_CSUM_BLOCK_MAX], else EINVAL; a directory is EISDIR, another
 * non-regular object EINVAL.
 *
 * The brick keeps sums on disk and recomputes only blocks written since
 * (docs/brick-layout.md, "sums/: block checksums").  CHECKSUM_DEEP ignores
 * the stored sums and re-reads every block asked for: it finds silent
 * corruption (a block that changed on disk without any write the brick
 * could see). */
enum checksum_flags {
    CHECKSUM_DEEP = 1u << 0,
};
struct checksum_req {
    struct rfs_id id;
    uint64_t offset;
    uint64_t length;     /* 0: to the end of the file */
    uint32_t block_size;
    uint32_t flags;      /* enum checksum_flags; unknown bits are -EPROTO */
};
struct checksum_rep {
    uint64_t size;       /* the file's size when the sums were taken */
    uint32_t count;      /* <= PROTO_CSUM_MAX_BLOCKS */
    struct proto_bytes sums; /* count * u64 (LE) xxh3-64 */
};

/* INVAL: brick -> client, unsolicited (kind PROTO_EVENT, reqid 0): another
 * client changed this object or this entry. */
enum inval_what {
    INVAL_ATTR = 1u << 0,
    INVAL_DATA = 1u << 1,
    INVAL_ENTRY = 1u << 2,
    /* Its pending markers changed: who blames whom (drop cached blame). */
    INVAL_MARKERS = 1u << 3,
    /* Version 3: this connection's read lease on id is recalled; the
     * change that recalls it waits for LEASE_ACK (at most the recall
     * wait).  Sent to the changing connection too, with no other bit. */
    INVAL_RECALL = 1u << 4,
    /* Version 3: every lease this connection held on this brick is gone
     * (a recall was not answered in time); id is zero. */
    INVAL_LEASES_LOST = 1u << 5,
};
struct inval_event {
    struct rfs_id id;
    uint32_t what;
    struct rfs_id parent;
    char name[PROTO_NAME_MAX + 1]; /* may be "" */
};

/* ---- codec ---- */

/* The protocol version that brought op (1 for the first ops). */
uint32_t proto_op_version(uint16_t op);
/* Name of an op for logs; "?" for unknown.  Never NULL. */
const char *proto_op_name(uint16_t op);

/* Size of the C struct that carries `op` of `kind`, or 0 when that op has no
 * such message (unknown op, event-only op asked as a request...).  Empty
 * bodies have size 1 so 0 always means "no such message". */
size_t proto_msg_size(uint16_t op, uint8_t kind);

/*
 * Decode and check a frame header from the first PROTO_HDR_SIZE bytes of buf.
 * Returns 0, or -EPROTO for a length under the header size or over
 * PROTO_MAX_FRAME, an unknown kind or nonzero flags.  The op is not checked
 * here (so that an unknown op can get an error reply with its reqid).
 * *h is untouched on failure.
 */
int proto_hdr_decode(const uint8_t *buf, struct proto_hdr *h);
void proto_hdr_encode(uint8_t *buf, const struct proto_hdr *h);

/*
 * Encode a whole frame into buf (cap bytes): header, then for a reply the
 * status, then (request, event, or reply with status 0) the fields of msg,
 * which must point to the struct proto_msg_size() names.  h->len is set.
 *
 * When tail is non-NULL and the message ends with a bytes field, that field's
 * payload is not copied: *tail gets it (data and len) so the caller can send
 * it as a second iovec; h->len and the encoded length prefix still count it.
 * Without tail, or without a bytes field, *tail is {NULL, 0}.
 *
 * Returns bytes written to buf (header and fields, without the tail), or
 * -ENOSPC if cap is too small, -EINVAL if op/kind has no message or a field
 * breaks its limit (a name with '/', bytes over PROTO_MAX_IO...).  A reply
 * with a nonzero status is just the status, for any op (msg is ignored and
 * may be NULL), so an unknown op can be answered ENOSYS; proto_decode()
 * accepts such a reply for any op too.
 */
ssize_t proto_encode(uint8_t *buf, size_t cap, struct proto_hdr *h,
                     uint32_t status, const void *msg, struct proto_bytes *tail);

/* Upper bound of proto_encode()'s output for this op/kind without a tail. */
size_t proto_encode_bound(uint16_t op, uint8_t kind);

/*
 * Decode a frame body (len = h->len - PROTO_HDR_SIZE bytes after the header).
 * For replies *status gets the status and msg is filled only when it is 0.
 * msg must point to proto_msg_size(h->op, h->kind) bytes.  bytes fields point
 * into body.  Returns 0; -EPROTO for a malformed body (close the
 * connection); -EINVAL for a malformed name/path in a well-framed request
 * (answer EINVAL); -ENOSYS for an op/kind that has no message.
 * On failure msg and *status may have been partly written.
 */
int proto_decode(const struct proto_hdr *h, const uint8_t *body, size_t len,
                 uint32_t *status, void *msg);

/* Iterate over a readdir_rep.entries blob.  *off starts at 0.
 * Returns 1 with name (NUL-terminated, 256 bytes) and attr filled, 0 at the
 * end, -EPROTO for a malformed blob. */
int proto_dirent_next(const struct proto_bytes *blob, size_t *off,
                      char name[PROTO_NAME_MAX + 1], struct proto_attr *attr);
/* Append one entry at buf+*off (cap total).  Returns 0, -ENOSPC (nothing
 * written), or -EINVAL for a name proto_name_check() refuses or an attr
 * time with nsec >= 1e9 (decoding would refuse them).  Size of one entry:
 * proto_dirent_size(name_len). */
int proto_dirent_put(uint8_t *buf, size_t cap, size_t *off, const char *name,
                     const struct proto_attr *attr);
size_t proto_dirent_size(size_t name_len);

/* Id list encoding for heal_list_rep.ids. */
void proto_id_put(uint8_t *buf, const struct rfs_id *id);
void proto_id_get(const uint8_t *buf, struct rfs_id *id);

/* Name rule shared by the codec, the brick and the client: 0 when name
 * (len bytes, no NUL needed) is a valid single path component, else -EINVAL. */
int proto_name_check(const char *name, size_t len);

/* Wire status <-> errno.  proto_status_from_errno(-ENOENT) == ENOENT; 0 stays
 * 0; anything outside 1..4095 becomes EIO.  proto_errno_from_status() is its
 * inverse (returns -errno, or 0). */
uint32_t proto_status_from_errno(int rc);
int proto_errno_from_status(uint32_t status);

#endif
