#!/usr/bin/env bash
# Run pytest on a deliberately loaded machine: BUSY processes (default 4) spin on the
# CPUs for the whole run, as on a shared CI host. Tests must assert outcomes that hold
# whatever the speed; this is how CI checks that they do.
#
#   tests/loaded.sh [pytest args...]          e.g. tests/loaded.sh -q tests/test_grade_hostile.py
#   BUSY=8 tests/loaded.sh -q -m "not slow"
set -euo pipefail
busy=${BUSY:-4}
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
for _ in $(seq "$busy"); do
    python3 -c 'while 1: pass' &
    pids+=($!)
done
echo "loaded.sh: $busy busy processes on $(nproc) cores: ${pids[*]}" >&2
python -m pytest "$@"
