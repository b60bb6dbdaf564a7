# SPDX-License-Identifier: GPL-3.0-or-later
"""playbooks/backup_*.yml on localhost against the throwaway cluster: take, verify, place, rotate."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from urllib.parse import quote
from pathlib import Path

import pytest

from playbook_runner import run_playbook


@pytest.fixture
def backup_env(pg_cluster, source_db, tmp_path, collections_path):
    backups = tmp_path / "backups"
    backups.mkdir()

    def run(name, extra=None, check=False):
        variables = {
            "sre_db_name": source_db, "sre_db_host": pg_cluster.host, "sre_db_port": pg_cluster.port,
            "sre_db_user": pg_cluster.user, "sre_db_password": pg_cluster.password, "sre_backup_dir": str(backups),
            "sre_backup_pattern": "*.dump", "backup_pg_dump": str(pg_cluster.bindir / "pg_dump"),
            # the node exporter's textfile directory of this test (missing unless a test creates it)
            "backup_textfile_dir": str(tmp_path / "textfile"), "sre_app_name": "corpus-app",
        }
        variables.update(extra or {})
        r = run_playbook(name, tmp_path=tmp_path, target="localhost", extra_vars=variables, check=check,
                         secrets=[pg_cluster.password])
        assert pg_cluster.password not in r.output
        return r.rc, r.changed(), r.output

    return backups, run


def test_remediate_takes_verifies_places_and_rotates(backup_env, corpus):
    backups, run = backup_env
    backups.chmod(0o755)  # the app's own directory: the database's OS user reads the dumps there for a restore
    now = time.time()
    for index in range(3):  # three old backups (valid dumps), oldest first
        old = backups / ("corpus_src-2024010%dT000000Z.dump" % (index + 1))
        shutil.copy(corpus["custom.dump"][0], old)
        os.utime(old, (now - (10 - index) * 86400, now - (10 - index) * 86400))

    rc, changed, out = run("backup_diagnose", check=True)
    assert rc == 0 and changed == 0, out
    assert "more than max_age" in out and "Valid: False" in out

    before = sorted(p.name for p in backups.iterdir())
    rc, changed, out = run("backup_remediate", {"backup_keep_last": 2})  # not confirmed: the plan only
    assert rc == 0 and changed == 0, out
    assert "Plan (backup remediate):" in out and "take a backup of corpus_src" in out, out
    assert "delete 2 old backup(s)" in out and "Not confirmed" in out, out
    assert sorted(p.name for p in backups.iterdir()) == before

    textfile = backups.parent / "textfile"  # the fixture's backup_textfile_dir
    textfile.mkdir()
    rc, changed, out = run("backup_remediate", {"backup_keep_last": 2, "sre_confirm": "yes"})
    assert rc == 0 and changed > 0, out
    dumps = sorted(p.name for p in backups.glob("*.dump"))
    assert len(dumps) == 2 and not list(backups.glob(".*partial")), dumps
    new = max(backups.glob("*.dump"), key=lambda p: p.stat().st_mtime)
    digest, name = (backups / (new.name + ".sha256")).read_text().split()
    assert name == new.name and digest == hashlib.sha256(new.read_bytes()).hexdigest()
    assert oct(new.stat().st_mode & 0o777) == "0o640"
    assert oct(backups.stat().st_mode & 0o777) == "0o755"  # an existing directory keeps its mode
    # the verified backup's time, for the node exporter's textfile collector (what the backup alerts read)
    assert sorted(p.name for p in textfile.iterdir()) == ["sre_backup_corpus-app.prom"]
    metric = (textfile / "sre_backup_corpus-app.prom").read_text()
    assert ('sre_backup_last_success_timestamp_seconds{app="corpus-app"} %d\n' % int(new.stat().st_mtime)) in metric
    promtool = shutil.which("promtool")
    assert promtool, "promtool (Debian prometheus) is installed by scripts/bootstrap.sh"
    lint = subprocess.run([promtool, "check", "metrics"], input=metric, capture_output=True, text=True, check=False)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    published = (textfile / "sre_backup_corpus-app.prom").stat().st_mtime

    rc, changed, out = run("backup_remediate", {"backup_keep_last": 2, "sre_confirm": "yes"})
    assert rc == 0 and changed == 0, out  # fresh and valid: nothing to do
    assert (textfile / "sre_backup_corpus-app.prom").stat().st_mtime == published

    rc, changed, out = run("backup_diagnose")
    assert rc == 0 and changed == 0 and "Valid: True" in out, out


def test_remediate_refuses_a_dump_that_does_not_verify(backup_env, tmp_path):
    backups, run = backup_env
    fake = tmp_path / "pg_dump_cut"
    real = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_dump"))[-1]
    fake.write_text(  # writes half an archive, like a pg_dump killed mid-way whose caller did not notice
        "#!/bin/bash\nout=''\nargs=()\n"
        "while [ $# -gt 0 ]; do if [ \"$1\" = -f ]; then out=$2; shift 2; else args+=(\"$1\"); shift; fi; done\n"
        "%s \"${args[@]}\" | head -c 20000 > \"$out\"\n" % real)
    fake.chmod(0o755)
    rc, changed, out = run("backup_remediate", {"backup_pg_dump": str(fake), "sre_confirm": "yes"})
    assert rc != 0 and "No backup was renamed into place" in out, out
    assert list(backups.iterdir()) == []


def test_remediate_from_a_dsn_gives_the_password_through_a_passfile(backup_env, pg_cluster, source_db, tmp_path):
    """Only a DATABASE_URL (percent-encoded user and password): pg_dump gets the password from a private passfile
    (never argv, never PGPASSWORD), the passfile is gone afterwards."""
    backups, run = backup_env
    spy = tmp_path / "pg_dump_spy"
    real = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_dump"))[-1]
    spy.write_text(  # records its argv, environment and passfile mode, then runs the real pg_dump
        "#!/bin/bash\nprintf '%%s\\n' \"$@\" > %(d)s/argv\nenv > %(d)s/env\n"
        "stat -L -c %%a \"$PGPASSFILE\" > %(d)s/mode\nexec %(real)s \"$@\"\n" % {"d": tmp_path, "real": real})
    spy.chmod(0o755)
    dsn = "postgresql://%s:%s@%s:%d/%s" % (pg_cluster.user, quote(pg_cluster.password, safe=""), pg_cluster.host,
                                           pg_cluster.port, source_db)
    rc, changed, out = run("backup_remediate", {"sre_db_dsn": dsn, "sre_db_host": "", "sre_db_port": 5432,
                                                "sre_db_user": "", "sre_db_password": "", "sre_db_name": "",
                                                "backup_pg_dump": str(spy), "sre_confirm": "yes"})
    assert rc == 0 and changed > 0, out
    assert len(list(backups.glob("%s-*.dump" % source_db))) == 1, list(backups.iterdir())
    argv, env = (tmp_path / "argv").read_text(), (tmp_path / "env").read_text()
    assert pg_cluster.password not in argv and dsn not in argv and pg_cluster.password not in env
    assert "PGPASSWORD" not in env and "PGDATABASE=%s" % source_db in env
    assert (tmp_path / "mode").read_text().strip() == "600"
    passfile = [line.split("=", 1)[1] for line in env.splitlines() if line.startswith("PGPASSFILE=")][0]
    assert not Path(passfile).exists()
