# SPDX-License-Identifier: GPL-3.0-or-later
"""The role argument specs state each option once (YAML anchors and merge keys, resolved by ansible-core's own
loader), every public entry point of the target role has a spec, and validation still refuses a wrong type."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.parsing.utils.yaml import from_yaml

REPO = Path(__file__).resolve().parents[2]
ROLES = REPO / "roles"
OPTION_LINE = re.compile(r"^\s+((?:sre|target|app_down|deploy_failure)_\w+):\s*(?:&\w+)?\s*$", re.M)


def specs(role):
    path = ROLES / role / "meta" / "argument_specs.yml"
    return from_yaml(path.read_text(), file_name=str(path))["argument_specs"], path.read_text()


@pytest.mark.parametrize("role", ["target", "app_down", "deploy_failure"])
def test_each_option_is_stated_once(role):
    resolved, text = specs(role)
    written = OPTION_LINE.findall(text)
    assert len(written) == len(set(written)), sorted({n for n in written if written.count(n) > 1})
    used = set().union(*(set(entry["options"]) for entry in resolved.values()))
    assert used == set(written)


def test_every_public_target_entry_point_has_a_spec():
    resolved, dummy = specs("target")
    public = {p.stem for p in (ROLES / "target" / "tasks").glob("*.yml") if not p.name.startswith("_")}
    assert set(resolved) == public


def test_target_options_are_role_defaults():
    resolved, dummy = specs("target")
    defaults = from_yaml((ROLES / "target" / "defaults" / "main.yml").read_text())
    for name, entry in resolved.items():
        for option, spec in entry["options"].items():
            assert option in defaults or option == "sre_target_kind", (name, option)
            assert spec.get("type") and spec.get("description"), (name, option)


@pytest.mark.parametrize("entry, option, value", [
    ("status", "target_health_retries", "many"),
    ("restart", "target_cooldown_max", "x"),
    ("logs", "target_logs_lines", "all"),
    ("deploy", "target_release_history", "ten"),
    ("stop", "target_container_stats", "maybe"),
    ("fly_command", "target_fly_changes", "perhaps"),
])
def test_a_wrong_type_is_refused(entry, option, value):
    resolved, dummy = specs("target")
    result = ArgumentSpecValidator(resolved[entry]["options"]).validate({option: value})
    assert any(option in str(error) for error in result.errors), result.error_messages


@pytest.mark.parametrize("entry, option", [("logs", "target_health_retries"), ("health", "target_cooldown_max"),
                                           ("record_release", "target_health_retries")])
def test_an_option_of_another_entry_point_is_not_validated_there(entry, option):
    resolved, dummy = specs("target")
    assert option not in resolved[entry]["options"]
