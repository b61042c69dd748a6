/*
 * fan: one step of a volume operation sent to several bricks at once.
 *
 * Design
 * ======
 * Every multi-brick step of the engine (lock, mark, the change itself,
 * post-op, marker fetch) is a fan: fan_begin(), one fan_call() per request,
 * fan_end().  A fan turns the two ways a brick call can fail (brick_call()
 * refusing at once, or the callback with -errno later) into one: the slot's
 * on_reply, always from the loop.
 *
 *   fan_begin --> OPEN --fan_call()*--> fan_end --> WAITING --last reply-->
 *   on_done (once)
 *
 * Invariants:
 *  1. on_reply runs exactly once per fan_call(), on_done exactly once per
 *     fan_end(), after every on_reply.
 *  2. Neither ever runs inside fan_begin/fan_call/fan_end: brick_conn never
 *     calls back from inside brick_call(), and calls it refuses are
 *     deferred through vol_defer().  So the owner may issue a whole step
 *     before any answer is seen.
 *  3. outstanding counts calls not yet answered; the fan's memory must stay
 *     until on_done (it is embedded in the operation that owns it).
 */
#include <assert.h>
#include <errno.h>
#include <string.h>

#include "client/volume_int.h"

static void fan_finish_slot(struct fan_slot *s, int status, const void *rep)
{
    struct fan *f = s->f;

    assert(f->outstanding > 0);
    s->status = status;
    if (f->on_reply)
        f->on_reply(f, (unsigned)(s - f->slot), status, rep);
    if (--f->outstanding == 0 && !f->open)
        f->on_done(f);
}

static void fan_reply_cb(int status, const void *rep, void *arg)
{
    fan_finish_slot(arg, status, rep);
}

static void fan_refused_cb(struct vdefer *d)
{
    struct fan_slot *s = vcontainer_of(d, struct fan_slot, d);

    fan_finish_slot(s, s->status, NULL);
}

static void fan_empty_cb(struct vdefer *d)
{
    struct fan *f = vcontainer_of(d, struct fan, d);

    f->on_done(f);
}

void fan_begin(struct fan *f, struct volume *v, fan_reply_fn on_reply,
               fan_done_fn on_done, void *owner)
{
    assert(!f->open && f->outstanding == 0);
    f->v = v;
    f->on_reply = on_reply;
    f->on_done = on_done;
    f->owner = owner;
    f->open = true;
    for (unsigned i = 0; i < FAN_SLOTS; i++)
        f->slot[i].used = false;
}

void fan_call(struct fan *f, unsigned slot, unsigned brick, uint16_t op,
              const void *req)
{
    struct fan_slot *s = &f->slot[slot];
    struct volume *v = f->v;
    int rc = -ENOTCONN;

    assert(f->open && slot < FAN_SLOTS && !s->used && brick < v->n);
    s->f = f;
    s->brick = brick;
    s->used = true;
    s->status = 1; /* not answered */
    f->outstanding++;
    if (!v->closing && (v->up & BMASK(brick)))
        rc = brick_call(v->bc[brick], op, req, fan_reply_cb, s);
    if (rc < 0) {
        s->status = rc;
        vol_defer(v, &s->d, fan_refused_cb);
    }
}

void fan_end(struct fan *f)
{
    assert(f->open);
    f->open = false;
    if (f->outstanding == 0)
        vol_defer(f->v, &f->d, fan_empty_cb);
}

bmask_t fan_ok_mask(const struct fan *f)
{
    bmask_t ok = 0, bad = 0;

    for (unsigned i = 0; i < FAN_SLOTS; i++) {
        const struct fan_slot *s = &f->slot[i];

        if (!s->used)
            continue;
        if (s->status == 0)
            ok |= BMASK(s->brick);
        else
            bad |= BMASK(s->brick);
    }
    return ok & ~bad;
}
