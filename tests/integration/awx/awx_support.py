# SPDX-License-Identifier: GPL-3.0-or-later
"""What the AWX job tests share (test_awx_jobs.py against the lab, test_awx_local.py on this machine alone): the
generated job templates, their survey defaults, and a job run the way AWX runs it."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from canary_support import runner_job

REPO = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
GENERATED = yaml.safe_load((REPO / "awx" / "generated" / "job_templates.yml").read_text())["sre_awx_job_templates"]
DIAGNOSE = [t for t in GENERATED if t["job_type"] == "check"]


def survey_defaults(template):
    """What AWX puts in extra vars when every question keeps its default."""
    answers = {}
    for question in template["survey_spec"]["spec"]:
        if question.get("default") not in (None, ""):
            answers[question["variable"]] = question["default"]
    return answers


def run_job(tmp_path, playbook, extravars, inventory, check=True, extra_env=None, limit=None, verbosity=0):
    """Run like AWX (canary_support.runner_job: private_data_dir/env/{extravars,envvars,cmdline}, project = the
    repository); returns the runner and the incident records (JSON files)."""
    runner, dummy, dummy = runner_job(tmp_path, playbook, extravars, limit=limit, verbosity=verbosity, check=check,
                                      inventory=inventory, extra_env=extra_env)
    return runner, sorted((tmp_path / "incidents").glob("*.json"))


def local_inventory(tmp_path):
    path = tmp_path / "hosts.ini"
    (tmp_path / "backups").mkdir(exist_ok=True)
    path.write_text("[all]\nlocalhost ansible_connection=local ansible_python_interpreter=%s\n"
                    "[all:vars]\nsre_target_kind=compose\nsre_compose_project=sre-test-no-such-project\nsre_app_name=web\nsre_app_port=1\n"
                    "sre_backup_dir=%s\nsre_db_host=127.0.0.1\nsre_db_port=1\nsre_db_name=appdb\n"
                    % (sys.executable, tmp_path / "backups"))
    return path
