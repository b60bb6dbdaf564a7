# SPDX-License-Identifier: GPL-3.0-or-later
"""The drills (molecule/_drills/drills.yml) against the catalog and the scenarios: every runbook x twin pair that
applies has a drill or is listed as pending with why; the scenario files are the ones render.py writes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
SPEC = yaml.safe_load((REPO / "molecule" / "_drills" / "drills.yml").read_text())
CATALOG = yaml.safe_load((REPO / "awx" / "catalog.yml").read_text())


def test_scenarios_are_rendered_from_the_drills():
    proc = subprocess.run([sys.executable, str(REPO / "molecule" / "_drills" / "render.py"), "--check"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_drill_names_a_catalog_runbook_and_a_twin():
    for name, drill in SPEC["drills"].items():
        assert drill["runbook"] in CATALOG["runbooks"], name
        assert drill["twin"] in SPEC["twins"], name
        # a second drill of one pair (another fault) has a variant: drill_<runbook>_<app>_<variant>
        variant = "_" + drill["variant"] if drill.get("variant") else ""
        assert name == "drill_%s_%s%s" % (drill["runbook"], SPEC["twins"][drill["twin"]]["app"], variant), name
        assert drill["diagnose_code"] and drill["inject"] and drill["present"] and drill["heal"], name
        assert (REPO / "molecule" / name / "molecule.yml").exists(), name


def test_every_pair_that_applies_is_drilled_or_pending():
    drilled = {(d["runbook"], d["twin"]) for d in SPEC["drills"].values()}
    pending = {(runbook, host) for runbook, hosts in SPEC["pending"].items() for host in hosts}
    applies = {(runbook, host) for runbook, hosts in SPEC["applies"].items() for host in hosts}
    assert set(SPEC["applies"]) <= set(CATALOG["runbooks"])
    assert not applies - drilled - pending, sorted(applies - drilled - pending)
    assert not drilled & pending, sorted(drilled & pending)
    assert not (drilled | pending) - applies, sorted((drilled | pending) - applies)


def test_each_lab_app_triages_the_runbooks_that_apply_to_it():
    """inventories/lab/group_vars/<app>.yml sre_runbooks (what playbooks/triage.yml diagnoses there) is the set of
    runbooks drills.yml says apply to that app's twin: a runbook added to one and not the other fails here."""
    hosts = yaml.safe_load((REPO / "inventories" / "lab" / "hosts.yml").read_text())
    groups = hosts["all"]["children"]["lab"]["children"]
    for app, group in groups.items():
        (twin,) = group["hosts"]
        group_vars = yaml.safe_load((REPO / "inventories" / "lab" / "group_vars" / ("%s.yml" % app)).read_text())
        expected = {runbook for runbook, twins in SPEC["applies"].items() if twin in twins}
        assert set(group_vars["sre_runbooks"]) == expected, (app, sorted(set(group_vars["sre_runbooks"]) ^ expected))
        assert len(group_vars["sre_runbooks"]) == len(set(group_vars["sre_runbooks"])), app
