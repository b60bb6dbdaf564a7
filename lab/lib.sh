#!/usr/bin/env bash
# Shared by lab/up.sh, lab/down.sh, lab/status.sh, lab/break.sh (sourced, not run; they set $here).
# shellcheck shell=bash disable=SC2034
: "${here:?lib.sh is sourced by the lab scripts, which set here=}"
LAB_NETWORK=sre-lab
LAB_PROJECT=ferreteria
LAB_COMPOSE_FILE="$here/compose/docker-compose.prod.yml"
LAB_FLY_STATE=${FAKE_FLY_STATE:-/var/lib/sre-fake-fly/state.json}
# the certificate ferreteria's nginx serves, copied out by lab/up.sh (tls_cert_ca_cert in the lab inventory)
LAB_NGINX_ANCHOR=/var/lib/sre-lab/ferreteria-nginx.pem
# name:role pairs of the systemd-PID-1 lab hosts (image: SRE_LAB_SYSTEMD_IMAGE / SRE_LAB_PM2_IMAGE)
LAB_HOSTS="sre-lab-systemd:systemd sre-lab-pm2:pm2"
LAB_HOSTED_PG_PORT=25432
# docker run options that boot systemd as PID 1 on this engine (cgroup v1, no --privileged)
LAB_SYSTEMD_OPTS=(--cap-add SYS_ADMIN --cgroupns=host -v /sys/fs/cgroup:/sys/fs/cgroup:rw
  --tmpfs /run --tmpfs /run/lock --tmpfs /tmp -e container=docker)

# lab_probes: one line per twin part, "<label> <health probe command>" (lab/up.sh waits on them,
# lab/status.sh prints them). The apps of ../shared/source-runbooks, each as its runbook runs it.
lab_probes() {
  cat <<PROBES
saasresto(systemd) docker exec sre-lab-systemd curl -fsS -m 3 http://127.0.0.1:3000/health
saasresto/caddy(TLS) docker exec sre-lab-systemd curl -fsSk -m 3 https://localhost/health
sme-booking-app(systemd) docker exec sre-lab-systemd curl -fsS -m 3 http://127.0.0.1:3001/api/health
cookcam-api(pm2) docker exec sre-lab-pm2 curl -fsS -m 3 http://127.0.0.1:3000/health
cookcam-api/nginx(limit_req) docker exec sre-lab-pm2 curl -fsS -m 3 http://127.0.0.1:80/health
ferreteria/web(compose) curl -fsS -m 3 http://127.0.0.1:13000/health
ferreteria/nginx(TLS) curl -fsSk -m 3 https://127.0.0.1:18443/health
ferreteria/db(compose) docker exec ${LAB_PROJECT}_db_1 pg_isready -q
PROBES
}

die() { echo "ERROR: $*" >&2; exit 1; }
log() { echo ">> lab: $*" >&2; }

compose() { # docker compose v2 where present, else docker-compose v1
  if docker compose version >/dev/null 2>&1; then docker compose -p "$LAB_PROJECT" -f "$LAB_COMPOSE_FILE" "$@"
  elif command -v docker-compose >/dev/null 2>&1; then docker-compose -p "$LAB_PROJECT" -f "$LAB_COMPOSE_FILE" "$@"
  else die "neither 'docker compose' nor 'docker-compose' is installed (apt-get install docker-compose)"; fi
}

wait_http() { # wait_http <label> <command...>: retry a health probe, bounded (LAB_WAIT_S, default 90)
  local label=$1; shift
  local i
  for ((i = 0; i < ${LAB_WAIT_S:-90}; i++)); do
    if "$@" >/dev/null 2>&1; then log "$label healthy"; return 0; fi
    sleep 1
  done
  echo "WARN: $label not healthy after ${LAB_WAIT_S:-90}s" >&2
  return 1
}

need_docker() {
  command -v docker >/dev/null || die "docker CLI not found (apt-get install docker.io)"
  docker info >/dev/null 2>&1 || die "the Docker engine is not running (start dockerd, e.g. scripts/bootstrap.sh)"
}
