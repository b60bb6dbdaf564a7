# SPDX-License-Identifier: GPL-3.0-or-later
"""The runbook catalog: AWX survey rules, job templates for every playbook, workflows, rulebook."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ensure_collection_link

sys.path.insert(0, str(ensure_collection_link()))
from ansible_collections.sre.runbooks.plugins.plugin_utils import _awx_catalog as cat  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CATALOG = yaml.safe_load((REPO / "awx" / "catalog.yml").read_text())
TEMPLATES = cat.job_templates(CATALOG)
WORKFLOWS = cat.workflows(CATALOG)


def test_generated_files_match_the_catalog():
    proc = subprocess.run([sys.executable, str(REPO / "awx" / "render.py"), "--check"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, "run `python awx/render.py`: " + proc.stdout + proc.stderr
    generated = yaml.safe_load((REPO / "awx" / "generated" / "job_templates.yml").read_text())
    assert generated["sre_awx_job_templates"] == TEMPLATES


def test_every_playbook_has_a_job_template_and_back():
    on_disk = {p.name for p in (REPO / "playbooks").glob("*.yml")} - set(CATALOG.get("not_runbooks", []))
    templated = {t["playbook"].split("/", 1)[1] for t in TEMPLATES}
    assert sorted(on_disk - templated) == [], "playbooks without a job template (add them to awx/catalog.yml)"
    assert sorted(templated - on_disk) == [], "job templates whose playbook is missing from playbooks/"


@pytest.mark.parametrize("template", TEMPLATES, ids=[t["name"] for t in TEMPLATES])
def test_job_template(template):
    assert cat.validate_survey_spec(template["survey_spec"]) == []
    assert template["ask_limit_on_launch"] is True
    questions = {q["variable"]: q for q in template["survey_spec"]["spec"]}
    phase = template["name"].rsplit(" ", 1)[1]
    if phase == "release":
        assert questions["target_deploy_release"]["required"] is True
    if phase == "diagnose":
        assert template["job_type"] == "check" and "sre_confirm" not in questions
    else:
        assert template["job_type"] == "run"
        confirm = questions["sre_confirm"]
        assert (confirm["type"], confirm["required"], confirm["default"]) == ("multiplechoice", True, "no")
    for variable, question in questions.items():
        # the secrets runbook's own prefix (secrets_rollback_from, a path) names no secret by itself
        own = variable[len("secrets_"):] if variable.startswith("secrets_") else variable
        if any(word in own for word in ("password", "token", "secret", "hash")):
            assert question["type"] == "password" and question["default"] == ""


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=[w["name"] for w in WORKFLOWS])
def test_workflow(workflow):
    names = {t["name"] for t in TEMPLATES}
    nodes = {n["identifier"]: n for n in workflow["schema"]}
    assert cat.validate_survey_spec(workflow["survey_spec"]) == []
    assert nodes["approve"]["unified_job_template"]["type"] == "workflow_approval"
    assert [n["identifier"] for n in nodes["diagnose"]["related"]["success_nodes"]] == ["approve"]
    assert [n["identifier"] for n in nodes["approve"]["related"]["success_nodes"]] == ["remediate"]
    assert [n["identifier"] for n in nodes["remediate"]["related"]["success_nodes"]] == ["verify"]
    assert nodes["remediate"]["related"]["failure_nodes"], "no failure branch"
    for node in nodes.values():
        assert set(node["related"]) == {"success_nodes", "failure_nodes", "always_nodes", "credentials"}
        if node["unified_job_template"]["type"] == "job_template":
            assert node["unified_job_template"]["name"] in names
        for link in node["related"]["success_nodes"] + node["related"]["failure_nodes"] + node["related"]["always_nodes"]:
            assert link["identifier"] in nodes


def test_every_runbook_has_a_workflow():
    wanted = {cat.workflow_name(r) for r, data in CATALOG["runbooks"].items() if "remediate" in data["phases"]
              or "rollback" in data["phases"] or "restore" in data["phases"]}
    assert wanted and {w["name"] for w in WORKFLOWS} == wanted


def test_rulebook_runs_catalog_playbooks_with_throttle():
    rulebook = yaml.safe_load((REPO / "extensions" / "eda" / "rulebooks" / "alertmanager.yml").read_text())
    playbooks = {"sre.runbooks." + p[:-4] for p in cat.playbooks(CATALOG)}
    rules = rulebook[0]["rules"]
    expected = {"app_down", "backup", "db_connections", "error_rate", "failed_jobs", "high_resource", "slow_queries",
                "tls_cert", "triage"}
    assert {r["name"].split(":")[0] for r in rules} == expected
    # the last rule: an alert no runbook names runs the triage (every applicable diagnose), never a remediate
    named = sorted(n for data in CATALOG["runbooks"].values() for n in (data.get("alerts") or {}).get("names", []))
    assert rules[-1]["name"] == "triage: diagnose" and len(rules[-1]["actions"]) == 1
    assert rules[-1]["condition"] == ('event.alert.status == "firing" and event.alert.labels.alertname not in [%s]'
                                      % ", ".join('"%s"' % n for n in named))
    assert rules[-1]["actions"][0]["run_playbook"]["name"] == "sre.runbooks.triage"
    for rule in rules:
        assert rule["throttle"]["once_within"]
        names = [a["run_playbook"]["name"] for a in rule["actions"]]
        assert set(names) <= playbooks and (names[0].endswith("_diagnose") or names[0] == "sre.runbooks.triage")
        for action in rule["actions"][1:]:
            assert rule["name"].split(":")[0] in ("app_down", "backup", "tls_cert")
            assert action["run_playbook"]["extra_vars"]["sre_confirm"] == "yes"
    db = [r for r in rules if r["name"].startswith("db_connections")][0]
    assert len(db["actions"]) == 1, "too many connections only diagnoses: terminating sessions needs a person"


GOOD = {"type": "integer", "question_name": "n", "variable": "n", "required": True, "default": 5, "min": 1, "max": 9}


@pytest.mark.parametrize("change,message", [
    ({"type": "bogus"}, "not one of"),
    ({"default": 10}, "outside"),
    ({"default": "5"}, "is not integer"),
    ({"variable": "not valid"}, "identifier"),
    ({"required": "yes"}, "boolean"),
    ({"choices": ["a"]}, "choices only belong"),
    ({"type": "multiplechoice", "choices": ["a", "b"], "default": "c"}, "not in choices"),
    ({"type": "multiplechoice", "choices": [], "default": ""}, "non-empty list"),
    ({"type": "multiplechoice", "choices": "a\nb", "default": ""}, "required choice needs a default"),
    ({"type": "multiselect", "choices": ["a", "b"], "default": "a\nz"}, "'z' not in choices"),
    ({"type": "password", "default": "hunter22", "min": 0, "max": 20}, "must not carry a default"),
    ({"type": "text", "default": "toolong", "min": 0, "max": 3}, "length outside"),
])
def test_survey_validator_rejects(change, message):
    item = dict(GOOD, **change)
    errors = cat.validate_survey_spec({"name": "s", "description": "", "spec": [item]})
    assert any(message in e for e in errors), errors


def test_survey_validator_accepts_and_finds_duplicates():
    assert cat.validate_survey_spec({"name": "s", "description": "", "spec": [GOOD]}) == []
    errors = cat.validate_survey_spec({"name": "s", "description": "", "spec": [GOOD, GOOD]})
    assert errors == ["question 1 (n): variable 'n' repeated"]
    assert cat.validate_survey_spec({"spec": {}}) != []


def test_every_question_parses_whole():
    """A ', ' in an unquoted question of a flow mapping ends it: the rest becomes a stray key with no value."""
    known = {"variable", "type", "question", "default", "min", "max", "choices", "required"}
    questions = list(CATALOG.get("common_questions") or [])
    for data in CATALOG["runbooks"].values():
        for spec in data["phases"].values():
            questions += spec.get("questions") or []
    assert questions
    for question in questions:
        assert set(question) <= known and None not in question.values(), question
