/*
 * libFuzzer driver for the frame codec (src/common/proto.c).
 *
 * Each input is tried two ways:
 *   1. as a frame: proto_hdr_decode() on its first 16 bytes, then
 *      proto_decode() of the body the header announces;
 *   2. as a bare body of every (op, kind) in the protocol (so the fuzzer
 *      does not have to guess a header to reach every message's decoder),
 *      and as a readdir entry blob.
 * Whatever decodes must satisfy the codec's invariant 3: re-encoding gives
 * the same bytes, with and without a split tail, and decoding those gives an
 * equal message.  Any mismatch, or a return code proto.h does not allow,
 * aborts.  ASan/UBSan catch the rest; bodies are copied into exact-size heap
 * buffers so a one-byte overread is caught.
 *
 * Build: cmake -DRFS_FUZZ=ON -DCMAKE_C_COMPILER=clang ... && ninja fuzz_proto
 * or by hand:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE \
 *     -Iinclude -Isrc tools/fuzz_proto.c src/common/proto.c -o fuzz_proto
 * Run:   ./fuzz_proto -max_total_time=60 -max_len=70000
 *
 * fuzz_proto_decode() is the reusable part: a driver that also fuzzes
 * request dispatch can call it first, then feed what decodes to the daemon.
 */
#include <errno.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/proto_cmp.h"
#include "replicafs/proto.h"

#define MSG_BUF 8192 /* larger than every message struct (symlink_req) */

static void die(const char *what, const struct proto_hdr *h, int rc)
{
    fprintf(stderr, "fuzz_proto: %s (op %u %s kind %u len %u rc %d)\n", what,
            h->op, proto_op_name(h->op), h->kind, h->len, rc);
    abort();
}

/* Heap copy of exactly n bytes (at least 1 allocated; n == 0 never read). */
static uint8_t *dup_exact(const uint8_t *p, size_t n)
{
    uint8_t *q = malloc(n ? n : 1);

    if (q == NULL)
        abort();
    if (n)
        memcpy(q, p, n);
    return q;
}

/* Invariant 3 for one decoded message. */
static void check_reencode(const struct proto_hdr *h, const uint8_t *body,
                           size_t len, uint32_t status, const void *msg)
{
    static uint8_t *frame; /* PROTO_MAX_FRAME, allocated once */
    alignas(max_align_t) static uint8_t again[MSG_BUF];
    struct proto_hdr h2 = *h, h3;
    struct proto_bytes tail;
    uint32_t st2 = 0;
    ssize_t n, n2;
    int rc;

    if (frame == NULL && (frame = malloc(PROTO_MAX_FRAME)) == NULL)
        abort();
    h2.len = 0;
    n = proto_encode(frame, PROTO_MAX_FRAME, &h2, status, msg, NULL);
    if (n < 0)
        die("decoded message does not encode", h, (int)n);
    if ((size_t)n != len + PROTO_HDR_SIZE || h2.len != h->len)
        die("re-encoded length differs", h, (int)n);
    if (memcmp(frame + PROTO_HDR_SIZE, body, len) != 0)
        die("re-encoded bytes differ", h, 0);
    if ((size_t)n > proto_encode_bound(h->op, h->kind))
        die("encode_bound too small", h, (int)n);
    if (proto_hdr_decode(frame, &h3) != 0 || h3.len != h->len ||
        h3.op != h->op || h3.kind != h->kind || h3.reqid != h->reqid)
        die("re-encoded header differs", h, 0);

    memset(again, 0x5c, sizeof(again));
    rc = proto_decode(&h3, frame + PROTO_HDR_SIZE, len, &st2, again);
    if (rc != 0 || st2 != status)
        die("re-encoded frame does not decode", h, rc);
    if (status == 0 && proto_msg_size(h->op, h->kind) != 0 &&
        !proto_msg_equal(h->op, h->kind, msg, again))
        die("decode(encode(x)) != x", h, 0);

    /* the tail path writes the same bytes, minus the payload */
    h2.len = 0;
    n2 = proto_encode(frame, PROTO_MAX_FRAME, &h2, status, msg, &tail);
    if (n2 < 0 || (size_t)n2 + tail.len != (size_t)n || h2.len != h->len)
        die("tail encode differs", h, (int)n2);
    if (memcmp(frame + PROTO_HDR_SIZE, body, (size_t)n2 - PROTO_HDR_SIZE) != 0 ||
        (tail.len && memcmp(tail.data, body + (size_t)n2 - PROTO_HDR_SIZE,
                            tail.len) != 0))
        die("tail bytes differ", h, 0);
}

/* Decode body[len] as h says and check the result.  Returns decode's rc. */
static int decode_one(const struct proto_hdr *h, const uint8_t *data,
                      size_t len)
{
    alignas(max_align_t) static uint8_t msg[MSG_BUF];
    size_t size = proto_msg_size(h->op, h->kind);
    uint8_t *body = dup_exact(data, len);
    uint32_t status = 0xdeadbeef;
    int rc;

    if (size > sizeof(msg))
        die("message struct larger than MSG_BUF", h, 0);
    memset(msg, 0xa5, sizeof(msg));
    rc = proto_decode(h, body, len, &status, msg);
    switch (rc) {
    case 0:
        if (h->kind == PROTO_REPLY && status > 4095)
            die("status out of range accepted", h, rc);
        check_reencode(h, body, len, h->kind == PROTO_REPLY ? status : 0, msg);
        break;
    case -EINVAL:
        if (h->kind != PROTO_REQ)
            die("-EINVAL outside a request", h, rc);
        break;
    case -ENOSYS:
        if (size != 0)
            die("-ENOSYS for an op that has a message", h, rc);
        break;
    case -EPROTO:
        break;
    default:
        die("decode returned an undocumented code", h, rc);
    }
    free(body);
    return rc;
}

/* Walk data as a readdir entry blob; each entry must re-put identically. */
static void walk_dirents(const uint8_t *data, size_t size)
{
    uint8_t *blob = dup_exact(data, size);
    struct proto_bytes b = {blob, (uint32_t)size};
    struct proto_attr a;
    char name[PROTO_NAME_MAX + 1];
    uint8_t out[2 + PROTO_NAME_MAX + 128];
    size_t off = 0, prev = 0;
    int rc;

    while ((rc = proto_dirent_next(&b, &off, name, &a)) == 1) {
        size_t o = 0;
        if (proto_dirent_put(out, sizeof(out), &o, name, &a) != 0 ||
            o != off - prev || memcmp(out, blob + prev, o) != 0 ||
            o != proto_dirent_size(strlen(name)))
            abort();
        prev = off;
    }
    if (rc != 0 && rc != -EPROTO)
        abort();
    free(blob);
}

/*
 * Feed one input to the codec in every way above.  Never fails: aborts on a
 * broken invariant.  Returns the proto_decode() result of the framed path
 * (-EPROTO when the input is not a frame), for callers that go on to
 * dispatch what decoded.
 */
int fuzz_proto_decode(const uint8_t *data, size_t size)
{
    struct proto_hdr h;
    int framed = -EPROTO;

    if (size >= PROTO_HDR_SIZE && proto_hdr_decode(data, &h) == 0 &&
        h.len <= size)
        framed = decode_one(&h, data + PROTO_HDR_SIZE, h.len - PROTO_HDR_SIZE);

    if (size + PROTO_HDR_SIZE <= PROTO_MAX_FRAME) {
        for (uint16_t op = 0; op < OP__MAX; op++)
            for (uint8_t kind = PROTO_REQ; kind <= PROTO_EVENT; kind++) {
                if (proto_msg_size(op, kind) == 0 && kind != PROTO_REPLY)
                    continue;
                h = (struct proto_hdr){(uint32_t)(size + PROTO_HDR_SIZE), op,
                                       kind, 0, kind == PROTO_EVENT ? 0 : 7};
                decode_one(&h, data, size);
            }
    }
    walk_dirents(data, size);
    return framed;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_proto_decode(data, size);
    return 0;
}
