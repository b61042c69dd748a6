#!/usr/bin/env python3
"""Checks for the heal tests: are the bricks of a volume equal again?

  heal_check.py same T N        every brick holds the same tree: names,
                                types, ids, mode, owner, size, bytes,
                                symlink targets, file mtimes (to the
                                second); prints the differences
  heal_check.py clean T N       no replication marker is nonzero anywhere
                                and every heal index is empty (the brick
                                drops the entry of a deleted object)
  heal_check.py setpend PATH I,J,...   set trusted.rfs.pending by hand
  heal_check.py marks PATH      print dirty and pending of one object
  heal_check.py idhex PATH      the object's id as the heal index names it
Exit 0 when the check holds, 1 otherwise.
"""
import hashlib
import os
import stat
import struct
import sys


def xattr(p, name):
    try:
        return os.getxattr(p, name, follow_symlinks=False)
    except OSError:
        return None


def tree(root):
    out = {}
    for dirpath, dirs, files in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        if rel == ".":
            dirs[:] = [d for d in dirs if d != ".replicafs"]
        for name in dirs + files:
            p = os.path.join(dirpath, name)
            r = os.path.normpath(os.path.join(rel, name))
            st = os.lstat(p)
            rid = xattr(p, "trusted.rfs.id")
            d = {
                "type": stat.S_IFMT(st.st_mode),
                "mode": stat.S_IMODE(st.st_mode),
                "uid": st.st_uid,
                "gid": st.st_gid,
                "id": rid.hex() if rid else None,
            }
            if stat.S_ISREG(st.st_mode):
                d["size"] = st.st_size
                with open(p, "rb") as f:
                    d["sha"] = hashlib.sha1(f.read()).hexdigest()
                d["mtime"] = int(st.st_mtime)
            elif stat.S_ISLNK(st.st_mode):
                d["target"] = os.readlink(p)
            out[r] = d
    return out


def same(t, n):
    trees = [tree("%s/brick%d" % (t, i)) for i in range(1, n + 1)]
    bad = 0
    names = set()
    for tr in trees:
        names |= set(tr)
    for r in sorted(names):
        vals = [tr.get(r) for tr in trees]
        ref = vals[0]
        for i, v in enumerate(vals[1:], 2):
            if v is None or ref is None:
                if v is not ref:
                    print("%s: on brick 1: %s, on brick %d: %s"
                          % (r, ref is not None, i, v is not None))
                    bad += 1
                continue
            for k in ref:
                if k == "mtime" and abs(ref[k] - v.get(k, 0)) <= 1:
                    continue
                if ref[k] != v.get(k):
                    print("%s: %s brick 1 %r, brick %d %r"
                          % (r, k, ref[k], i, v.get(k)))
                    bad += 1
    print("%d paths, %d differences" % (len(names), bad))
    return bad == 0


def marks(p):
    d = xattr(p, "trusted.rfs.dirty")
    pe = xattr(p, "trusted.rfs.pending")
    dirty = struct.unpack("<q", d)[0] if d and len(d) == 8 else 0
    pend = list(struct.unpack("<%dq" % (len(pe) // 8), pe)) if pe else []
    return dirty, pend


def clean(t, n):
    bad = 0
    for i in range(1, n + 1):
        root = "%s/brick%d" % (t, i)
        for dirpath, dirs, files in os.walk(root):
            if dirpath == root:
                dirs[:] = [d for d in dirs if d != ".replicafs"]
            for name in [""] + dirs + files:
                p = os.path.join(dirpath, name) if name else dirpath
                dirty, pend = marks(p)
                if dirty or any(pend):
                    print("brick %d %s: dirty %d pending %s"
                          % (i, os.path.relpath(p, root), dirty, pend))
                    bad += 1
        heal = os.path.join(root, ".replicafs/heal")
        for hx in os.listdir(heal):
            idp = os.path.join(root, ".replicafs/ids", hx[:2], hx)
            print("brick %d: heal index holds %s object %s"
                  % (i, "live" if os.path.lexists(idp) else "deleted", hx))
            bad += 1
    return bad == 0


def setpend(p, vals):
    v = [int(x) for x in vals.split(",")]
    os.setxattr(p, "trusted.rfs.pending", struct.pack("<%dq" % len(v), *v),
                follow_symlinks=False)
    return True


def main():
    cmd = sys.argv[1]
    if cmd == "same":
        ok = same(sys.argv[2], int(sys.argv[3]))
    elif cmd == "clean":
        ok = clean(sys.argv[2], int(sys.argv[3]))
    elif cmd == "setpend":
        ok = setpend(sys.argv[2], sys.argv[3])
    elif cmd == "idhex":
        raw = xattr(sys.argv[2], "trusted.rfs.id")
        hi, lo = struct.unpack("<QQ", raw)
        print("%016x%016x" % (hi, lo))
        ok = True
    elif cmd == "marks":
        print(marks(sys.argv[2]))
        ok = True
    else:
        print(__doc__)
        ok = False
    sys.exit(0 if ok else 1)


main()
