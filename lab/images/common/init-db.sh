#!/usr/bin/env bash
# Build-time: the twins' databases in Debian's 15/main cluster. Usage: init-db.sh <password file> host|compose
#   host     saasresto (Prisma migrations + seed, owner saasresto), sme_booking (owner sme_booking),
#            cookcam and hotdash (owners are NOT superusers: LOGIN CREATEDB only, as on Supabase), the
#            backups the apps have: /var/backups/saasresto/latest_backup.sql.gz (plain gzip, no checksum),
#            the collection's own dumps with .sha256, /var/backups/cookcam/backup_YYYYMMDD.dump
#   compose  ferreteria_db (owner ferreteria_user, the superuser as POSTGRES_USER is): tenant, sale
set -euo pipefail
pw=$(cat "$1")
mode=${2:-host}
T=/opt/lab-app/src/twins
PGCONF=/etc/postgresql/15/main
cat >> "$PGCONF/postgresql.conf" <<CONF
listen_addresses = '*'
max_connections = 60
shared_preload_libraries = 'pg_stat_statements'
CONF
echo "host all all 0.0.0.0/0 scram-sha-256" >> "$PGCONF/pg_hba.conf"
pg_ctlcluster 15 main start
sql() { runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 "$@"; }
app_db() { # app_db <role> <db> <superuser-free attributes>
  sql -c "CREATE ROLE $1 LOGIN $3 PASSWORD '${pw}'" -c "CREATE DATABASE $2 OWNER $1"
  sql -d "$2" -c "CREATE EXTENSION pg_stat_statements"
}
if [ "$mode" = compose ]; then
  # as the official postgres image: local socket connections are trusted inside the container
  sed -i '1i local all all trust' "$PGCONF/pg_hba.conf" && pg_ctlcluster 15 main reload
  # POSTGRES_USER of the official postgres image is the cluster's superuser: so is Ferreteria's ferreteria_user
  app_db ferreteria_user ferreteria_db "SUPERUSER"
  sql -d ferreteria_db -c "SET ROLE ferreteria_user" -f "$T/sql/ferreteria.sql"
else
  app_db saasresto saasresto ""
  (cd /opt/saasresto && DATABASE_URL="postgresql://saasresto:${pw}@127.0.0.1:5432/saasresto" \
     node node_modules/.bin/prisma-standin migrate deploy >/dev/null)
  hash=$(cd /opt/lab-app && node -e 'console.log(require("bcryptjs").hashSync("lab-login-password", 8))')
  sql -d saasresto -v lab_hash="$hash" -c "SET ROLE saasresto" -f "$T/sql/saasresto-seed.sql"
  app_db sme_booking sme_booking ""
  sql -d sme_booking -c "SET ROLE sme_booking" -f "$T/sql/sme-booking.sql"
  app_db cookcam cookcam "NOSUPERUSER CREATEDB NOCREATEROLE"
  sql -d cookcam -c "SET ROLE cookcam" -f "$T/sql/cookcam.sql"
  app_db hotdash hotdash "NOSUPERUSER CREATEDB NOCREATEROLE"
  sql -d hotdash -c "SET ROLE hotdash" -f "$T/sql/hotdash.sql"
  runuser -u postgres -- vacuumdb -q -a -Z
  b=/var/backups/saasresto
  mkdir -p "$b" /var/backups/cookcam
  runuser -u postgres -- pg_dump -d saasresto | gzip > "$b/latest_backup.sql.gz"
  for day in 20260101 20260102; do
    runuser -u postgres -- pg_dump -Fc -d saasresto > "$b/saasresto-${day}T020000Z.dump"
    runuser -u postgres -- pg_dump -Fc -d cookcam > "/var/backups/cookcam/backup_${day}.dump"
  done
  (cd "$b" && for f in *.dump; do sha256sum "$f" > "$f.sha256"; done)
  touch -d '2026-01-01 02:00' "$b"/*20260101* /var/backups/cookcam/backup_20260101.dump
fi
pg_ctlcluster 15 main stop
