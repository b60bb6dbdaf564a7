#!/usr/bin/env bash
# Ferreteria's manual rollback (runbook 003, infra/scripts/rollback.sh): put the previous web release tag
# in .env and recreate web. The collection's deploy_failure rollback finds the same previous tag itself.
set -euo pipefail
cd "$(dirname "$0")/../.."
cur=$(sed -n 's/^FERRETERIA_WEB_IMAGE=//p' .env)
repo=${cur%:*}
prev=$(docker image ls --format '{{.Tag}} {{.CreatedAt}}' "$repo" | sort -k2 | awk -v c="${cur##*:}" '$1 == c {print last; exit} {last = $1}')
[ -n "$prev" ] || { echo "no release before ${cur##*:}" >&2; exit 1; }
sed -i "s#^FERRETERIA_WEB_IMAGE=.*#FERRETERIA_WEB_IMAGE=$repo:$prev#" .env
if docker compose version >/dev/null 2>&1; then docker compose -p ferreteria -f docker-compose.prod.yml up -d web
else docker-compose -p ferreteria -f docker-compose.prod.yml up -d web; fi
echo "rolled back web to $repo:$prev"
