#!/usr/bin/env bash
# Shared by lab/up.sh, lab/down.sh, lab/status.sh, lab/break.sh (sourced, not run).
LAB_NETWORK=sre-lab
LAB_PROJECT=ferreteria
LAB_COMPOSE_FILE="$here/compose/docker-compose.prod.yml"
LAB_FLY_STATE=${FAKE_FLY_STATE:-/var/lib/sre-fake-fly/state.json}
# name:role pairs of the systemd-PID-1 lab hosts
LAB_HOSTS="sre-lab-systemd:systemd sre-lab-pm2:pm2"

die() { echo "ERROR: $*" >&2; exit 1; }
log() { echo ">> lab: $*" >&2; }

compose() { # docker compose v2 where present, else docker-compose v1
  if docker compose version >/dev/null 2>&1; then docker compose -p "$LAB_PROJECT" -f "$LAB_COMPOSE_FILE" "$@"
  elif command -v docker-compose >/dev/null 2>&1; then docker-compose -p "$LAB_PROJECT" -f "$LAB_COMPOSE_FILE" "$@"
  else die "neither 'docker compose' nor 'docker-compose' is installed (apt-get install docker-compose)"; fi
}

wait_http() { # wait_http <label> <command...>: retry a health probe, bounded
  local label=$1; shift
  for _ in $(seq 1 60); do
    if "$@" >/dev/null 2>&1; then log "$label healthy"; return 0; fi
    sleep 1
  done
  echo "WARN: $label not healthy after 60s" >&2
  return 1
}
