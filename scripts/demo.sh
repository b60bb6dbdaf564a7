#!/usr/bin/env bash
# `make demo`: install what is missing, build and start the lab, break it (stop the app and fill
# PostgreSQL's connection pool on the systemd host), run diagnose then remediate, and print the
# incident findings and what was done. A second run reuses the cached images.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
t0=$(date +%s)
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "1/6 installing prerequisites (only what is missing)"
scripts/bootstrap.sh
venv=$(scripts/venv.sh)
export PATH="$venv/bin:$PATH" ANSIBLE_CONFIG="$here/ansible.cfg"
export SRE_INCIDENT_DIR="$here/build/demo-incidents"
rm -rf "$SRE_INCIDENT_DIR" && mkdir -p "$SRE_INCIDENT_DIR"
incident="demo-$(date -u +%Y%m%dT%H%M%SZ)"

say "2/6 building (cached by content hash) and starting the lab"
lab/up.sh
t_lab=$(date +%s)

say "3/6 breaking the lab: stopping the app and filling the connection pool on lab-systemd"
lab/break.sh fill-connections
lab/break.sh stop-app

limit=lab-systemd
common=(-i inventories/lab -l "$limit" -e "sre_incident_id=$incident")
# The full Ansible output goes to one log file; the screen gets one line per run, then the record's summary.
log="$here/build/demo/ansible.log"
mkdir -p "$(dirname "$log")" && : > "$log"
step() { # step <label> <ansible-playbook args...>: run it into the log, print one line from its recap
  local label=$1 t rc from recap; shift
  t=$(date +%s)
  printf '\n===== %s: ansible-playbook %s\n' "$label" "$*" >> "$log"
  from=$(wc -l < "$log")
  if ansible-playbook "$@" >> "$log" 2>&1; then rc=0; else rc=$?; fi
  recap=$(tail -n +"$from" "$log" | sed -n '/^PLAY RECAP/,$p' | grep -m1 "^$limit " | tr -s ' ' || true)
  printf '  %-34s rc=%s in %3ss  %s\n' "$label" "$rc" "$(( $(date +%s) - t ))" "${recap#"$limit" : }"
  [ "$rc" -eq 0 ] || { echo "  (that run failed: its output is in $log)"; return "$rc"; }
}

say "4/6 diagnose (read-only): the app's status, logs, port and health; the database's sessions"
# a diagnose that finds the app down ends non-zero on purpose (a critical finding): the demo goes on
step "app_down diagnose (--check)" "${common[@]}" --check playbooks/app_down_diagnose.yml || true
step "db_connections diagnose (--check)" "${common[@]}" --check playbooks/db_connections_diagnose.yml || true

say "5/6 remediate (confirmed)"
# The filler's sessions are seconds old: end idle sessions older than 5 s (default 10m), then restart
# the app through the target interface so its pool reconnects (this also starts the stopped unit).
step "db_connections remediate" "${common[@]}" -e sre_confirm=yes -e db_connections_idle_after=5s \
  -e db_connections_restart_app=true playbooks/db_connections_remediate.yml
# app_down verifies what is left: the app answers, so nothing more is changed.
step "app_down remediate" "${common[@]}" -e sre_confirm=yes playbooks/app_down_remediate.yml

say "6/6 the incident record"
"$venv/bin/python" scripts/incident_summary.py "$SRE_INCIDENT_DIR"
echo
echo "lab ready in $((t_lab - t0))s; demo done in $(( $(date +%s) - t0 ))s"
echo "full Ansible output: $log"
echo "incident records (JSON and Markdown with the notices and a post-mortem skeleton): $SRE_INCIDENT_DIR"
