/*
 * The op table: opcode -> handler.  HELLO and AUTH are the handshake's
 * (conn.c) and never reach here; an opcode without a handler is answered
 * ENOSYS by conn.c before decoding.
 */
#include <stddef.h>

#include "conn.h"
#include "ops.h"
#include "req.h"

typedef void (*op_handler)(struct req *r);

static const op_handler handlers[OP__MAX] = {
    [OP_PING] = op_ping,         [OP_LOOKUP] = op_lookup,
    [OP_GETATTR] = op_getattr,   [OP_SETATTR] = op_setattr,
    [OP_MKDIR] = op_mkdir,       [OP_CREATE] = op_create,
    [OP_MKNOD] = op_mknod,       [OP_SYMLINK] = op_symlink,
    [OP_LINK] = op_link,         [OP_UNLINK] = op_unlink,
    [OP_RMDIR] = op_rmdir,       [OP_RENAME] = op_rename,
    [OP_READLINK] = op_readlink, [OP_OPEN] = op_open, [OP_OPENX] = op_openx,
    [OP_READ] = op_read,         [OP_WRITE] = op_write,
    [OP_FSYNC] = op_fsync,       [OP_RELEASE] = op_release,
    [OP_READDIR] = op_readdir,   [OP_STATFS] = op_statfs,
    [OP_INODELK] = op_inodelk,   [OP_ENTRYLK] = op_entrylk,
    [OP_XATTROP] = op_xattrop,   [OP_HEAL_LIST] = op_heal_list,
    [OP_CHECKSUM] = op_checksum, [OP_LEASE_ACK] = op_lease_ack,
};

int dispatch_known(uint16_t op)
{
    return op < OP__MAX && handlers[op] != NULL;
}

/* Requests that change this brick's state for the volume. */
static bool is_change(const struct req *r)
{
    switch (r->hdr.op) {
    case OP_SETATTR: case OP_MKDIR: case OP_CREATE: case OP_MKNOD:
    case OP_SYMLINK: case OP_LINK: case OP_UNLINK: case OP_RMDIR:
    case OP_RENAME: case OP_WRITE: case OP_INODELK: case OP_ENTRYLK:
        return true;
    case OP_XATTROP: {
        const struct xattrop_req *m = REQ_MSG(r, xattrop_req);

        return m->dirty || xattrop_pending_delta(m);
    }
    default:
        return false;
    }
}

void dispatch(struct req *r)
{
    if (is_change(r))
        r->c->changed = true;
    handlers[r->hdr.op](r); /* conn.c checked dispatch_known() */
}
