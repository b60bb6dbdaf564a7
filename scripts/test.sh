#!/usr/bin/env bash
# The whole test suite behind `make test`: every stage runs (a failure does not hide the next
# stage's result), then a per-stage timing summary. Exit status is non-zero if any stage failed.
# STAGES="unit integration" limits the run to those stages; MOLECULE_SCENARIOS limits molecule, INTEGRATION_TESTS
# (paths or node ids, default tests/integration) the integration lanes.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

ALL_STAGES="bootstrap unit lab integration sanity lint changelog build molecule"
STAGES=${STAGES:-$ALL_STAGES}
declare -a names=() results=() times=()
failed=0 passed=0

in_stages() { case " $STAGES " in *" $1 "*) true ;; *) false ;; esac; }

run_stage() {
  local name=$1; shift
  in_stages "$name" || return 0
  echo
  echo "======== stage: $name ========"
  local start end rc
  start=$(date +%s)
  "$@"
  rc=$?
  end=$(date +%s)
  record_stage "$name" "$rc" "$((end - start))"
}

# record_stage NAME RC SECONDS: one line of the timing summary, and the stage's closing line.
record_stage() {
  names+=("$1"); times+=("$3")
  if [ "$2" -eq 0 ]; then results+=("ok"); passed=$((passed + 1))
  else results+=("FAILED (rc=$2)"); failed=$((failed + 1)); fi
  echo "======== stage $1: ${results[-1]} in ${3}s ========"
}

venv() { "$here/scripts/venv.sh"; }

stage_bootstrap() { "$here/scripts/bootstrap.sh"; }

stage_unit() {
  SRE_LAB_REQUIRED=1 "$(venv)/bin/python" -m pytest -q -p no:cacheprovider tests/unit
}

# The lab runs before the integration stage: its tests skip without it when run by hand, but here
# SRE_LAB_REQUIRED=1 turns any skip into a failure (tests/conftest.py).
# Two lanes (tests/conftest.py, marker lab_lane): the tests that drive Docker and the lab run one at a time against
# the one lab (stage integration); the local ones (own PostgreSQL clusters, free ports, temp state) need no lab and
# run beside everything that does (stage integration-local): started with the lab lane, they go on beside molecule,
# in LOCAL_WORKERS pytest-xdist workers (default 2; 1 = one process, no xdist), a test module per worker at a time
# (--dist loadfile: a module's fixtures stay in one process). This machine has two cores and both lanes keep them
# busy; in ci27 the local lane ended 6 minutes before the lab lane and half the machine sat idle until molecule began
# (mpstat), and molecule's last minutes had one lane left. Each lane has its own temp root and log.
integration_out="$here/build/integration"
start_local_lane() {
  local py workers=${LOCAL_WORKERS:-2} xdist=()
  py="$(venv)/bin/python"
  mkdir -p -m 0711 "$integration_out"
  rm -rf "$integration_out/tmp-local" "$integration_out/local.log" "$integration_out/local.result"
  if [ "$workers" -gt 1 ]; then xdist=(-n "$workers" --dist loadfile); fi
  (
    start=$(date +%s)
    SRE_LAB_REQUIRED=1 "$py" -m pytest -q -p no:cacheprovider --durations=40 --basetemp="$integration_out/tmp-local" \
      -m "not lab_lane" "${xdist[@]}" ${INTEGRATION_TESTS:-tests/integration} > "$integration_out/local.log" 2>&1
    echo "$? $(( $(date +%s) - start ))" > "$integration_out/local.result"
  ) &
  local_pid=$!
}
collect_local_lane() {
  local rc took
  wait "$local_pid"
  read -r rc took < "$integration_out/local.result"
  echo
  echo "======== stage: integration-local (the local lane, ran beside the lab lane and molecule) ========"
  cat "$integration_out/local.log"
  record_stage integration-local "$rc" "$took"
}
stage_integration() {
  local py
  py="$(venv)/bin/python"
  mkdir -p -m 0711 "$integration_out"
  rm -rf "$integration_out/tmp-lab" "$integration_out/lab.log"
  SRE_LAB_REQUIRED=1 "$py" -m pytest -q -p no:cacheprovider --durations=40 --basetemp="$integration_out/tmp-lab" -m lab_lane \
    ${INTEGRATION_TESTS:-tests/integration} > "$integration_out/lab.log" 2>&1
  local rc=$?
  echo "---- integration, lab lane (rc=$rc) ----"; cat "$integration_out/lab.log"
  return "$rc"
}

stage_sanity() { "$here/scripts/sanity.sh"; }

# ansible-lint (production profile), then antsibull-docs (what docs.ansible.com renders with) on every plugin's docs,
# from the collection's place in build/collections (ansible_collections/sre/runbooks).
stage_lint() {
  (
    export PATH="$(venv)/bin:$PATH"
    rc=0
    ansible-lint --profile production --offline || rc=$?
    echo "---- antsibull-docs lint-collection-docs --plugin-docs ----"
    (cd "$here/build/collections/ansible_collections/sre/runbooks" && antsibull-docs lint-collection-docs --plugin-docs .) \
      || rc=$?
    exit "$rc"
  )
}

stage_changelog() {
  (export PATH="$(venv)/bin:$PATH"; antsibull-changelog lint)
}

# Build the tarball, install it into a fresh collections path and run playbooks by FQCN.
stage_build() {
  local out="$here/build/dist" col="$here/build/installed"
  rm -rf "$out" "$col" && mkdir -p "$out" "$col"
  (
    set -e
    export PATH="$(venv)/bin:$PATH"
    ansible-galaxy collection build "$here" --output-path "$out" --force
    ansible-galaxy collection install "$out"/sre-runbooks-*.tar.gz -p "$col" --no-deps --force
    cd "$out"
    # A plain config: only the installed tarball provides sre.runbooks here.
    printf '[defaults]\nretry_files_enabled = false\n' > "$out/ansible.cfg"
    shopt -s nullglob
    for pb in "$here"/playbooks/*.yml; do
      name=$(basename "$pb" .yml)
      ANSIBLE_CONFIG="$out/ansible.cfg" ANSIBLE_COLLECTIONS_PATH="$col" \
        ansible-playbook -i localhost, "sre.runbooks.$name" --syntax-check >/dev/null
      echo "ok: sre.runbooks.$name (syntax, from the installed tarball)"
    done
  )
}

# Build the lab images (cached by content hash) and start the lab, healthy, for the integration tests.
stage_lab() { "$here/lab/up.sh"; }

# One molecule scenario: forget its state, run it, print its line; a drill's result is kept for the matrix.
# State left by an earlier run would make a scenario whose sequence has no create/destroy skip prepare ("already
# prepared"). `molecule reset` forgets it, but it also calls every driver's reset, and the docker driver's stops every
# owner=molecule container on the engine, whichever scenario made it: only the scenarios that create containers (all
# in one lane, one at a time) are reset that way; every other scenario gets a fresh ephemeral directory of its own
# (MOLECULE_EPHEMERAL_DIRECTORY) and never calls reset.
molecule_one() {
  local s=$1 t0 r eph=""
  t0=$(date +%s)
  if grep -A1 '^driver:' "molecule/$s/molecule.yml" | grep -q 'name: docker'; then
    molecule reset -s "$s" >/dev/null 2>&1 || true
  else
    eph="$here/build/molecule/ephemeral/$s"
    rm -rf "$eph" && mkdir -p "$eph"
  fi
  if (if [ -n "$eph" ]; then export MOLECULE_EPHEMERAL_DIRECTORY="$eph"; fi; molecule test -s "$s"); then r=ok
  else r=FAILED; fi
  echo "molecule scenario $s: $r in $(( $(date +%s) - t0 ))s"
  if grep -q "molecule/_drills/drills.yml" "molecule/$s/molecule.yml" 2>/dev/null; then
    echo "$r" > "$SRE_DRILL_RESULTS/$s.result"
  fi
  [ "$r" = ok ]
}

# The lane of a scenario. Two lanes run side by side (MOLECULE_LANES=1: one after another):
#   hosts  the drills that fault the lab's VPS container or its PostgreSQL: every drill on lab-systemd and lab-sme
#          (one container), the database drills of cookcam (lab-pm2), whose database lives in that PostgreSQL, and
#          the drills of hotdash (lab-fly: its database is there too) but secrets; one at a time, so their faults
#          never meet;
#   engine everything else, one at a time: the scenarios that create containers (docker driver; `molecule reset` of
#          one stops every owner=molecule container, so no two of them ever overlap), the drills on the compose
#          project, the drills of cookcam that touch only the pm2 container, and hotdash's secrets drill (the FAKE
#          Fly app's own state, one per scenario). Measured in ci25: engine 1812 s (21 scenarios, the four
#          docker-driver ones 72-107 s each), hosts 1632 s (26 drills): hotdash's app_down (88 s) went to the hosts.
#          A delegated drill creates no container and is never reset (molecule_one).
molecule_lane() {
  "$(venv)/bin/python" - "$1" <<'PY'
import sys
import yaml
spec = yaml.safe_load(open("molecule/_drills/drills.yml"))
drill = spec["drills"].get(sys.argv[1])
DATABASE_RUNBOOKS = {"db_connections", "slow_queries", "backup", "failed_jobs", "data_integrity", "login"}
# (the drills of the FAKE Fly app go with the hosts, but secrets, which touches only its fake state: that balances
# the two lanes)
FAKE_STATE_ONLY = {"secrets"}
hosts = drill is not None and (drill["twin"] in ("lab-systemd", "lab-sme") or (
    drill["twin"] == "lab-fly" and drill["runbook"] not in FAKE_STATE_ONLY) or (
    drill["twin"] == "lab-pm2" and drill["runbook"] in DATABASE_RUNBOOKS))
print("hosts" if hosts else "engine")
PY
}

stage_molecule() {
  (
    set -e
    export PATH="$(venv)/bin:$PATH"
    eval "$("$here/lab/build.sh" --print-env)"
    export ANSIBLE_COLLECTIONS_PATH="$here/build/collections"
    scenarios=${MOLECULE_SCENARIOS:-$(find molecule -mindepth 2 -maxdepth 2 -name molecule.yml -printf '%h\n' | xargs -rn1 basename | sort)}
    [ -n "$scenarios" ] || { echo "no molecule scenarios found"; exit 1; }
    # the drills (molecule/_drills/drills.yml) write when the fault went in and when the twin was healthy here
    export SRE_DRILL_RESULTS="$here/build/drills"
    rm -rf "$SRE_DRILL_RESULTS" && mkdir -p "$SRE_DRILL_RESULTS"
    out="$here/build/molecule"
    rm -rf "$out" && mkdir -p "$out"
    drills=() lanes=()
    for s in $scenarios; do
      grep -q "molecule/_drills/drills.yml" "molecule/$s/molecule.yml" 2>/dev/null && drills+=("$s")
      if [ "${MOLECULE_LANES:-2}" = 1 ]; then lane=engine; else lane=$(molecule_lane "$s"); fi
      echo "$s" >> "$out/$lane.list"
    done
    pids=()
    for list in "$out"/*.list; do
      lane=$(basename "$list" .list); lanes+=("$lane")
      (
        set +e; fails=0
        while read -r s; do molecule_one "$s" </dev/null || fails=$((fails + 1)); done < "$list"
        [ "$fails" -eq 0 ]
      ) > "$out/$lane.log" 2>&1 &
      pids+=($!)
    done
    rc=0
    for i in "${!pids[@]}"; do
      if wait "${pids[$i]}"; then r=0; else r=$?; rc=1; fi
      echo "---- molecule, lane ${lanes[$i]} (rc=$r) ----"; cat "$out/${lanes[$i]}.log"
    done
    echo "---- molecule scenarios ----"
    cat "$out"/*.log | grep '^molecule scenario ' || true
    if [ ${#drills[@]} -gt 0 ]; then python3 "$here/scripts/drill_matrix.py" "$SRE_DRILL_RESULTS" "${drills[@]}"; fi
    [ "$rc" -eq 0 ]
  )
}

# The static stages (sanity, lint, changelog, build) read only the work tree and their own copies: they neither use
# the lab nor Docker, and molecule writes only under build/ (which the built tarball ignores). When molecule runs
# too, they run beside the lab lane and molecule (STATIC_BESIDE_MOLECULE=0: one after another, as before). Their
# output is printed after molecule's, in order.
static_stages="sanity lint changelog build"
run_static_beside() {
  local dir="$here/build/stages" name
  rm -rf "$dir" && mkdir -p "$dir"
  (
    for name in $static_stages; do
      in_stages "$name" || continue
      local start rc
      start=$(date +%s)
      "stage_$name" > "$dir/$name.log" 2>&1
      rc=$?
      echo "$rc $(( $(date +%s) - start ))" > "$dir/$name.result"
    done
  ) &
  static_pid=$!
}
collect_static() {
  local dir="$here/build/stages" name rc took
  wait "$static_pid"
  for name in $static_stages; do
    [ -f "$dir/$name.result" ] || continue
    read -r rc took < "$dir/$name.result"
    echo
    echo "======== stage: $name (ran beside the lab lane and molecule) ========"
    cat "$dir/$name.log"
    record_stage "$name" "$rc" "$took"
  done
}

total_start=$(date +%s)
run_stage bootstrap stage_bootstrap
run_stage unit stage_unit
run_stage lab stage_lab
local_pid=""
if in_stages integration; then start_local_lane; fi
static_pid=""
# The static stages (CPU only, no lab) run beside the lab lane and molecule too, when molecule runs.
if [ "${STATIC_BESIDE_MOLECULE:-1}" != 0 ] && in_stages molecule; then run_static_beside; fi
run_stage integration stage_integration
if [ -z "$static_pid" ]; then
  run_stage sanity stage_sanity
  run_stage lint stage_lint
  run_stage changelog stage_changelog
  run_stage build stage_build
fi
run_stage molecule stage_molecule
if [ -n "$local_pid" ]; then collect_local_lane; fi
if [ -n "$static_pid" ]; then collect_static; fi

echo
echo "================ timing summary ================"
for i in "${!names[@]}"; do
  printf '%-18s %-16s %5ss\n' "${names[$i]}" "${results[$i]}" "${times[$i]}"
done
printf '%-18s %-16s %5ss\n' total "" "$(( $(date +%s) - total_start ))"
echo "stages: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
