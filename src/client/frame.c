/* Framed receive buffer; the design block is in frame.h. */
#include "client/frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void frame_buf_init(struct frame_buf *fb)
{
    fb->buf = NULL;
    fb->cap = 0;
    fb->start = 0;
    fb->end = 0;
}

void frame_buf_fini(struct frame_buf *fb)
{
    free(fb->buf);
    frame_buf_init(fb);
}

size_t frame_buf_pending(const struct frame_buf *fb)
{
    return fb->end - fb->start;
}

/* Read the length field of a buffered header without judging it: the
 * verdict belongs to frame_buf_next() (invariant 2). */
static size_t current_frame_len(const struct frame_buf *fb)
{
    const uint8_t *p = fb->buf + fb->start;

    if (fb->end - fb->start < PROTO_HDR_SIZE)
        return 0;
    return (size_t)p[0] | (size_t)p[1] << 8 | (size_t)p[2] << 16 |
           (size_t)p[3] << 24;
}

int frame_buf_space(struct frame_buf *fb, uint8_t **base, size_t *len)
{
    size_t have = fb->end - fb->start;
    size_t flen = current_frame_len(fb);
    size_t want = FRAME_BUF_MIN;
    size_t need;

    /* The whole current frame must fit (invariant 3); an oversized length
     * is left for frame_buf_next() to reject, so do not grow for it. */
    if (flen > have && flen <= PROTO_MAX_FRAME && flen - have > want)
        want = flen - have;
    if (have == 0)
        fb->start = fb->end = 0;
    if (fb->cap - fb->end >= want)
        goto out;
    if (fb->start > 0) {
        /* Only the unfinished tail moves, at most once per frame. */
        memmove(fb->buf, fb->buf + fb->start, have);
        fb->start = 0;
        fb->end = have;
        if (fb->cap - fb->end >= want)
            goto out;
    }
    need = have + want;
    if (need < 2 * fb->cap)
        need = 2 * fb->cap;
    if (need > FRAME_BUF_MAX)
        need = FRAME_BUF_MAX;
    if (need > fb->cap) {
        uint8_t *nb = realloc(fb->buf, need);

        if (!nb)
            return -ENOMEM;
        fb->buf = nb;
        fb->cap = need;
    }
out:
    if (fb->cap == fb->end)
        return -ENOBUFS; /* whole frames left unconsumed: owner's bug */
    *base = fb->buf + fb->end;
    *len = fb->cap - fb->end;
    return 0;
}

void frame_buf_commit(struct frame_buf *fb, size_t n)
{
    fb->end += n;
}

int frame_buf_next(struct frame_buf *fb, struct proto_hdr *h,
                   const uint8_t **body, size_t *body_len)
{
    size_t have = fb->end - fb->start;
    struct proto_hdr hdr;
    int rc;

    if (have < PROTO_HDR_SIZE)
        return 0;
    rc = proto_hdr_decode(fb->buf + fb->start, &hdr);
    if (rc < 0)
        return rc;
    if (have < hdr.len)
        return 0;
    *h = hdr;
    *body = fb->buf + fb->start + PROTO_HDR_SIZE;
    *body_len = hdr.len - PROTO_HDR_SIZE;
    fb->start += hdr.len;
    return 1;
}
