#!/usr/bin/env bash
# Runs once at image build time (no network). The lab twins of the source runbooks' apps, as their
# runbooks describe them:
#   saasresto        (000) systemd unit `saasresto`, git checkout /opt/saasresto (origin /srv/git/saasresto.git),
#                          Prisma tables, Caddy TLS in front, backups /var/backups/saasresto/latest_backup.sql.gz
#   sme-booking-app  (002) systemd unit `sme-booking-app`, git checkout /opt/sme-booking-app, port 3001,
#                          /api/health, JSON logs in /opt/sme-booking-app/logs, provider mock flags in .env
#   cookcam-api      (001) pm2 from /opt/cookcam-api/ecosystem.production.config.js (git checkout), nginx with
#                          limit_req in front (:80), DATABASE_URL to a NON-superuser role (CREATEDB only, as Supabase)
#   hotdash          (004) only its database here (a NON-superuser role), the app is on the FAKE Fly
# The pm2 host is the same image with /etc/sre-lab/pm2 (units pick their host by it).
set -euo pipefail
F=/opt/lab-files
T=/opt/lab-app/src/twins
LAB_DB_PASSWORD=$(cat "$F/db-password")   # lab-only value, also in inventories/lab vault

ln -sfn /opt/pm2/node_modules/pm2/bin/pm2 /usr/local/bin/pm2
ln -sfn /opt/pm2/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm
mv /opt/lab-app/src/node_modules /opt/lab-app/node_modules
mkdir -p /opt/lab-app/node_modules/.bin && install -m 0755 "$T/prisma-standin.js" /opt/lab-app/node_modules/.bin/prisma-standin
git config --system user.email deploy@lab.example && git config --system user.name "lab deploy"
git config --system init.defaultBranch main && git config --system advice.detachedHead false

# make_git_app <dir> <profile> <env file contents>: a bare origin under /srv/git, a checkout in <dir> that
# was deployed twice by `git pull` (reflog: release 1, then release 2), a bad release on origin's branch
# `candidate/bad` (exits 1 at start) for deploy-failure drills. The history is dated as the releases are (January
# 2026), not when the image was built: the reflog's newest entry is when the running release went live
# (app_status deployed_at), and a lab built an hour ago has not just been deployed.
at() { export GIT_AUTHOR_DATE="$1" GIT_COMMITTER_DATE="$1"; }
make_git_app() {
  local dir=$1 profile=$2 env=$3 name work
  name=$(basename "$dir")
  work=$(mktemp -d)
  git init -q --bare "/srv/git/$name.git"
  git -C "$work" init -q
  cp /opt/lab-app/src/server.js /opt/lab-app/src/package.json "$work/"
  printf 'node_modules\n.env\nBUILD\nlogs/\n' > "$work/.gitignore"
  if [ "$profile" = saasresto ]; then
    mkdir -p "$work/prisma/migrations" "$work/infra/scripts"
    cp -r "$T/saasresto/prisma/migrations/20260101000000_init" "$work/prisma/migrations/"
  fi
  if [ "$profile" = cookcam ]; then cp "$F/ecosystem.production.config.js" "$work/"; fi
  echo "release-2026.01.01" > "$work/REVISION"
  at "2026-01-01T12:00:00Z"
  git -C "$work" add -A && git -C "$work" commit -qm "release 2026.01.01"
  git -C "$work" tag deploy-20260101
  [ "$profile" = saasresto ] && cp -r "$T/saasresto/prisma/migrations/20260102000000_item_available" "$work/prisma/migrations/"
  echo "release-2026.01.02" > "$work/REVISION"
  at "2026-01-02T12:00:00Z"
  git -C "$work" add -A && git -C "$work" commit -qm "release 2026.01.02"
  git -C "$work" tag deploy-20260102
  git -C "$work" push -q "/srv/git/$name.git" main --tags
  echo "release-2026.01.03" > "$work/REVISION" && echo bad > "$work/BAD"
  at "2026-01-03T12:00:00Z"
  git -C "$work" add -A && git -C "$work" commit -qm "release 2026.01.03 (breaks at start: a missing migration)"
  git -C "$work" push -q "/srv/git/$name.git" HEAD:refs/heads/candidate/bad
  rm -rf "$work"
  at "2026-01-01T12:30:00Z"
  git clone -q "/srv/git/$name.git" "$dir"
  git -C "$dir" reset -q --hard deploy-20260101
  at "2026-01-02T12:30:00Z"
  git -C "$dir" pull -q --ff-only   # the second deploy, as the runbooks do it
  unset GIT_AUTHOR_DATE GIT_COMMITTER_DATE
  ln -sfn /opt/lab-app/node_modules "$dir/node_modules"
  printf '%s\n' "$env" > "$dir/.env" && chmod 0600 "$dir/.env"
  (cd "$dir" && npm_config_offline=true node -e "require('fs').writeFileSync('BUILD', 'lab build\n')")
}

make_git_app /opt/saasresto saasresto "APP_PROFILE=saasresto
APP_NAME=saasresto
PORT=3000
PGPOOL_MAX=5
JWT_SECRET=lab-only-jwt-secret-5b1a
REQUIRED_SECRETS=DATABASE_URL,JWT_SECRET
DATABASE_URL=postgresql://saasresto:${LAB_DB_PASSWORD}@127.0.0.1:5432/saasresto"
mkdir -p /opt/saasresto/infra/scripts && cat > /opt/saasresto/infra/scripts/db-restore.sh <<'SH'
#!/usr/bin/env bash
# SaaSResto's own restore script (runbook 000): gunzip a plain dump into the database. The collection's
# db_restore replaces it with a verified restore beside the live database and a swap.
set -euo pipefail
gunzip -c "$1" | psql -v ON_ERROR_STOP=1 "postgresql://saasresto@127.0.0.1:5432/saasresto"
SH
chmod 0755 /opt/saasresto/infra/scripts/db-restore.sh
make_git_app /opt/sme-booking-app sme-booking "APP_PROFILE=sme-booking
APP_NAME=sme-booking-app
PORT=3001
PGPOOL_MAX=5
LOG_DIR=/opt/sme-booking-app/logs
DATABASE_URL=postgresql://sme_booking:${LAB_DB_PASSWORD}@127.0.0.1:5432/sme_booking
GOOGLE_CALENDAR_MOCK=true
TWILIO_MOCK=true
SENDGRID_MOCK=true
GOOGLE_CALENDAR_API_URL=http://127.0.0.1:9/calendar/v3"
mkdir -p /opt/sme-booking-app/logs
make_git_app /opt/cookcam-api cookcam "APP_PROFILE=cookcam
APP_NAME=cookcam-api
PORT=3000
PGPOOL_MAX=5
STRIPE_WEBHOOK_SECRET=whsec_lab_only_4c2d
REQUIRED_SECRETS=DATABASE_URL,STRIPE_WEBHOOK_SECRET
DATABASE_URL=postgresql://cookcam:${LAB_DB_PASSWORD}@sre-lab-systemd:5432/cookcam"
mkdir -p /var/log/cookcam-api

# PostgreSQL: the apps' databases, their roles, network listener with password auth (lab only), backups.
bash /opt/lab-common/init-db.sh "$F/db-password" host

# Units and config.
cp "$F/saasresto.service" "$F/sme-booking-app.service" "$F/pm2-cookcam.service" /etc/systemd/system/
mkdir -p /etc/systemd/system/postgresql@.service.d /etc/systemd/system/caddy.service.d /etc/systemd/system/nginx.service.d
cp "$F/only-systemd-role.conf" /etc/systemd/system/postgresql@.service.d/lab-role.conf
cp "$F/only-systemd-role.conf" /etc/systemd/system/caddy.service.d/lab-role.conf
cp "$F/nginx-pm2-role.conf" /etc/systemd/system/nginx.service.d/lab-role.conf
cp "$F/Caddyfile" /etc/caddy/Caddyfile
rm -f /etc/nginx/sites-enabled/default
cp "$F/nginx-cookcam.conf" /etc/nginx/sites-enabled/cookcam-api.conf
systemctl enable saasresto.service sme-booking-app.service pm2-cookcam.service caddy.service postgresql.service nginx.service >/dev/null 2>&1
echo "lab image built $(date -u +%Y-%m-%dT%H:%M:%SZ)" > /etc/sre-lab-release
