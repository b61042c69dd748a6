#!/usr/bin/env python3
"""Free 127.0.0.1 ports for tests that run side by side (ctest -j).

    ports.py claim N OWNER_PID   print N distinct ports, claimed for OWNER_PID
    ports.py release OWNER_PID   drop OWNER_PID's claims

RFS_PORTS=FIRST-LAST narrows the range (for the allocator's own test).

Two things went wrong with "bind port 0, close, use the number" once the
integration tests ran two at a time (a brick failed with "address already
in use" in CI):
  - port 0 draws from the kernel's ephemeral range, the same range every
    outgoing connection (a mount's, another test's) takes its local port
    from, so the number could be taken again before the brick bound it;
  - a port is free only until its brick binds it, and free again while a
    test restarts that brick: another test could pick it meanwhile.
So the ports come from just below the ephemeral range, where connect()
never goes, and each is claimed in a file under /tmp/rfs-ports until its
owner releases it or dies.  One lock around every claim makes the pick and
the claim one step.
"""
import errno
import fcntl
import os
import random
import socket
import sys

DIR = "/tmp/rfs-ports"
SPAN = 10000


def candidates():
    if os.environ.get("RFS_PORTS"):
        first, last = map(int, os.environ["RFS_PORTS"].split("-"))
    else:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            last = int(f.read().split()[0]) - 1
        first = max(1024, last + 1 - SPAN)
    ports = list(range(first, last + 1))
    random.shuffle(ports)
    return ports


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def owner(path):
    try:
        with open(path) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def bindable(port):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def claim(n, pid):
    got = []
    for port in candidates():
        if len(got) == n:
            break
        path = os.path.join(DIR, str(port))
        holder = owner(path) if os.path.exists(path) else 0
        if holder and alive(holder):
            continue
        if not bindable(port):
            continue
        with open(path, "w") as f:
            f.write(f"{pid}\n")
        got.append(port)
    if len(got) < n:
        sys.exit(f"ports.py: only {len(got)} of {n} free ports")
    print(" ".join(map(str, got)))


def release(pid):
    for name in os.listdir(DIR):
        path = os.path.join(DIR, name)
        if name.isdigit() and owner(path) == pid:
            try:
                os.unlink(path)
            except OSError as e:
                if e.errno != errno.ENOENT:
                    raise


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in ("claim", "release"):
        sys.exit(__doc__)
    os.makedirs(DIR, mode=0o777, exist_ok=True)
    with open(os.path.join(DIR, ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if sys.argv[1] == "claim":
            claim(int(sys.argv[2]), int(sys.argv[3]))
        else:
            release(int(sys.argv[2]))


if __name__ == "__main__":
    main()
