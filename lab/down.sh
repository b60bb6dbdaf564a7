#!/usr/bin/env bash
# Stop and remove the lab: containers, network, compose project (its volume too with --volumes).
# The fake flyctl's state file is removed with --volumes as well. Idempotent.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lab/lib.sh
. "$here/lib.sh"
volumes=()
case "${1:-}" in
  --volumes) volumes=(--volumes) ;;
  "") ;;
  *) die "usage: lab/down.sh [--volumes]" ;;
esac
need_docker
for pair in $LAB_HOSTS; do docker rm -f "${pair%%:*}" >/dev/null 2>&1 || true; done
# the tags do not matter to 'down', but compose refuses a file whose variables are unset
FERRETERIA_DB_IMAGE=x FERRETERIA_WEB_IMAGE=x FERRETERIA_NGINX_IMAGE=x FERRETERIA_CERTBOT_IMAGE=x compose down "${volumes[@]}" >/dev/null 2>&1 \
  || die "compose down of $LAB_PROJECT failed"
docker network rm "$LAB_NETWORK" >/dev/null 2>&1 || true
[ ${#volumes[@]} -gt 0 ] && rm -f "$LAB_FLY_STATE"
log "lab removed${volumes:+ (with volumes)}"
