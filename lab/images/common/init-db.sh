#!/usr/bin/env bash
# Build-time: create the demo database in Debian's 15/main cluster (role, schema, seed data), and
# optionally write real dumps. Usage: init-db.sh <password file> [backup dir]
set -euo pipefail
pw=$(cat "$1")
backups=${2:-}
PGCONF=/etc/postgresql/15/main
cat >> "$PGCONF/postgresql.conf" <<CONF
listen_addresses = '*'
max_connections = 60
shared_preload_libraries = 'pg_stat_statements'
CONF
echo "host all all 0.0.0.0/0 scram-sha-256" >> "$PGCONF/pg_hba.conf"
pg_ctlcluster 15 main start
runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 <<SQL
CREATE ROLE saasresto LOGIN PASSWORD '${pw}';
CREATE DATABASE saasresto OWNER saasresto;
SQL
runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 -d saasresto -c "CREATE EXTENSION pg_stat_statements"
runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 -d saasresto -c "SET ROLE saasresto" -f /opt/lab-app/src/schema.sql
hash=$(cd /opt/lab-app && node -e 'console.log(require("bcryptjs").hashSync("lab-login-password", 8))')
runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 -d saasresto -v lab_hash="$hash" \
  -c "SET ROLE saasresto" -f /opt/lab-app/src/seed.sql
if [ -n "$backups" ]; then
  mkdir -p "$backups"
  for day in 20260101 20260102; do
    runuser -u postgres -- pg_dump -Fc -d saasresto > "$backups/saasresto-${day}T020000Z.dump"
    runuser -u postgres -- pg_dump -d saasresto | gzip > "$backups/saasresto-${day}T020000Z.sql.gz"
  done
  (cd "$backups" && for f in *.dump *.sql.gz; do sha256sum "$f" > "$f.sha256"; done)
  touch -d '2026-01-01 02:00' "$backups"/*20260101*
fi
pg_ctlcluster 15 main stop
