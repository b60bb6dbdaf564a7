# SPDX-License-Identifier: GPL-3.0-or-later
"""playbooks/backup_*.yml on localhost against the throwaway cluster: take, verify, place, rotate."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def backup_env(pg_cluster, source_db, tmp_path, collections_path):
    backups = tmp_path / "backups"
    backups.mkdir()

    def run(name, extra=None, check=False):
        variables = {
            "sre_db_name": source_db, "sre_db_host": pg_cluster.host, "sre_db_port": pg_cluster.port,
            "sre_db_user": pg_cluster.user, "sre_db_password": pg_cluster.password, "sre_backup_dir": str(backups),
            "sre_backup_pattern": "*.dump", "backup_pg_dump": str(pg_cluster.bindir / "pg_dump"),
            "ansible_python_interpreter": sys.executable,
        }
        variables.update(extra or {})
        varfile = tmp_path / "vars.json"
        varfile.write_text(json.dumps(variables))
        cmd = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local", "-e", "target=localhost",
               "-e", "@%s" % varfile, "playbooks/%s.yml" % name] + (["--check"] if check else [])
        env = dict(os.environ, ANSIBLE_NOCOLOR="1", SRE_INCIDENT_DIR=str(tmp_path / "incidents"))
        proc = subprocess.run(cmd, cwd=str(REPO), env=env, capture_output=True, text=True, timeout=300, check=False)
        out = proc.stdout + proc.stderr
        assert pg_cluster.password not in out
        recap = re.search(r"localhost\s+: ok=(\d+)\s+changed=(\d+)", out)
        return proc.returncode, int(recap.group(2)) if recap else None, out

    return backups, run


def test_remediate_takes_verifies_places_and_rotates(backup_env, corpus):
    backups, run = backup_env
    now = time.time()
    for index in range(3):  # three old backups (valid dumps), oldest first
        old = backups / ("corpus_src-2024010%dT000000Z.dump" % (index + 1))
        shutil.copy(corpus["custom.dump"][0], old)
        os.utime(old, (now - (10 - index) * 86400, now - (10 - index) * 86400))

    rc, changed, out = run("backup_diagnose", check=True)
    assert rc == 0 and changed == 0, out
    assert "more than max_age" in out and "Valid: False" in out

    rc, changed, out = run("backup_remediate", {"backup_keep_last": 2})
    assert rc == 0 and changed > 0, out
    dumps = sorted(p.name for p in backups.glob("*.dump"))
    assert len(dumps) == 2 and not list(backups.glob(".*partial")), dumps
    new = max(backups.glob("*.dump"), key=lambda p: p.stat().st_mtime)
    digest, name = (backups / (new.name + ".sha256")).read_text().split()
    assert name == new.name and digest == hashlib.sha256(new.read_bytes()).hexdigest()
    assert oct(new.stat().st_mode & 0o777) == "0o640"

    rc, changed, out = run("backup_remediate", {"backup_keep_last": 2})
    assert rc == 0 and changed == 0, out  # fresh and valid: nothing to do

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
    rc, changed, out = run("backup_remediate", {"backup_pg_dump": str(fake)})
    assert rc != 0 and "No backup was renamed into place" in out, out
    assert list(backups.iterdir()) == []
