# SPDX-License-Identifier: GPL-3.0-or-later
"""Every diagnose playbook against every lab twin it applies to (issue 12), with nothing but the lab
inventory: no -e, --check, changed=0 and failed=0 on every host, and no finding that says a feature the
twin has is not configured or not found. One run per playbook over all its twins (as `-l lab` would)."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from playbook_runner import LAB_INVENTORY, REPO, lab_marks, run_playbook

pytestmark = lab_marks()

# runbook -> the twins that have what it diagnoses: molecule/_drills/drills.yml `applies` (the one list)
APPLIES = {runbook: set(hosts) for runbook, hosts in
           yaml.safe_load((REPO / "molecule" / "_drills" / "drills.yml").read_text())["applies"].items()}
# findings that mean "you did not tell me about this app" rather than a state of the app
NOT_CONFIGURED = re.compile(r"not configured|is not set|does not exist|not found|no such (file|table|column)"
                            r"|unknown (table|column)|nothing to (check|diagnose)", re.I)


@pytest.mark.parametrize("runbook", sorted(APPLIES))
def test_diagnose_runs_clean_on_every_twin(tmp_path, runbook):
    hosts = APPLIES[runbook]
    res = run_playbook("%s_diagnose" % runbook, tmp_path=tmp_path, inventory=LAB_INVENTORY, check=True,
                       limit=",".join(sorted(hosts)), timeout=600,
                       env={"FAKE_FLY_STATE": str(tmp_path / "fly" / "state.json")})
    assert res.rc == 0, res.output
    assert set(res.recap) == hosts, res.output
    assert {h: (res.changed(h), res.failed(h)) for h in hosts} == {h: (0, 0) for h in hosts}, res.output
    record = res.last_record()
    unconfigured = [f for f in record.get("findings") or [] if NOT_CONFIGURED.search(own_words(f))]
    assert not unconfigured, unconfigured


def own_words(finding):
    """A finding's own words: the app's log lines it quotes are the app's, not the runbook's (an earlier drill's
    "required secret JWT_SECRET is not set" in the journal says nothing about the inventory)."""
    if str(finding.get("code", "")).endswith("_errors"):
        return str(finding.get("code"))
    message = str(finding.get("message", "")).split(" last: ", 1)[0]
    return json.dumps(dict(finding, message=message))
