#!/usr/bin/env bash
# Ferreteria's nightly backup (runbook 003, infra/backups/backup_db.sh): pg_dump through the db container,
# gzip, into /var/backups/ferreteria/daily, keep 7 days; logs to /var/log/ferreteria_backup.log. Cron:
#   15 3 * * * root /root/ferreteria/infra/backups/backup_db.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=${FERRETERIA_BACKUP_DIR:-/var/backups/ferreteria/daily}
log=${FERRETERIA_BACKUP_LOG:-/var/log/ferreteria_backup.log}
stamp=$(date -u +%Y%m%d_%H%M%S)
out="$dir/ferreteria_db_$stamp.sql.gz"
mkdir -p "$dir"
compose() { if docker compose version >/dev/null 2>&1; then docker compose -p ferreteria -f docker-compose.prod.yml "$@"; else docker-compose -p ferreteria -f docker-compose.prod.yml "$@"; fi; }
echo "$(date -u +%FT%TZ) backup start $out" >> "$log"
if compose exec -T db pg_dump -U ferreteria_user -d ferreteria_db 2>>"$log" | gzip > "$out.part" && gzip -t "$out.part"; then
  mv "$out.part" "$out"
  find "$dir" -name 'ferreteria_db_*.sql.gz' -mtime +7 -delete
  echo "$(date -u +%FT%TZ) backup ok $out $(stat -c %s "$out") bytes" >> "$log"
else
  rm -f "$out.part"
  echo "$(date -u +%FT%TZ) backup FAILED" >> "$log"
  exit 1
fi
