# SPDX-License-Identifier: GPL-3.0-or-later
"""Drill verify (testinfra, on the twin): the app is healthy and the fault's own signal is gone."""

import os
import shlex
from pathlib import Path

import testinfra.utils.ansible_runner
import yaml

REPO = Path(__file__).resolve().parents[3]
LAB_INVENTORY = REPO / "inventories" / "lab"
SPEC = yaml.safe_load((Path(__file__).resolve().parents[1] / "drills.yml").read_text())
DRILL = SPEC["drills"][os.environ["SRE_DRILL"]]
# the twin through the lab inventory itself (its connection: docker exec into the container, or local)
testinfra_hosts = ["ansible://%s?ansible_inventory=%s" % (DRILL["twin"], LAB_INVENTORY)]
RUNNER = testinfra.utils.ansible_runner.AnsibleRunner(str(LAB_INVENTORY))


def shell(key, spec):
    """The drill's shell snippet, with the environment prepare.yml gives it (vars.yml drill_env): the host's compose
    project directory, the lab root, the FAKE flyctl's state."""
    variables = RUNNER.get_variables(DRILL["twin"])
    # the inventory's value is not templated here: its one variable is the lab root (inventories/lab: sre_lab_root)
    project_dir = str(variables.get("sre_compose_project_dir", "")).replace("{{ sre_lab_root }}", str(REPO / "lab"))
    env = {"SRE_COMPOSE_PROJECT_DIR": project_dir,
           "SRE_LAB_ROOT": str(REPO / "lab"), "FAKE_FLY_STATE": os.environ.get("FAKE_FLY_STATE", "")}
    return "%s bash -c %s" % (" ".join("%s=%s" % (k, shlex.quote(v)) for k, v in env.items()), shlex.quote(spec[key]))


def test_the_app_is_healthy(host):
    cmd = host.run(shell("health", SPEC["twins"][DRILL["twin"]]))
    assert cmd.rc == 0, cmd.stdout + cmd.stderr


def test_the_fault_is_gone(host):
    cmd = host.run(shell("present", DRILL))
    assert cmd.rc != 0, "the fault's signal is still there: " + cmd.stdout + cmd.stderr


def test_the_twin_is_as_before_the_fault(host):
    """Where the drill says what healed means exactly (drills.yml healed: the release before the bad one)."""
    if "healed" not in DRILL:
        return
    cmd = host.run(shell("healed", DRILL))
    assert cmd.rc == 0, "not as before the fault: " + cmd.stdout + cmd.stderr
