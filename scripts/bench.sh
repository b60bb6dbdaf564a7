#!/usr/bin/env bash
# Run every benchmark under benchmarks/ (each prints ratios against a baseline measured in the
# same run). BENCH_ARGS (e.g. --quick) is passed to each.
# bench_fleet.py needs the lab (make lab-up): it starts its own light targets on the lab network and
# removes them at the end; without the lab it prints one line and fails.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
"$here/scripts/bootstrap.sh"
py="$("$here/scripts/venv.sh")/bin/python"
rc=0
for b in benchmarks/bench_*.py; do
  echo "======== $b ========"
  # shellcheck disable=SC2086
  "$py" "$b" ${BENCH_ARGS:-} || rc=1
done
exit $rc
