#!/usr/bin/env bash
# Install what `make demo` and `make test` need on a fresh Debian 12 machine (as root), and start
# the Docker engine when it is not running. Safe to run again: it only installs what is missing.
# Every failure ends with one line saying what is missing.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

die() { echo "ERROR: $*" >&2; exit 1; }
say() { echo ">> $*" >&2; }

[ "$(id -u)" = 0 ] || die "run as root (it installs Debian packages and starts dockerd)"
command -v apt-get >/dev/null || die "apt-get not found: this set-up supports Debian 12 only"

# Debian packages: docker engine + compose v1, debootstrap for the lab's base image, PostgreSQL
# for throwaway test clusters, TLS tooling for cert tests (pebble = ACME test CA), node/npm for pm2.
# Each entry is package:command; a package counts as present when its command is on PATH
# (node/npm may come from another source than Debian) or dpkg says it is installed.
APT_PACKAGES=(docker.io:dockerd docker-compose:docker-compose debootstrap:debootstrap
              postgresql:pg_ctlcluster postgresql-client:psql pebble:pebble certbot:certbot nginx:nginx
              caddy:caddy openssl:openssl python3-venv: nodejs:node npm:npm curl:curl git:git make:make
              rsync:rsync procps:ps iproute2:ss shellcheck:shellcheck
              isal:igzip pigz:pigz prometheus:promtool prometheus-alertmanager:amtool
              prometheus-node-exporter:prometheus-node-exporter
              prometheus-blackbox-exporter:prometheus-blackbox-exporter
              prometheus-postgres-exporter:prometheus-postgres-exporter)
missing=()
for entry in "${APT_PACKAGES[@]}"; do
  pkg=${entry%%:*} cmd=${entry#*:}
  if [ -n "$cmd" ] && command -v "$cmd" >/dev/null 2>&1; then continue; fi
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  # Do not let package scripts start nginx/postgresql/caddy daemons on the host: tests start their own.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null 2>&1 || die "apt-get update failed: is the Debian mirror reachable?"
  if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/sre-apt.log 2>&1; then
    tail -5 /tmp/sre-apt.log >&2
    die "apt-get install failed for: ${missing[*]} (full log: /tmp/sre-apt.log)"
  fi
  rm -f /usr/sbin/policy-rc.d
  trap - EXIT
fi

# Disk: the lab's images and rootfs need a few GiB.
avail_kb=$(df -Pk /var/lib 2>/dev/null | awk 'NR==2 {print $4}')
if [ -n "$avail_kb" ] && [ "$avail_kb" -lt $((4 * 1024 * 1024)) ]; then
  die "disk full: only $((avail_kb / 1024)) MiB free under /var/lib; the lab needs at least 4 GiB"
fi

# Docker engine.
if ! docker info >/dev/null 2>&1; then
  command -v dockerd >/dev/null || die "dockerd not found (apt-get install docker.io)"
  say "starting dockerd (log: /var/log/sre-dockerd.log)"
  # In a session of its own (setsid): stopping the caller (CI, a make run) must not stop the engine it started.
  setsid nohup dockerd >/var/log/sre-dockerd.log 2>&1 < /dev/null &
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  if ! docker info >/dev/null 2>&1; then
    tail -3 /var/log/sre-dockerd.log >&2 || true
    die "the Docker engine could not start (see /var/log/sre-dockerd.log)"
  fi
fi

# Python virtualenv (outside the clone, keyed by the requirements hash) and the collection link.
venv=$("$here/scripts/venv.sh")
mkdir -p "$here/build/collections/ansible_collections/sre"
ln -sfn "$here" "$here/build/collections/ansible_collections/sre/runbooks"
say "ready: venv $venv, docker $(docker version --format '{{.Server.Version}}' 2>/dev/null)"
