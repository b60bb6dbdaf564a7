# SPDX-License-Identifier: GPL-3.0-or-later
"""The logs of every compose service (app_down, issue 12): which services docker ps lists
(sre.runbooks.compose_services), each service's last lines and error count, and the service whose logs show the
cause (sre.runbooks.compose_log_summary), from plugins/module_utils/_compose_logs.py."""

from __future__ import annotations

import sys

import pytest
from ansible.errors import AnsibleFilterError

from conftest import ensure_collection_link

sys.path.insert(0, str(ensure_collection_link()))
from ansible_collections.sre.runbooks.plugins.filter.compose_log_summary import FilterModule as SummaryFilters  # noqa: E402
from ansible_collections.sre.runbooks.plugins.filter.compose_services import FilterModule as ServiceFilters  # noqa: E402
from ansible_collections.sre.runbooks.plugins.module_utils import _compose_logs as cl  # noqa: E402

compose_services = ServiceFilters().filters()["compose_services"]
compose_log_summary = SummaryFilters().filters()["compose_log_summary"]

# docker ps -a --format '{{.ID}}\t{{.Label "com.docker.compose.service"}}\t{{.Status}}' for Ferreteria
PS = "\n".join([
    "a1\tweb\tUp 2 hours (healthy)",
    "b2\tdb\tExited (1) 3 minutes ago",
    "c3\tnginx\tUp 2 hours",
    "d4\tcertbot\tRestarting (1) 5 seconds ago",
    "e5\tweb\tUp 2 hours (Paused)",
    "",
]) + "\n"


def test_every_service_the_apps_first():
    services = compose_services(PS, ["*"], "web")
    assert [s["service"] for s in services] == ["web", "certbot", "db", "nginx"]
    web, certbot, db, nginx = services
    assert web["ids"] == ["a1", "e5"] and web["states"] == ["running", "paused"] and web["running"] is True
    assert web["state"] == "paused,running"
    assert db["state"] == "exited" and db["running"] is False
    assert certbot["state"] == "restarting" and certbot["running"] is False  # crash-looping is not running
    assert nginx["running"] is True
    assert [s["service"] for s in compose_services(PS, [], "web")] == ["web", "certbot", "db", "nginx"]


def test_only_the_wanted_services_and_the_missing_ones_say_so():
    services = compose_services(PS, ["db", "web", "worker"], "web")
    assert [(s["service"], s["state"], s["ids"]) for s in services] == [
        ("web", "paused,running", ["a1", "e5"]), ("db", "exited", ["b2"]), ("worker", "missing", [])]


@pytest.mark.parametrize("text, state", [
    ("running", "running"), ("exited", "exited"), ("Up 5 seconds", "running"), ("Up 1 hour (unhealthy)", "running"),
    ("Up 3 minutes (Paused)", "paused"), ("Exited (137) 2 hours ago", "exited"), ("Created", "created"),
    ("Dead", "dead"), ("", "unknown"),
])
def test_container_state_from_status_or_state(text, state):
    assert cl.container_state(text) == state


def test_no_container_and_bad_input():
    assert compose_services("", ["*"], "web") == []
    with pytest.raises(AnsibleFilterError, match="expected docker ps output"):
        compose_services(None, ["*"], "web")


def lines(*pairs):
    return ["2026-12-01T10:%s.123456789Z %s" % (ts, text) for ts, text in pairs]


def service(name, log, running=True, state="running"):
    return {"service": name, "ids": ["x"], "states": [state], "state": state, "running": running, "lines": log}


DB_DOWN = [
    service("web", lines(("00:05", "GET /health 200"), ("01:02", "sqlalchemy.exc.OperationalError: could not connect to server"),
                         ("01:07", "ERROR connection refused"))),
    service("db", lines(("00:00", "LOG:  database system is ready to accept connections"),
                        ("01:00", "FATAL:  could not write to file \"pg_wal/xlogtemp.42\": No space left on device"),
                        ("01:01", "LOG:  database system is shut down")), running=False, state="exited"),
    service("nginx", lines(("01:03", "connect() failed (111: Connection refused) while connecting to upstream, [error]"))),
]


def test_the_database_that_died_first_is_the_cause():
    summary = compose_log_summary(DB_DOWN, None, 2)
    by = {s["service"]: s for s in summary["services"]}
    assert by["web"]["error_count"] == 2 and by["db"]["error_count"] == 1 and by["nginx"]["error_count"] == 1
    assert by["db"]["lines"] == DB_DOWN[1]["lines"][-2:] and by["db"]["scanned"] == 3
    assert by["db"]["first_error"].endswith("No space left on device")
    assert by["db"]["first_error_at"] == pytest.approx(1796119260.123456789)
    cause = summary["cause"]
    assert cause["service"] == "db" and cause["reason"] == "it is exited and its logs show errors", cause
    assert cause["first_error"].endswith("No space left on device")


def test_all_running_the_earliest_error_is_the_cause():
    running = [dict(s, running=True, state="running") for s in DB_DOWN]
    cause = compose_log_summary(running)["cause"]
    assert cause["service"] == "db" and cause["reason"] == "its first error came before those of web, nginx"


def test_the_app_that_died_before_the_proxys_502s():
    services = [
        service("nginx", lines(("05:00", "[error] upstream prematurely closed connection"),
                               ("05:01", "[error] connect() failed (111: Connection refused)"))),
        service("web", lines(("04:59", "Traceback (most recent call last):"), ("04:59", "MemoryError")),
                running=False, state="exited"),
        service("db", lines(("00:00", "LOG:  checkpoint complete"))),
    ]
    summary = compose_log_summary(services)
    assert summary["cause"]["service"] == "web"
    assert [s["error_count"] for s in summary["services"]] == [2, 2, 0]


def test_no_error_anywhere_names_no_service():
    services = [service("web", lines(("00:00", "GET / 200"))), service("db", [])]
    summary = compose_log_summary(services)
    assert summary["cause"] == {"service": None, "reason": "no service's logs show an error", "first_error": None,
                                "error_count": 0}
    assert summary["services"][1]["scanned"] == 0 and summary["services"][1]["lines"] == []


def test_only_one_service_with_errors_and_lines_without_timestamps():
    services = [service("web", ["boot", "Error: listen EADDRINUSE :::8000"]), service("db", ["ready"])]
    cause = compose_log_summary(services)["cause"]
    assert cause == {"service": "web", "reason": "only its logs show errors",
                     "first_error": "Error: listen EADDRINUSE :::8000", "error_count": 1}


def test_stdout_and_stderr_lines_are_merged_in_time_order():
    log = lines(("00:03", "c"), ("00:01", "a")) + lines(("00:02", "b"))
    summary = compose_log_summary([service("web", log)], None, 10)
    assert [line.split()[-1] for line in summary["services"][0]["lines"]] == ["a", "b", "c"]


def test_own_error_regex_and_bad_options():
    services = [service("web", lines(("00:00", "WARN disk 91%"), ("00:01", "ERROR x")))]
    assert compose_log_summary(services, "WARN")["services"][0]["error_count"] == 1
    with pytest.raises(AnsibleFilterError, match="error_regex is not a regular expression"):
        compose_log_summary(services, "(")
    with pytest.raises(AnsibleFilterError, match="must be numbers"):
        compose_log_summary(services, None, "all")


@pytest.mark.parametrize("line, epoch", [
    ("2026-12-01T10:00:00Z x", 1796119200.0),
    ("2026-12-01T10:00:00.5Z x", 1796119200.5),
    ("2026-12-01T11:00:00+01:00 x", 1796119200.0),
    ("no timestamp", None),
    ("", None),
])
def test_docker_timestamps(line, epoch):
    assert cl.line_epoch(line) == epoch


def test_a_service_stopped_without_errors_is_named_beside_the_cause():
    services = [service("web", lines(("00:01", "OperationalError: could not connect to server: Connection refused"))),
                service("db", lines(("00:00", "LOG:  received fast shutdown request")), running=False, state="exited")]
    cause = compose_log_summary(services)["cause"]
    assert cause["service"] == "web"
    assert cause["reason"] == "only its logs show errors; db is exited with no error in its logs"
