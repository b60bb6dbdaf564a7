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
  # The systemd host's PostgreSQL is also the lab's "hosted" database (CookCam's and HotDash's Supabase):
  # published on loopback for the FAKE Fly app's checks from the control node.
  ports=(); [ "$role" = systemd ] && ports=(-p "127.0.0.1:$LAB_HOSTED_PG_PORT:5432")
  docker run -d --name "$name" --hostname "$name" --network "$LAB_NETWORK" "${LAB_SYSTEMD_OPTS[@]}" "${ports[@]}" \
    --label sre.runbooks.lab=1 "$image" >/dev/null \
    || die "could not start $name (systemd containers need --cap-add SYS_ADMIN and /sys/fs/cgroup)"
done

# compose reads .env from the project directory (v1 and v2): the image names for the runbooks' own
# compose calls (restart, up, logs) made later without these variables exported. The web image is the
# moving tag `current` (a deploy or rollback re-points it), so rewriting .env keeps what is deployed.
printf 'FERRETERIA_WEB_IMAGE=%s\nFERRETERIA_DB_IMAGE=%s\nFERRETERIA_NGINX_IMAGE=%s\nFERRETERIA_CERTBOT_IMAGE=%s\n' \
  "$SRE_LAB_WEB_IMAGE" "$SRE_LAB_DB_IMAGE" "$SRE_LAB_NGINX_IMAGE" "$SRE_LAB_CERTBOT_IMAGE" > "$here/compose/.env"
# The app's own settings and secrets (runbook 003 keeps them in .env.prod beside the compose file): written once,
# then left to the runbooks (the secrets runbook sets a missing one back). The web service exits at start without
# a name of REQUIRED_SECRETS.
if [ ! -s "$here/compose/.env.prod" ]; then
  (umask 077; printf 'SECRET_KEY=lab-only-flask-secret-3e8a\nREQUIRED_SECRETS=SECRET_KEY\nSMTP_HOST=127.0.0.1\nSMTP_PORT=25\n' \
    > "$here/compose/.env.prod")
fi
# The database's data lives in the volume dbdata, filled from the db image when the volume is created: a new db
# image (its schema, roles or seed changed) starts from a new volume, as a fresh deploy of that image would.
db_mark=/var/lib/sre-lab/ferreteria-db-image  # the engine is shared by every clone: so is the mark
if [ "$(cat "$db_mark" 2>/dev/null || true)" != "$SRE_LAB_DB_IMAGE" ]; then
  if docker volume inspect "${LAB_PROJECT}_dbdata" >/dev/null 2>&1; then
    log "the db image changed: the database volume starts again from $SRE_LAB_DB_IMAGE"
    compose rm -sf db >/dev/null 2>&1 || true
    docker volume rm "${LAB_PROJECT}_dbdata" >/dev/null || die "could not remove the volume ${LAB_PROJECT}_dbdata"
  fi
fi
log "compose project $LAB_PROJECT: up -d"
if ! out=$(compose up -d 2>&1); then echo "$out" | tail -5 >&2; die "compose up of $LAB_PROJECT failed"; fi

mkdir -p "$(dirname "$db_mark")" && echo "$SRE_LAB_DB_IMAGE" > "$db_mark"

# The Fly.io stand-in: a FAKE flyctl with its own state file (Fly.io cannot be reached from here).
mkdir -p "$(dirname "$LAB_FLY_STATE")"
FAKE_FLY_STATE=$LAB_FLY_STATE "$here/fake-flyctl/flyctl" status --json --app hotdash-production >/dev/null 2>&1 \
  || die "the fake flyctl could not create its state in $LAB_FLY_STATE"

bad=0
while read -r label probe; do
  # shellcheck disable=SC2086
  wait_http "$label" $probe || bad=1
done < <(lab_probes)
# Ferreteria's nightly backup has run at least once (its own script, through the db container).
if ! ls /var/backups/ferreteria/daily/ferreteria_db_*.sql.gz >/dev/null 2>&1; then
  "$here/compose/infra/backups/backup_db.sh" || { echo "WARN: ferreteria's backup_db.sh failed (see /var/log/ferreteria_backup.log)" >&2; bad=1; }
fi
# The lab's nginx serves its own self-signed certificate (lab/images/nginx/selfsigned.sh) until certbot issues one:
# the lab inventory trusts it as its anchor (tls_cert_ca_cert of ferreteria), as it trusts Caddy's local CA for
# saasresto, so the twin's healthy state has no critical self_signed finding. Copied from the volume the cert lives in.
mkdir -p "$(dirname "$LAB_NGINX_ANCHOR")"
if ! compose exec -T nginx cat /etc/letsencrypt/live/ferreteria/fullchain.pem > "$LAB_NGINX_ANCHOR.tmp" 2>/dev/null \
   || ! grep -q 'BEGIN CERTIFICATE' "$LAB_NGINX_ANCHOR.tmp"; then
  echo "WARN: could not copy the nginx certificate of $LAB_PROJECT to $LAB_NGINX_ANCHOR" >&2; bad=1
else
  mv -f "$LAB_NGINX_ANCHOR.tmp" "$LAB_NGINX_ANCHOR"
fi
rm -f "$LAB_NGINX_ANCHOR.tmp"
"$here/status.sh" || true
[ "$bad" -eq 0 ] || die "some lab parts are not healthy (see above; lab/break.sh heal undoes a drill)"
