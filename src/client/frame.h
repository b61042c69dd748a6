/*
 * A receive buffer that cuts a byte stream into protocol frames.
 *
 * libuv asks for space (frame_buf_space), reads into it (frame_buf_commit),
 * then the owner takes whole frames out (frame_buf_next) until it returns 0.
 * A frame handed out points into the buffer and stays valid until the next
 * frame_buf_space() call, which may move or reallocate the bytes; so a frame
 * must be consumed (or copied) before control returns to libuv.
 *
 *   buf: [ consumed | start .. end: buffered, not yet handed out | free ]
 *
 * Invariants:
 *  1. start <= end <= cap, and cap <= FRAME_BUF_MAX.
 *  2. When end - start >= PROTO_HDR_SIZE, the header at start is the next
 *     frame's; its length is checked only by frame_buf_next() (so a bad
 *     header is reported once, as -EPROTO, not silently skipped).
 *  3. frame_buf_space() leaves room for the whole current frame, so one
 *     frame of any legal size is always received into contiguous memory.
 */
#ifndef RFS_CLIENT_FRAME_H
#define RFS_CLIENT_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "replicafs/proto.h"

#define FRAME_BUF_MIN (64u * 1024)          /* initial size, and min free */
#define FRAME_BUF_MAX (PROTO_MAX_FRAME + FRAME_BUF_MIN)

struct frame_buf {
    uint8_t *buf; /* owned; freed in frame_buf_fini() */
    size_t cap;
    size_t start; /* first byte not yet handed out */
    size_t end;   /* one past the last byte received */
};

/* Empty buffer; allocates nothing yet. */
void frame_buf_init(struct frame_buf *fb);
/* Free the memory; fb is empty (and reusable) afterwards. */
void frame_buf_fini(struct frame_buf *fb);

/*
 * Make room to receive into: compacts, or grows so the current frame fits.
 * On 0, *base and *len describe the free space (len > 0).  -ENOMEM (or
 * -ENOBUFS when whole frames were left unconsumed) leaves the
 * buffered bytes as they were.  Invalidates frames handed out before.
 */
int frame_buf_space(struct frame_buf *fb, uint8_t **base, size_t *len);
/* n bytes were received into the space given by frame_buf_space(). */
void frame_buf_commit(struct frame_buf *fb, size_t n);

/*
 * Take the next whole frame.  Returns 1 with *h decoded and *body, *body_len
 * the bytes after the header (borrowed, see above); 0 when no whole frame is
 * buffered yet; -EPROTO for a bad header (nothing is consumed: the stream
 * cannot be resynchronised, so the owner drops the connection).
 */
int frame_buf_next(struct frame_buf *fb, struct proto_hdr *h,
                   const uint8_t **body, size_t *body_len);

/* Bytes buffered and not yet handed out (for tests and diagnostics). */
size_t frame_buf_pending(const struct frame_buf *fb);

#endif
