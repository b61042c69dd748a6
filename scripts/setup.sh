#!/usr/bin/env bash
# Install what building and testing replicafs needs, from Debian's packages.
# Idempotent: installs only what is missing, and runs apt-get update only then.
set -euo pipefail

pkgs=(
  build-essential cmake ninja-build pkg-config     # build
  clang libclang-rt-14-dev                         # libFuzzer, sanitizers
  libfuse3-dev fuse3                               # FUSE client
  libuv1-dev liburing-dev libxxhash-dev            # daemon and client
  libsodium-dev libinih-dev                        # auth, volume file
  libcriterion-dev                                 # unit tests
  attr procps psmisc iproute2 util-linux python3   # test tools
)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
    missing+=("$p")
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# FUSE needs its device; a container may lack the module but have the node.
if [ ! -e /dev/fuse ]; then
  modprobe fuse 2>/dev/null || true
fi
[ -e /dev/fuse ] || echo "setup: warning: /dev/fuse is missing; mounts will fail" >&2
exit 0
