# SPDX-License-Identifier: GPL-3.0-or-later
"""After remediation: the app answers, the filler's sessions are gone, PostgreSQL and the app run."""

import json


def test_app_health_answers_again(host):
    out = host.check_output("curl -fsS -m 5 http://127.0.0.1:3000/health")
    assert json.loads(out)["status"] == "ok"


def test_idle_filler_sessions_were_terminated(host):
    count = host.check_output(
        "runuser -u postgres -- psql -d saasresto -Atc "
        "\"select count(*) from pg_stat_activity where application_name = 'drill-filler'\"")
    assert int(count) == 0


def test_services_running(host):
    assert host.service("saasresto").is_running
    assert host.service("postgresql@15-main").is_running
    assert host.socket("tcp://0.0.0.0:5432").is_listening
