#!/usr/bin/env bash
# One line per lab twin part: the app, its kind, whether it runs, its health.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lab/lib.sh
. "$here/lib.sh"
printf '%-30s %-8s %-10s %s\n' PART KIND STATE HEALTH
while read -r label probe; do
  part=${label%%(*} kind=${label#*(}; kind=${kind%)}
  case $part in
    ferreteria/*) svc=${part#*/}
      state=$(docker ps -a --filter "label=com.docker.compose.project=$LAB_PROJECT" --filter "label=com.docker.compose.service=$svc" --format '{{.State}}' | head -1) ;;
    cookcam-api*) state=$(docker inspect -f '{{.State.Status}}' sre-lab-pm2 2>/dev/null || echo absent) ;;
    *) state=$(docker inspect -f '{{.State.Status}}' sre-lab-systemd 2>/dev/null || echo absent) ;;
  esac
  # shellcheck disable=SC2086
  if $probe >/dev/null 2>&1; then health=healthy; else health=DOWN; fi
  printf '%-30s %-8s %-10s %s\n' "$part" "$kind" "${state:-absent}" "$health"
done < <(lab_probes)
svc=certbot
state=$(docker ps -a --filter "label=com.docker.compose.project=$LAB_PROJECT" --filter "label=com.docker.compose.service=$svc" --format '{{.State}}' | head -1)
printf '%-30s %-8s %-10s %s\n' "ferreteria/certbot" compose "${state:-absent}" "-"
if [ -x "$here/fake-flyctl/flyctl" ]; then
  if env FAKE_FLY_STATE="$LAB_FLY_STATE" "$here/fake-flyctl/flyctl" status --json --app hotdash-production >/dev/null 2>&1; then h=healthy; else h=DOWN; fi
  printf '%-30s %-8s %-10s %s\n' "hotdash-production" fly FAKE "$h"
fi
