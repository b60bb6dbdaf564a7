#!/usr/bin/env bash
# Stop and remove the lab: containers, network, compose project (volumes too with --volumes).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lab/lib.sh
. "$here/lib.sh"
volumes=()
[ "${1:-}" = "--volumes" ] && volumes=(--volumes)
for pair in $LAB_HOSTS; do docker rm -f "${pair%%:*}" >/dev/null 2>&1 || true; done
SRE_LAB_DB_IMAGE=x SRE_LAB_WEB_IMAGE=x SRE_LAB_PROXY_IMAGE=x compose down "${volumes[@]}" >/dev/null 2>&1 || true
docker network rm "$LAB_NETWORK" >/dev/null 2>&1 || true
log "lab removed"
