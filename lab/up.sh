#!/usr/bin/env bash
# Start the lab (building images first when their inputs changed). Idempotent: what runs stays.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lab/lib.sh
. "$here/lib.sh"
eval "$("$here/build.sh" --print-env)"

docker network inspect "$LAB_NETWORK" >/dev/null 2>&1 || docker network create "$LAB_NETWORK" >/dev/null
for pair in $LAB_HOSTS; do
  name=${pair%%:*} role=${pair#*:}
  current=$(docker inspect -f '{{.Config.Image}} {{.State.Running}}' "$name" 2>/dev/null || true)
  if [ "$current" = "$SRE_LAB_HOST_IMAGE true" ]; then continue; fi
  [ -n "$current" ] && docker rm -f "$name" >/dev/null
  log "starting $name ($role)"
  docker run -d --name "$name" --hostname "$name" --network "$LAB_NETWORK" \
    --cap-add SYS_ADMIN --cgroupns=host -v /sys/fs/cgroup:/sys/fs/cgroup:rw \
    --tmpfs /run --tmpfs /run/lock --tmpfs /tmp -e container=docker -e "SRE_LAB_ROLE=$role" \
    --label sre.runbooks.lab=1 "$SRE_LAB_HOST_IMAGE" >/dev/null \
    || die "could not start $name (systemd containers need --cap-add SYS_ADMIN and cgroups mounted)"
done

# compose reads .env from the project directory (v1 and v2): the image tags for the runbooks' own
# compose calls (restart, up, logs) made later without these variables exported.
printf 'SRE_LAB_WEB_IMAGE=%s\nSRE_LAB_DB_IMAGE=%s\nSRE_LAB_PROXY_IMAGE=%s\n' \
  "$SRE_LAB_WEB_IMAGE" "$SRE_LAB_DB_IMAGE" "$SRE_LAB_PROXY_IMAGE" > "$here/compose/.env"
log "starting the compose project $LAB_PROJECT"
compose up -d >/dev/null 2>&1 || { compose up -d; die "compose up failed"; }

# The Fly.io stand-in: a FAKE flyctl with its own state file (Fly.io cannot be reached from here).
mkdir -p "$(dirname "$LAB_FLY_STATE")"
if [ -x "$here/fake-flyctl/flyctl" ]; then
  FAKE_FLY_STATE=$LAB_FLY_STATE "$here/fake-flyctl/flyctl" status --json --app hotdash-production >/dev/null 2>&1 || true
fi

wait_http "sre-lab-systemd app" docker exec sre-lab-systemd curl -fsS -m 3 http://127.0.0.1:3000/health
wait_http "sre-lab-systemd caddy TLS" docker exec sre-lab-systemd curl -fsSk -m 3 https://localhost/health
wait_http "sre-lab-pm2 app" docker exec sre-lab-pm2 curl -fsS -m 3 http://127.0.0.1:3000/health
wait_http "compose web" curl -fsS -m 3 http://127.0.0.1:13000/health
wait_http "compose proxy TLS" curl -fsSk -m 3 https://127.0.0.1:18443/health
"$here/status.sh"
