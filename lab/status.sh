#!/usr/bin/env bash
# One line per lab part: what it is, whether it runs, its health.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lab/lib.sh
. "$here/lib.sh"
probe() { if "$@" >/dev/null 2>&1; then echo healthy; else echo DOWN; fi; }
printf '%-22s %-8s %-10s %s\n' PART KIND STATE HEALTH
for pair in $LAB_HOSTS; do
  name=${pair%%:*} role=${pair#*:}
  state=$(docker inspect -f '{{.State.Status}}' "$name" 2>/dev/null || echo absent)
  printf '%-22s %-8s %-10s %s\n' "$name" "$role" "$state" "$(probe docker exec "$name" curl -fsS -m 3 http://127.0.0.1:3000/health)"
done
for svc in db web proxy; do
  state=$(docker ps -a --filter "label=com.docker.compose.project=$LAB_PROJECT" --filter "label=com.docker.compose.service=$svc" --format '{{.State}}' | head -1)
  printf '%-22s %-8s %-10s %s\n' "$LAB_PROJECT/$svc" compose "${state:-absent}" "$(case $svc in web) probe curl -fsS -m 3 http://127.0.0.1:13000/health;; proxy) probe curl -fsSk -m 3 https://127.0.0.1:18443/health;; db) probe docker exec "${LAB_PROJECT}_db_1" pg_isready -q;; esac)"
done
if [ -x "$here/fake-flyctl/flyctl" ]; then
  printf '%-22s %-8s %-10s %s\n' hotdash-production fly FAKE "$(probe env FAKE_FLY_STATE="$LAB_FLY_STATE" "$here/fake-flyctl/flyctl" status --json --app hotdash-production)"
fi
