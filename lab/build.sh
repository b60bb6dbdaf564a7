#!/usr/bin/env bash
# Build the lab's images from this machine's reachable sources only (Debian mirror, npm registry):
#   sre-lab-base:<hash>     debootstrap bookworm + docker import
#   sre-lab-host:<hash>     systemd PID 1, PostgreSQL 15 + demo data + dumps, the demo app, caddy, pm2
#   sre-lab-systemd:<hash>  the same image (saasresto under systemd behind Caddy, PostgreSQL)
#   sre-lab-pm2:<hash>      FROM sre-lab-host + /etc/sre-lab/pm2: cookcam-api under pm2, no PostgreSQL
#   sre-lab-ferreteria-{web,db,nginx,certbot}  the compose project's images (web: one tag per release)
# Every tag carries a hash of its own inputs: a rerun with unchanged inputs only checks and prints.
#   lab/build.sh               build what is missing
#   lab/build.sh --print-env   print `export SRE_LAB_*_IMAGE=...` lines (builds first if needed)
# SRE_CACHE_DIR (default /var/cache/sre-runbooks) keeps the rootfs and node modules;
# SRE_LAB_IMAGE_PREFIX (default sre-lab) names the images (another prefix = an independent build).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${SRE_CACHE_DIR:-/var/cache/sre-runbooks}
prefix=${SRE_LAB_IMAGE_PREFIX:-sre-lab}
print_env=false
case "${1:-}" in
  --print-env) print_env=true ;;
  "") ;;
  *) echo "usage: lab/build.sh [--print-env]" >&2; exit 2 ;;
esac

die() { echo "ERROR: $*" >&2; exit 1; }
log() { echo ">> lab: $*" >&2; }

command -v docker >/dev/null || die "docker CLI not found (apt-get install docker.io, or run scripts/bootstrap.sh)"
docker info >/dev/null 2>&1 || die "the Docker engine is not running (start it: scripts/bootstrap.sh starts dockerd)"
mkdir -p "$cache" 2>/dev/null || die "cannot create the cache directory $cache"
# One build at a time per cache and prefix (make demo, make test and molecule may start together).
exec 9>"$cache/build-$prefix.lock"
flock -w 1800 9 || die "another lab build still holds $cache/build-$prefix.lock after 30 minutes"
docker_root=$(docker info -f '{{.DockerRootDir}}' 2>/dev/null || echo /var/lib/docker)

hash_of() { # hash_of <files/dirs...>: content hash of the given inputs (names + bytes)
  (cd "$here" && find "$@" -type f ! -name '*.pyc' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum) | sha256sum | cut -c1-12
}
have_image() { docker image inspect "$1" >/dev/null 2>&1; }
need_space() { # need_space <dir> <MiB>
  local avail; avail=$(df -Pm "$1" | awk 'NR==2 {print $4}')
  [ "$avail" -ge "$2" ] || die "disk full: $1 has ${avail} MiB free, the lab build needs ${2} MiB"
}

# ---- base image -------------------------------------------------------------------------------
INCLUDE="systemd,systemd-sysv,dbus,python3,python3-psycopg2,python3-flask,gunicorn,python3-prometheus-client,certbot,python3-apt,python3-cryptography,python3-cffi-backend,postgresql,postgresql-client,nodejs,procps,iproute2,iputils-ping,curl,ca-certificates,openssl,nginx,caddy,sudo,git,less,gzip,xz-utils,cron"
base_hash=$( (echo "$INCLUDE"; sed -n '/^# ---- base image/,/^# ---- end base/p' "$0") | sha256sum | cut -c1-12)
BASE="$prefix-base:$base_hash"
if ! have_image "$BASE"; then
  command -v debootstrap >/dev/null || die "debootstrap not found (apt-get install debootstrap)"
  need_space "$cache" 3000
  rootfs="$cache/rootfs-$base_hash"
  if [ ! -f "$rootfs/.complete" ]; then
    rm -rf "$rootfs"
    log "debootstrap bookworm into $rootfs (a few minutes, once)"
    if ! debootstrap --variant=minbase --include="$INCLUDE" bookworm "$rootfs" http://deb.debian.org/debian >"$cache/debootstrap-$base_hash.log" 2>&1; then
      tail -5 "$cache/debootstrap-$base_hash.log" >&2
      die "debootstrap failed (log: $cache/debootstrap-$base_hash.log)"
    fi
    # Slim it and make it container-friendly: no package caches, no daemons that need hardware.
    chroot "$rootfs" apt-get clean
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/*
    chroot "$rootfs" systemctl mask systemd-udevd.service systemd-udevd-kernel.socket systemd-udevd-control.socket \
      getty@tty1.service console-getty.service systemd-logind.service systemd-resolved.service >/dev/null 2>&1 || true
    echo "sre-lab" > "$rootfs/etc/hostname"
    touch "$rootfs/.complete"
  fi
  log "importing $BASE"
  tar -C "$rootfs" --exclude=./.complete --exclude='./proc/*' --exclude='./sys/*' --exclude='./dev/*' -c . \
    | docker import -c 'CMD ["/lib/systemd/systemd"]' - "$BASE" >/dev/null || die "docker import of the base image failed"
fi
# ---- end base

# ---- node modules (from the npm registry, on the build machine; no network inside builds) ----
# Installed only when an image has to be built: a warm rerun never touches npm.
npm_hash=$(hash_of app/package.json images/pm2/package.json)
NODE_DIR="$cache/npm-$npm_hash"
ensure_node_modules() {
  [ -f "$NODE_DIR/.complete" ] && return 0
  command -v npm >/dev/null || die "npm not found (apt-get install npm)"
  need_space "$cache" 500
  rm -rf "$NODE_DIR" && mkdir -p "$NODE_DIR/app" "$NODE_DIR/pm2"
  log "npm install (app: pg, bcryptjs; pm2)"
  cp "$here/app/package.json" "$NODE_DIR/app/" && cp "$here/images/pm2/package.json" "$NODE_DIR/pm2/"
  (cd "$NODE_DIR/app" && npm install --omit=dev --no-audit --no-fund --loglevel=error >/dev/null 2>&1) \
    || die "npm install of the app's dependencies failed (is the npm registry reachable?)"
  (cd "$NODE_DIR/pm2" && npm install --omit=dev --no-audit --no-fund --loglevel=error >/dev/null 2>&1) \
    || die "npm install of pm2 failed (is the npm registry reachable?)"
  touch "$NODE_DIR/.complete"
}

build_image() { # build_image <tag> <dockerfile dir> [build args...] : context = lab dir + node modules
  local tag=$1 dir=$2 ctx
  shift 2
  have_image "$tag" && return 0
  need_space "$docker_root" 2000
  ensure_node_modules
  ctx=$(mktemp -d)
  cp -a "$here/app" "$here/images" "$ctx/"
  cp -a "$NODE_DIR/app/node_modules" "$ctx/app/node_modules"
  cp -a "$NODE_DIR/pm2/node_modules" "$ctx/pm2_modules"
  log "building $tag"
  if ! docker build -q --build-arg "BASE=$BASE" "$@" -t "$tag" -f "$here/$dir/Dockerfile" "$ctx" >"$ctx.log" 2>&1; then
    tail -20 "$ctx.log" >&2; rm -rf "$ctx"
    die "docker build of $tag failed"
  fi
  rm -rf "$ctx" "$ctx.log"
}

# Each tag hashes what its Dockerfile copies (plus the base, and the node modules where it has them).
img_hash() { # img_hash <extra words> -- <inputs...>
  local words=()
  while [ "$1" != "--" ]; do words+=("$1"); shift; done
  shift
  (echo "$base_hash ${words[*]}"; hash_of "$@") | sha256sum | cut -c1-12
}
host_hash=$(img_hash "$npm_hash" -- app/server.js app/package.json app/twins images/host images/common)
HOST="$prefix-host:$host_hash"
SYSTEMD="$prefix-systemd:$host_hash"
PM2="$prefix-pm2:$(img_hash "$host_hash" -- images/pm2)"
build_image "$HOST" images/host
have_image "$SYSTEMD" || docker tag "$HOST" "$SYSTEMD" || die "docker tag $SYSTEMD failed"
if ! have_image "$PM2"; then
  log "building $PM2"
  # No context: a marker file on top of the host image (units choose their role by it).
  if ! docker build -q --build-arg "HOST=$HOST" -t "$PM2" - <"$here/images/pm2/Dockerfile" >"$cache/build-pm2.log" 2>&1; then
    tail -20 "$cache/build-pm2.log" >&2
    die "docker build of $PM2 failed"
  fi
fi
WEB_REPO="$prefix-ferreteria-web"
web_hash=$(img_hash -- app/twins/ferreteria images/web)
DB="$prefix-ferreteria-db:$(img_hash -- app/twins images/db images/common images/host/files/db-password)"
NGINX="$prefix-ferreteria-nginx:$(img_hash -- images/nginx)"
CERTBOT="$prefix-ferreteria-certbot:$(img_hash -- images/certbot)"
build_image "$DB" images/db
build_image "$NGINX" images/nginx
build_image "$CERTBOT" images/certbot
# Ferreteria's web releases, built in order (the image history is the deploy history): 2026.01.01,
# 2026.01.02 (deployed: tags `current`, and `previous` = 2026.01.01, as its CI pipeline leaves them) and
# the known-bad 2026.01.03. Rebuilt (and re-tagged) only when their inputs change.
web_label() { docker image inspect -f '{{ index .Config.Labels "sre.lab.hash" }}' "$1" 2>/dev/null || true; }
if [ "$(web_label "$WEB_REPO:2026.01.03")" != "$web_hash" ]; then
  for rel in 2026.01.01 2026.01.02 2026.01.03; do
    docker image rm "$WEB_REPO:$rel" >/dev/null 2>&1 || true
    bad=0; [ "$rel" = 2026.01.03 ] && bad=1
    build_image "$WEB_REPO:$rel" images/web --build-arg "RELEASE=$rel" --build-arg "BAD=$bad" --label "sre.lab.hash=$web_hash"
    sleep 1   # distinct creation times: the history is ordered by them
  done
  docker tag "$WEB_REPO:2026.01.02" "$WEB_REPO:current" || die "tagging the ferreteria web release current failed"
  docker tag "$WEB_REPO:2026.01.01" "$WEB_REPO:previous" || die "tagging the ferreteria web release previous failed"
fi
WEB="$WEB_REPO:current"

if $print_env; then
  cat <<ENV
export SRE_LAB_BASE_IMAGE=$BASE
export SRE_LAB_HOST_IMAGE=$HOST
export SRE_LAB_SYSTEMD_IMAGE=$SYSTEMD
export SRE_LAB_PM2_IMAGE=$PM2
export SRE_LAB_WEB_IMAGE=$WEB
export SRE_LAB_DB_IMAGE=$DB
export SRE_LAB_NGINX_IMAGE=$NGINX
export SRE_LAB_CERTBOT_IMAGE=$CERTBOT
ENV
else
  log "images ready: $BASE $SYSTEMD $PM2 $WEB $DB $NGINX $CERTBOT"
fi
