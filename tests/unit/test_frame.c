/* Unit tests for src/client/frame.c: the framed receive buffer. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "client/frame.h"

/* A PING request frame with reqid `id` into out (PROTO_HDR_SIZE + 8). */
static size_t ping_frame(uint8_t *out, uint64_t id)
{
    struct proto_hdr h = {.op = OP_PING, .kind = PROTO_REQ, .reqid = id};
    struct ping_req r = {.stamp = id * 7};
    ssize_t n = proto_encode(out, 64, &h, 0, &r, NULL);

    cr_assert(n > 0);
    return (size_t)n;
}

/* Feed `len` bytes into fb in chunks of `chunk`, as libuv would. */
static void feed(struct frame_buf *fb, const uint8_t *p, size_t len,
                 size_t chunk)
{
    while (len > 0) {
        uint8_t *base;
        size_t room, n;

        cr_assert(frame_buf_space(fb, &base, &room) == 0);
        cr_assert(room > 0);
        n = len < chunk ? len : chunk;
        n = n < room ? n : room;
        memcpy(base, p, n);
        frame_buf_commit(fb, n);
        p += n;
        len -= n;
    }
}

Test(frame, empty_buffer_has_no_frame)
{
    struct frame_buf fb;
    struct proto_hdr h;
    const uint8_t *body;
    size_t len;

    frame_buf_init(&fb);
    cr_assert_eq(frame_buf_next(&fb, &h, &body, &len), 0);
    frame_buf_fini(&fb);
}

Test(frame, frames_split_at_every_byte_come_out_whole_and_in_order)
{
    uint8_t stream[64 * 40];
    size_t off = 0;

    for (uint64_t i = 1; i <= 40; i++)
        off += ping_frame(stream + off, i);
    for (size_t chunk = 1; chunk <= 33; chunk += 4) {
        struct frame_buf fb;
        uint64_t want = 1;
        size_t fed = 0;

        frame_buf_init(&fb);
        while (fed < off) {
            size_t n = off - fed < chunk ? off - fed : chunk;
            struct proto_hdr h;
            const uint8_t *body;
            size_t len;
            int rc;

            feed(&fb, stream + fed, n, chunk);
            fed += n;
            while ((rc = frame_buf_next(&fb, &h, &body, &len)) == 1) {
                cr_assert_eq(h.reqid, want, "chunk %zu", chunk);
                cr_assert_eq(h.op, OP_PING);
                cr_assert_eq(len, h.len - PROTO_HDR_SIZE);
                want++;
            }
            cr_assert_eq(rc, 0);
        }
        cr_assert_eq(want, 41, "chunk %zu: got %llu frames", chunk,
                     (unsigned long long)want - 1);
        cr_assert_eq(frame_buf_pending(&fb), 0);
        frame_buf_fini(&fb);
    }
}

Test(frame, largest_frame_is_received_contiguously)
{
    size_t flen = PROTO_MAX_FRAME;
    uint8_t *f = malloc(flen);
    struct proto_hdr h = {.len = (uint32_t)flen, .op = OP_READ,
                          .kind = PROTO_REPLY, .reqid = 9};
    struct proto_hdr got;
    struct frame_buf fb;
    const uint8_t *body;
    size_t len;

    cr_assert(f);
    proto_hdr_encode(f, &h);
    for (size_t i = PROTO_HDR_SIZE; i < flen; i++)
        f[i] = (uint8_t)(i * 31);
    frame_buf_init(&fb);
    /* A small frame first, so the big one does not start at offset 0. */
    {
        uint8_t p[64];
        size_t n = ping_frame(p, 1);

        feed(&fb, p, n, n);
        cr_assert_eq(frame_buf_next(&fb, &got, &body, &len), 1);
    }
    feed(&fb, f, flen, 65536);
    cr_assert_eq(frame_buf_next(&fb, &got, &body, &len), 1);
    cr_assert_eq(got.len, flen);
    cr_assert_eq(len, flen - PROTO_HDR_SIZE);
    cr_assert(memcmp(body, f + PROTO_HDR_SIZE, len) == 0);
    cr_assert(fb.cap <= FRAME_BUF_MAX);
    frame_buf_fini(&fb);
    free(f);
}

Test(frame, oversized_length_is_eproto_and_consumes_nothing)
{
    uint8_t hdr[PROTO_HDR_SIZE];
    struct proto_hdr h = {.len = PROTO_MAX_FRAME + 1, .op = OP_READ,
                          .kind = PROTO_REPLY, .reqid = 1};
    struct frame_buf fb;
    struct proto_hdr got;
    const uint8_t *body;
    size_t len;

    proto_hdr_encode(hdr, &h);
    frame_buf_init(&fb);
    feed(&fb, hdr, sizeof(hdr), sizeof(hdr));
    cr_assert_eq(frame_buf_next(&fb, &got, &body, &len), -EPROTO);
    cr_assert_eq(frame_buf_pending(&fb), PROTO_HDR_SIZE);
    /* The bogus length must not make the buffer grow to it. */
    {
        uint8_t *base;
        size_t room;

        cr_assert(frame_buf_space(&fb, &base, &room) == 0);
        cr_assert(fb.cap <= 2 * FRAME_BUF_MIN);
    }
    frame_buf_fini(&fb);
}

Test(frame, short_length_and_bad_flags_are_eproto)
{
    uint8_t hdr[PROTO_HDR_SIZE];
    struct proto_hdr h = {.len = 8, .op = OP_PING, .kind = PROTO_REPLY};
    struct frame_buf fb;
    struct proto_hdr got;
    const uint8_t *body;
    size_t len;

    proto_hdr_encode(hdr, &h);
    frame_buf_init(&fb);
    feed(&fb, hdr, sizeof(hdr), 3);
    cr_assert_eq(frame_buf_next(&fb, &got, &body, &len), -EPROTO);
    frame_buf_fini(&fb);

    h.len = PROTO_HDR_SIZE;
    h.flags = 1;
    proto_hdr_encode(hdr, &h);
    frame_buf_init(&fb);
    feed(&fb, hdr, sizeof(hdr), sizeof(hdr));
    cr_assert_eq(frame_buf_next(&fb, &got, &body, &len), -EPROTO);
    frame_buf_fini(&fb);
}
