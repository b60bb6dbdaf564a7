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

say "4/6 diagnose (read-only)"
ansible-playbook "${common[@]}" playbooks/app_down_diagnose.yml || true
ansible-playbook "${common[@]}" playbooks/db_connections_diagnose.yml || true

say "5/6 remediate (confirmed)"
# The filler's sessions are seconds old: end idle sessions older than 5 s (default 10m), then restart
# the app through the target interface so its pool reconnects (this also starts the stopped unit).
ansible-playbook "${common[@]}" -e sre_confirm=yes -e db_connections_idle_after=5s \
  -e db_connections_restart_app=true playbooks/db_connections_remediate.yml
# app_down verifies what is left: the app answers, so nothing more is changed.
ansible-playbook "${common[@]}" -e sre_confirm=yes playbooks/app_down_remediate.yml

say "6/6 the incident record"
"$venv/bin/python" scripts/incident_summary.py "$SRE_INCIDENT_DIR"
echo
echo "lab ready in $((t_lab - t0))s; demo done in $(( $(date +%s) - t0 ))s; records: $SRE_INCIDENT_DIR"
