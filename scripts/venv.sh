#!/usr/bin/env bash
# Print the path of the project's virtualenv, creating it first when missing or stale.
# The venv lives outside the clone, keyed by a hash of requirements/dev.txt, so a fresh clone
# (CI) or a second `make demo` reuses it instead of reinstalling.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
req="$here/requirements/dev.txt"
hash=$(sha256sum "$req" | cut -c1-12)
cache=${SRE_CACHE_DIR:-/root/.cache/sre-runbooks}
venv="$cache/venv-$hash"
if [ "${1:-}" = "--path" ]; then echo "$venv"; exit 0; fi
if [ ! -f "$venv/.complete" ]; then
  mkdir -p "$cache"
  # One creator at a time: parallel callers wait here, then find it complete.
  exec 9>"$cache/.venv-$hash.lock"
  flock 9
fi
if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.complete" ]; then
  py=$(command -v python3 || true)
  if [ -z "$py" ]; then echo "ERROR: python3 is missing: install it (apt-get install python3 python3-venv)" >&2; exit 1; fi
  mkdir -p "$cache"
  rm -rf "$venv"
  echo ">> creating virtualenv $venv (pinned ranges from requirements/dev.txt)" >&2
  if ! "$py" -m venv "$venv" >&2; then
    echo "ERROR: could not create a virtualenv with $py (apt-get install python3-venv)" >&2; exit 1
  fi
  if ! { "$venv/bin/pip" install -q -U pip && "$venv/bin/pip" install -q -r "$req"; } >&2; then
    echo "ERROR: pip could not install requirements/dev.txt (is PyPI reachable?)" >&2; exit 1
  fi
  touch "$venv/.complete"
fi
echo "$venv"
