#!/usr/bin/env bash
# Runs once at image build time (no network): the app in an ansistrano layout for both roles,
# PostgreSQL with the demo database and real dumps (systemd role), caddy TLS, pm2, the units.
set -euo pipefail
F=/opt/lab-files
LAB_DB_PASSWORD=$(cat "$F/db-password")   # lab-only value, also in inventories/lab vault

ln -sfn /opt/pm2/node_modules/pm2/bin/pm2 /usr/local/bin/pm2
mv /opt/lab-app/src/node_modules /opt/lab-app/node_modules

make_app() { # make_app <name> <env file contents>
  local app=$1 env=$2 r
  mkdir -p "/srv/$app/releases" "/srv/$app/shared/log" "/srv/$app/candidates"
  for r in 20260101000000Z 20260102000000Z; do
    mkdir -p "/srv/$app/releases/$r"
    cp /opt/lab-app/src/server.js /opt/lab-app/src/package.json "/srv/$app/releases/$r/"
    ln -sfn /opt/lab-app/node_modules "/srv/$app/releases/$r/node_modules"
    echo "$r" > "/srv/$app/releases/$r/REVISION"
  done
  # A known-bad candidate release for deploy-failure drills: it exits 1 at start.
  mkdir -p "/srv/$app/candidates/20260103000000Z"
  cp /opt/lab-app/src/server.js /opt/lab-app/src/package.json "/srv/$app/candidates/20260103000000Z/"
  ln -sfn /opt/lab-app/node_modules "/srv/$app/candidates/20260103000000Z/node_modules"
  echo 20260103000000Z > "/srv/$app/candidates/20260103000000Z/REVISION"
  cp /opt/lab-app/src/bad/BAD "/srv/$app/candidates/20260103000000Z/BAD"
  ln -sfn ./releases/20260102000000Z "/srv/$app/current"
  printf '%s\n' "$env" > "/srv/$app/shared/.env"
  chmod 0600 "/srv/$app/shared/.env"
}

make_app saasresto "PORT=3000
APP_NAME=saasresto
PGPOOL_MAX=5
DATABASE_URL=postgresql://saasresto:${LAB_DB_PASSWORD}@127.0.0.1:5432/saasresto"
make_app cookcam-api "PORT=3000
APP_NAME=cookcam-api
PGPOOL_MAX=5
DATABASE_URL=postgresql://saasresto:${LAB_DB_PASSWORD}@sre-lab-systemd:5432/saasresto"
cp "$F/ecosystem.config.js" /srv/cookcam-api/ecosystem.config.js

# PostgreSQL: demo database, app role, network listener with password auth (lab only), real dumps.
bash /opt/lab-common/init-db.sh "$F/db-password" /var/backups/saasresto

# Units and config.
cp "$F/saasresto.service" "$F/pm2-cookcam.service" /etc/systemd/system/
mkdir -p /etc/systemd/system/postgresql@.service.d /etc/systemd/system/caddy.service.d /etc/systemd/system/nginx.service.d
cp "$F/only-systemd-role.conf" /etc/systemd/system/postgresql@.service.d/lab-role.conf
cp "$F/only-systemd-role.conf" /etc/systemd/system/caddy.service.d/lab-role.conf
cp "$F/Caddyfile" /etc/caddy/Caddyfile
systemctl enable saasresto.service pm2-cookcam.service caddy.service postgresql.service >/dev/null 2>&1
systemctl disable nginx.service >/dev/null 2>&1 || true
rm -f /etc/nginx/sites-enabled/default
echo "lab image built $(date -u +%Y-%m-%dT%H:%M:%SZ)" > /etc/sre-lab-release
