# SPDX-License-Identifier: GPL-3.0-or-later
"""sre.runbooks.backup_schedule and the backup runbook on an app's own backup (Ferreteria, runbook 003): a real
log in Ferreteria's shape, a real executable script and a cron.d-style file in a temp dir. Each finding fires
when it should and not otherwise; backup_diagnose prints them in --check with changed=0; backup_remediate runs
the app's own script only when confirmed, then verifies its newest output."""

from __future__ import annotations

import gzip
import os
import time
from pathlib import Path

import pytest

from conftest import run_module
from playbook_runner import run_playbook

SECRET = "Sup3r-s3cret-pw"
NIGHTLY = "15 3 * * *"


def stamp(epoch):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def ok_run(epoch, backups):
    name = "%s/ferreteria_db_%s.sql.gz" % (backups, time.strftime("%Y%m%d_%H%M%S", time.gmtime(epoch)))
    return ["%s backup start %s" % (stamp(epoch), name), "%s backup ok %s 48213 bytes" % (stamp(epoch + 4), name)]


def failed_run(epoch, backups):
    name = "%s/ferreteria_db_%s.sql.gz" % (backups, time.strftime("%Y%m%d_%H%M%S", time.gmtime(epoch)))
    return ["%s backup start %s" % (stamp(epoch), name),
            'pg_dump: error: connection to server at "db" (172.18.0.2), port 5432 failed: FATAL:  password '
            'authentication failed for user "ferreteria_user"',
            "pg_dump: error: could not connect with postgresql://ferreteria_user:%s@db:5432/ferreteria_db" % SECRET,
            "%s backup FAILED" % stamp(epoch + 1)]


@pytest.fixture
def app(tmp_path):
    """Ferreteria's backup as its runbook describes it, under tmp_path: script, log, cron.d file, backups."""
    root = tmp_path / "ferreteria"
    (root / "infra" / "backups").mkdir(parents=True)
    backups = tmp_path / "backups" / "daily"
    backups.mkdir(parents=True)
    log = tmp_path / "ferreteria_backup.log"
    script = root / "infra" / "backups" / "backup_db.sh"
    script.write_text(  # a real script: a plain-SQL gzip dump into backups/, logged in the app's shape
        "#!/bin/bash\nset -u\nnow=$(date -u +%%Y%%m%%d_%%H%%M%%S)\nout=%(b)s/ferreteria_db_${now}.sql.gz\n"
        "echo \"$(date -u +%%Y-%%m-%%dT%%H:%%M:%%SZ) backup start $out\" >> %(log)s\n"
        "if [ -e %(root)s/FAIL ]; then echo 'pg_dump: error: connection to server at \"db\" failed' >> %(log)s;\n"
        "  echo \"$(date -u +%%Y-%%m-%%dT%%H:%%M:%%SZ) backup FAILED\" >> %(log)s; exit 1; fi\n"
        "printf '%%s\\n' '--' '-- PostgreSQL database dump' '--' 'SET statement_timeout = 0;' "
        "'CREATE TABLE public.tenant (id integer);' 'COPY public.tenant (id) FROM stdin;' '1' '\\.' '' "
        "'-- PostgreSQL database dump complete' '' | gzip > \"$out\"\n"
        "echo \"$(date -u +%%Y-%%m-%%dT%%H:%%M:%%SZ) backup ok $out $(stat -c %%s \"$out\") bytes\" >> %(log)s\n"
        % {"b": backups, "log": log, "root": root})
    script.chmod(0o755)
    crond = tmp_path / "cron.d"
    crond.mkdir()
    cron_file = crond / "ferreteria-backup"
    cron_file.write_text("SHELL=/bin/bash\nMAILTO=root\n%s root %s >> /dev/null 2>&1\n" % (NIGHTLY, script))
    return {"root": root, "script": script, "log": log, "crond": crond, "cron_file": cron_file, "backups": backups,
            "tmp": tmp_path}


def check(app, **extra):
    args = {"log_file": str(app["log"]), "script": str(app["script"]),
            "schedule_files": [str(app["crond"] / "*"), str(app["tmp"] / "root-crontab")]}
    args.update(extra)
    result = run_module("backup_schedule", args, check_mode=True)
    assert result["rc"] == 0 and "Traceback" not in result["raw"], result["raw"]
    assert result["changed"] is False
    return result


def codes(result):
    return sorted(f["code"] for f in result["findings"])


def test_a_good_nightly_backup_has_no_finding(app):
    now = time.time()
    app["log"].write_text("\n".join(ok_run(now - 86400 - 30, app["backups"]) + ok_run(now - 3600, app["backups"])) + "\n")
    result = check(app)
    assert codes(result) == [] and result["status"] == "ok", result["findings"]
    assert result["last_run"]["status"] == "ok" and result["last_run"]["bytes"] == 48213
    assert result["last_run"]["file"].startswith(str(app["backups"]))
    assert result["schedule"]["expression"] == NIGHTLY and result["schedule"]["interval_s"] == 86400
    assert result["schedule"]["source"] == "cron"
    assert result["schedule"]["entries"][0]["file"] == str(app["cron_file"])
    assert result["schedule"]["entries"][0]["user"] == "root" and result["schedule"]["entries"][0]["match"] == "path"
    assert result["script"] == {"path": str(app["script"]), "exists": True, "executable": True}
    assert 3500 < result["log"]["silence_s"] < 3800 and result["log"]["timestamps"] is True


def test_the_last_run_failed_with_the_error_line_and_no_password(app):
    now = time.time()
    app["log"].write_text("\n".join(ok_run(now - 86400 - 3600, app["backups"]) + failed_run(now - 3600, app["backups"])) + "\n")
    result = check(app)
    assert codes(result) == ["last_run_failed"], result["findings"]
    message = result["findings"][0]["message"]
    assert result["findings"][0]["severity"] == "critical" and result["status"] == "critical"
    assert 'pg_dump: error: connection to server at "db"' in message and "password authentication failed" in message
    assert stamp(now - 3599) in message
    assert result["last_run"]["status"] == "failed" and len(result["last_run"]["errors"]) == 2
    assert SECRET not in str(result) and "ferreteria_user:********@db" in str(result["last_run"]["errors"])
    assert SECRET not in str(result["log"]["tail"]) and len(result["log"]["tail"]) == 6


def test_a_failed_run_without_output_reports_its_failed_line(app):
    now = time.time()
    app["log"].write_text("%s backup start x\n%s backup FAILED\n" % (stamp(now - 60), stamp(now - 59)))
    result = check(app)
    assert codes(result) == ["last_run_failed"]
    assert result["last_run"]["error"].endswith("backup FAILED")


def test_a_later_good_run_clears_an_earlier_failure(app):
    now = time.time()
    app["log"].write_text("\n".join(failed_run(now - 90000, app["backups"]) + ok_run(now - 3600, app["backups"])) + "\n")
    assert codes(check(app)) == []


def test_a_missed_nightly_run(app):
    now = time.time()
    app["log"].write_text("\n".join(ok_run(now - 2 * 86400, app["backups"])) + "\n")  # nothing for two days
    result = check(app)
    assert codes(result) == ["run_missing"], result["findings"]
    assert "'15 3 * * *' (every 1d) + 2h slack" in result["findings"][0]["message"]
    assert codes(check(app, slack="1d1h")) == []  # within the schedule's day plus a day of slack


def test_silence_within_the_interval_plus_slack_is_not_missing(app):
    now = time.time()
    app["log"].write_text("\n".join(ok_run(now - 86400 - 3600, app["backups"])) + "\n")  # 25 h: within 24 h + 2 h
    assert codes(check(app)) == []
    assert codes(check(app, slack="30m")) == ["run_missing"]


def test_a_log_without_timestamps_is_judged_by_its_mtime(app):
    app["log"].write_text("backup start\nbackup ok /x.sql.gz 10 bytes\n")
    old = time.time() - 3 * 86400
    os.utime(app["log"], (old, old))
    result = check(app)
    assert codes(result) == ["run_missing"] and "modification time" in result["findings"][0]["message"]
    assert result["log"]["timestamps"] is False


def test_an_explicit_schedule_sets_the_interval_and_needs_no_cron_line(app):
    now = time.time()
    app["cron_file"].unlink()
    app["log"].write_text("\n".join(ok_run(now - 4 * 3600, app["backups"])) + "\n")
    assert codes(check(app, schedule="@daily")) == []
    result = check(app, schedule="@hourly")
    assert codes(result) == ["run_missing"] and result["schedule"]["source"] == "option"
    bad = run_module("backup_schedule", {"log_file": str(app["log"]), "schedule": "@reboot"}, check_mode=True)
    assert bad["rc"] != 0 and bad["msg"].startswith("Checking the options: schedule '@reboot'") and "Traceback" not in bad["raw"]


def test_the_script_is_not_scheduled(app):
    now = time.time()
    app["log"].write_text("\n".join(ok_run(now - 3600, app["backups"])) + "\n")
    app["cron_file"].write_text("# 15 3 * * * root %s\n0 4 * * * root /usr/bin/other.sh\n" % app["script"])
    result = check(app)
    assert codes(result) == ["schedule_unknown", "script_not_scheduled"], result["findings"]
    assert "commented out at %s line 1" % app["cron_file"] in result["findings"][0]["message"]


def test_root_crontab_style_file_schedules_it_by_name(app):
    now = time.time()
    app["log"].write_text("\n".join(ok_run(now - 3600, app["backups"])) + "\n")
    app["cron_file"].unlink()
    (app["tmp"] / "root-crontab").write_text("15 3 * * * cd %s && ./infra/backups/backup_db.sh\n" % app["root"])
    result = check(app)
    assert codes(result) == [] and result["schedule"]["entries"][0]["match"] == "name"
    assert result["schedule"]["entries"][0]["user"] is None


def test_a_cron_d_file_cron_never_reads(app):
    now = time.time()
    app["log"].write_text("\n".join(ok_run(now - 3600, app["backups"])) + "\n")
    app["cron_file"].rename(app["crond"] / "ferreteria-backup.cron")
    result = check(app)
    assert "cron_file_ignored" in codes(result) and "script_not_scheduled" not in codes(result), result["findings"]


def test_a_system_cron_line_without_user(app):
    now = time.time()
    app["log"].write_text("\n".join(ok_run(now - 3600, app["backups"])) + "\n")
    app["cron_file"].write_text("%s %s\n" % (NIGHTLY, app["script"]))
    assert "cron_line_invalid" in codes(check(app))


def test_an_unsupported_cron_schedule_is_a_warning(app):
    now = time.time()
    app["log"].write_text("\n".join(ok_run(now - 3600, app["backups"])) + "\n")
    app["cron_file"].write_text("@reboot root %s\n" % app["script"])
    result = check(app)
    assert codes(result) == ["schedule_unknown", "schedule_unsupported"], result["findings"]


def test_the_script_is_not_executable_or_missing(app):
    now = time.time()
    app["log"].write_text("\n".join(ok_run(now - 3600, app["backups"])) + "\n")
    app["script"].chmod(0o644)
    result = check(app)
    assert codes(result) == ["script_not_executable"] and result["findings"][0]["severity"] == "critical"
    app["cron_file"].write_text("%s root /bin/bash %s\n" % (NIGHTLY, app["script"]))
    result = check(app)  # run through bash: the mode does not matter
    assert codes(result) == ["script_not_executable"] and result["findings"][0]["severity"] == "info"
    app["script"].unlink()
    result = check(app)
    assert codes(result) == ["script_missing"] and result["script"]["exists"] is False


def test_the_log_is_missing(app):
    result = check(app)
    assert codes(result) == ["log_missing"] and result["log"]["exists"] is False


def test_a_run_that_never_ended(app):
    now = time.time()
    app["log"].write_text("%s backup start x\npg_dump: error: could not write: No space left on device\n" % stamp(now - 3 * 3600))
    result = check(app)
    assert codes(result) == ["run_unfinished"] and "No space left" in result["findings"][0]["message"]
    app["log"].write_text("%s backup start x\n" % stamp(now - 60))  # still running: nothing to say yet
    assert codes(check(app)) == []


def test_nothing_configured_reads_nothing(app):
    result = run_module("backup_schedule", {}, check_mode=True)
    assert result["rc"] == 0 and result["findings"] == [] and result["status"] == "ok", result["raw"]


def test_bad_options_give_one_message(app):
    for args, text in (({"slack": "soon"}, "slack: invalid duration"),
                       ({"log_ok_regex": "("}, "log_ok_regex is not a regular expression")):
        result = run_module("backup_schedule", dict(args, log_file=str(app["log"])), check_mode=True)
        assert result["rc"] != 0 and text in result["msg"] and "Traceback" not in result["raw"], result["raw"]


# ------------------------------------------------------------------ the runbook, through ansible-playbook
def runbook(app, name, extra=None, check=False):
    variables = {
        "sre_db_name": "ferreteria_db", "sre_db_host": "127.0.0.1", "sre_db_user": "ferreteria_user",
        "sre_db_password": SECRET, "sre_backup_dir": str(app["backups"]), "sre_backup_pattern": "*.sql.gz",
        "sre_backup_script": str(app["script"]), "sre_backup_log": str(app["log"]),
        "backup_schedule_files": [str(app["crond"] / "*")], "backup_script_chdir": str(app["root"]),
        "backup_min_size": "100",  # the fake dump is small
    }
    variables.update(extra or {})
    r = run_playbook(name, tmp_path=app["tmp"], target="localhost", extra_vars=variables, check=check, secrets=[SECRET])
    return r.rc, r.changed(), r.output.replace("''", "'")  # the YAML callback doubles quotes in quoted strings


def test_diagnose_prints_the_findings_in_check_mode(app):
    now = time.time()
    app["log"].write_text("\n".join(ok_run(now - 3 * 86400, app["backups"]) + failed_run(now - 2 * 86400, app["backups"])) + "\n")
    app["script"].chmod(0o644)
    rc, changed, out = runbook(app, "backup_diagnose", check=True)
    assert rc == 0 and changed == 0, out
    assert "last_run_failed" in out and 'pg_dump: error: connection to server at' in out, out
    assert "run_missing" in out and "script_not_executable" in out, out
    assert SECRET not in out

    app["script"].chmod(0o755)
    app["log"].write_text("\n".join(ok_run(now - 3600, app["backups"])) + "\n")
    rc, changed, out = runbook(app, "backup_diagnose", check=True)
    assert rc == 0 and changed == 0, out
    assert "App's backup: last run ok" in out and "no finding" in out, out


def test_remediate_runs_the_apps_own_script_only_when_confirmed_then_verifies_its_output(app):
    now = time.time()
    app["log"].write_text("\n".join(failed_run(now - 2 * 86400, app["backups"])) + "\n")
    rc, changed, out = runbook(app, "backup_remediate", {"backup_run_script": True})
    assert rc == 0 and changed == 0, out
    assert "run the app's own backup script %s" % app["script"] in out and "Not confirmed" in out, out
    assert list(app["backups"].iterdir()) == []

    rc, changed, out = runbook(app, "backup_remediate", {"backup_run_script": True, "sre_confirm": "yes"}, check=True)
    assert rc == 0 and changed == 0 and list(app["backups"].iterdir()) == [], out  # --check: nothing runs

    rc, changed, out = runbook(app, "backup_remediate", {"backup_run_script": True, "sre_confirm": "yes"})
    assert rc == 0 and changed > 0, out
    made = list(app["backups"].glob("ferreteria_db_*.sql.gz"))
    assert len(made) == 1 and gzip.decompress(made[0].read_bytes()).startswith(b"--"), made
    assert "backup ok" in app["log"].read_text().splitlines()[-1]
    assert "verified" in out and made[0].name in out, out
    assert not list(Path(app["backups"]).glob("*.sha256"))  # the app's files stay the app's

    rc, changed, out = runbook(app, "backup_remediate", {"backup_run_script": True, "sre_confirm": "yes"})
    assert rc == 0 and changed == 0, out  # fresh and valid: nothing to run


def test_remediate_reports_the_scripts_failure_from_its_log(app):
    (app["root"] / "FAIL").write_text("")
    rc, changed, out = runbook(app, "backup_remediate", {"backup_run_script": True, "sre_confirm": "yes"})
    assert rc != 0, out
    assert "The app's backup script %s exited with rc 1" % app["script"] in out, out
    assert "its log %s says: pg_dump: error: connection to server at" % app["log"] in out, out
    assert list(app["backups"].glob("*.sql.gz")) == []
