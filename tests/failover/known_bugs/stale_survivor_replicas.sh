#!/usr/bin/env bash
# stale_survivor with the replica check after heal on: fails in about half
# the runs (one brick keeps a name or a tail of bytes the others lack, with
# no marker left anywhere).  Not run by ctest; see docs/heal.md, known gaps.
FO_NO_REPLICA_CHECK=0 exec bash "$(dirname "$0")/../stale_survivor.sh"
