#!/usr/bin/env bash
# Start the lab (building images first when their inputs changed), wait until every app answers its
# health check (bounded), print the status table. Idempotent: what already runs on the current images
# is left alone and only checked. Exit 1 if a part is not healthy in time.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lab/lib.sh
. "$here/lib.sh"
need_docker
env_lines=$("$here/build.sh" --print-env) || exit 1
eval "$env_lines"

docker network inspect "$LAB_NETWORK" >/dev/null 2>&1 || docker network create "$LAB_NETWORK" >/dev/null \
  || die "could not create the docker network $LAB_NETWORK"
for pair in $LAB_HOSTS; do
  name=${pair%%:*} role=${pair#*:}
  case $role in pm2) image=$SRE_LAB_PM2_IMAGE ;; *) image=$SRE_LAB_SYSTEMD_IMAGE ;; esac
  current=$(docker inspect -f '{{.Config.Image}} {{.State.Running}}' "$name" 2>/dev/null || true)
  if [ "$current" = "$image true" ]; then continue; fi
  if [ -n "$current" ]; then log "replacing $name (was: ${current% *})"; docker rm -f "$name" >/dev/null; fi
  log "starting $name ($role, $image)"
  docker run -d --name "$name" --hostname "$name" --network "$LAB_NETWORK" "${LAB_SYSTEMD_OPTS[@]}" \
    --label sre.runbooks.lab=1 "$image" >/dev/null \
    || die "could not start $name (systemd containers need --cap-add SYS_ADMIN and /sys/fs/cgroup)"
done

# compose reads .env from the project directory (v1 and v2): the image tags for the runbooks' own
# compose calls (restart, up, logs) made later without these variables exported.
printf 'SRE_LAB_WEB_IMAGE=%s\nSRE_LAB_DB_IMAGE=%s\nSRE_LAB_PROXY_IMAGE=%s\n' \
  "$SRE_LAB_WEB_IMAGE" "$SRE_LAB_DB_IMAGE" "$SRE_LAB_PROXY_IMAGE" > "$here/compose/.env"
log "compose project $LAB_PROJECT: up -d"
if ! out=$(compose up -d 2>&1); then echo "$out" | tail -5 >&2; die "compose up of $LAB_PROJECT failed"; fi

# The Fly.io stand-in: a FAKE flyctl with its own state file (Fly.io cannot be reached from here).
mkdir -p "$(dirname "$LAB_FLY_STATE")"
FAKE_FLY_STATE=$LAB_FLY_STATE "$here/fake-flyctl/flyctl" status --json --app hotdash-production >/dev/null 2>&1 \
  || die "the fake flyctl could not create its state in $LAB_FLY_STATE"

bad=0
wait_http "sre-lab-systemd saasresto" docker exec sre-lab-systemd curl -fsS -m 3 http://127.0.0.1:3000/health || bad=1
wait_http "sre-lab-systemd caddy TLS" docker exec sre-lab-systemd curl -fsSk -m 3 https://localhost/health || bad=1
wait_http "sre-lab-pm2 cookcam-api" docker exec sre-lab-pm2 curl -fsS -m 3 http://127.0.0.1:3000/health || bad=1
wait_http "ferreteria web" curl -fsS -m 3 http://127.0.0.1:13000/health || bad=1
wait_http "ferreteria proxy TLS" curl -fsSk -m 3 https://127.0.0.1:18443/health || bad=1
"$here/status.sh" || true
[ "$bad" -eq 0 ] || die "some lab parts are not healthy (see above; lab/break.sh heal undoes a drill)"
