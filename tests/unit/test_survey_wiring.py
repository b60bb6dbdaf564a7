# SPDX-License-Identifier: GPL-3.0-or-later
"""Every AWX survey question names an option of the role entry point its playbook runs (declared in the
role's meta/argument_specs.yml, so a wrong answer is refused before anything runs)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from conftest import ensure_collection_link

sys.path.insert(0, str(ensure_collection_link()))
from ansible_collections.sre.runbooks.plugins.plugin_utils import _awx_catalog as cat  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CATALOG = yaml.safe_load((REPO / "awx" / "catalog.yml").read_text())
# The shared contract every play reads (docs/development.md): not a single role's option.
SHARED = {"sre_confirm", "sre_incident_id", "sre_severity"}


def entry_points(playbook):
    """(role, entry point) pairs a playbook runs: `roles:` entries and include/import_role tasks."""
    found = []
    for play in yaml.safe_load((REPO / "playbooks" / playbook).read_text()):
        for role in play.get("roles", []):
            name = role if isinstance(role, str) else role["role"]
            found.append((name.split(".")[-1], "main"))
        for section in ("pre_tasks", "tasks", "post_tasks"):
            for task in play.get(section, []) or []:
                for key in ("ansible.builtin.include_role", "ansible.builtin.import_role", "include_role", "import_role"):
                    if key in task:
                        found.append((task[key]["name"].split(".")[-1], task[key].get("tasks_from", "main")))
    return found


def options(role, entry):
    specs = yaml.safe_load((REPO / "roles" / role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    assert entry in specs, "roles/%s/meta/argument_specs.yml has no entry point %s" % (role, entry)
    return set((specs[entry].get("options") or {}).keys())


QUESTIONS = [(t["name"], t["playbook"].split("/", 1)[1], q["variable"])
             for t in cat.job_templates(CATALOG) for q in t.get("survey_spec", {}).get("spec", [])]


@pytest.mark.parametrize("template,playbook,variable", QUESTIONS, ids=["%s:%s" % (q[0], q[2]) for q in QUESTIONS])
def test_survey_variable_is_an_option_of_the_role_entry_point(template, playbook, variable):
    if variable in SHARED:
        return
    points = entry_points(playbook)
    assert points, "%s runs no role" % playbook
    declared = set().union(*(options(r, e) for r, e in points))
    assert variable in declared, "%s asks for %s, which no role entry point of %s declares (%s)" % (
        template, variable, playbook, ", ".join("%s:%s" % p for p in points))


def test_the_questions_were_found():
    assert len(QUESTIONS) >= 20
