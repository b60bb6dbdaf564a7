# sre.runbooks: two commands on a fresh Debian 12 machine, as root.
#   make demo   build and start the lab, break it, diagnose, remediate, print the incident
#   make test   the whole suite (unit, integration, sanity, lint, build, molecule) with timings
SHELL := /bin/bash
.DEFAULT_GOAL := help

.PHONY: help demo demo-loop test bootstrap venv collections-link unit integration sanity lint build docs \
        lab lab-up lab-down lab-status molecule drills bench clean

help:
	@echo "make demo   - build and start the lab, break it, run diagnose then remediate, print findings"
	@echo "make test   - the whole test suite with a per-stage timing summary"
	@echo "make demo-loop - the closed loop: Prometheus fires, Alertmanager posts, the rulebook heals the lab (timed)"
	@echo "other: bootstrap unit integration sanity lint build docs lab-up lab-down lab-status molecule bench clean"

demo:
	@scripts/demo.sh

# the closed loop with the real monitoring stack (lab/monitor.py): the stack is stopped again at the end
demo-loop:
	@scripts/bootstrap.sh && lab/up.sh && V=$$(scripts/venv.sh) && \
	  { $$V/bin/python lab/monitor.py up && $$V/bin/python lab/monitor.py loop --json build/monitor/loop.json; \
	    rc=$$?; $$V/bin/python lab/monitor.py down; exit $$rc; }

test:
	@scripts/test.sh

bootstrap:
	@scripts/bootstrap.sh

venv:
	@scripts/venv.sh

collections-link:
	@mkdir -p build/collections/ansible_collections/sre
	@ln -sfn "$(CURDIR)" build/collections/ansible_collections/sre/runbooks

unit:
	@STAGES=unit scripts/test.sh

integration:
	@STAGES="lab integration" scripts/test.sh

sanity:
	@STAGES=sanity scripts/test.sh

lint:
	@STAGES=lint scripts/test.sh

build:
	@STAGES=build scripts/test.sh

docs:
	@scripts/docs.sh

molecule:
	@STAGES="lab molecule" scripts/test.sh

# only the drills (molecule/_drills/drills.yml) on the running lab twins; MOLECULE_SCENARIOS still limits them
drills:
	@MOLECULE_SCENARIOS="$${MOLECULE_SCENARIOS:-$$(python3 -c 'import yaml; print(" ".join(yaml.safe_load(open("molecule/_drills/drills.yml"))["drills"]))')}" \
	  STAGES="lab molecule" scripts/test.sh

lab lab-up:
	@scripts/bootstrap.sh && lab/up.sh

lab-down:
	@lab/down.sh

lab-status:
	@lab/status.sh

bench:
	@scripts/bench.sh

clean:
	rm -rf build tests/output .pytest_cache
