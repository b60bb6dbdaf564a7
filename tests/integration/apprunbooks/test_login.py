# SPDX-License-Identifier: GPL-3.0-or-later
"""playbooks/login_*.yml against the running lab (lab-systemd: the saasresto twin's Prisma "User" and "Session",
named in the lab inventory as they are in prod: quoted mixed-case identifiers)."""

from __future__ import annotations

import json

import pytest

from app_support import LAB_CONTAINER as CONTAINER, lab_marks
from app_support import lab_playbook as playbook, lab_psql as psql

EMAIL = "user1@lab.example"
# A test-only bcrypt hash (cost 4) of "lab-test-password".
NEW_HASH = "$2b$04$D1PnMauUxuU94QScxUWTxeUGxE2FhhgUvpk4OUQFN65rfo22VV3om"

pytestmark = lab_marks(CONTAINER)


@pytest.fixture
def lab_snapshot():
    """Keep the sessions and user1's hash; put back what a test deleted or changed."""
    psql('DROP TABLE IF EXISTS sre_test_sessions_bak; CREATE TABLE sre_test_sessions_bak AS SELECT * FROM "Session"')
    old_hash = psql(HASH_OF % EMAIL)
    yield old_hash
    psql('INSERT INTO "Session" SELECT * FROM sre_test_sessions_bak b WHERE NOT EXISTS '
         '(SELECT 1 FROM "Session" s WHERE s.id = b.id); DROP TABLE sre_test_sessions_bak;'
         'UPDATE "User" SET "passwordHash" = \'%s\' WHERE email = \'%s\'' % (old_hash, EMAIL))


HASH_OF = 'SELECT "passwordHash" FROM "User" WHERE email = \'%s\''
EXPIRED = 'SELECT count(*) FROM "Session" WHERE "expiresAt" <= now()'
TOTAL = 'SELECT count(*) FROM "Session"'


@pytest.fixture
def expired_sessions():
    """At least 100 expired sessions (the lab is shared with the drills, whose login drill deletes them)."""
    psql('INSERT INTO "Session" ("userId", "tokenHash", "createdAt", "expiresAt") SELECT 1 + g % 500, '
         "md5('test-expired' || g), now() - interval '3 days', now() - interval '1 day' FROM generate_series(1, 100) g")


def test_diagnose_finds_the_user(tmp_path, expired_sessions):
    rc, changed, out = playbook(tmp_path, "login_diagnose", {"login_email": EMAIL}, check=True)
    assert rc == 0 and changed == 0, out
    assert "User %s: found, id" % EMAIL in out and "expired_sessions" in out, out


def test_remediate_deletes_exactly_the_expired_sessions(tmp_path, expired_sessions, lab_snapshot):
    total, expired = int(psql(TOTAL)), int(psql(EXPIRED))
    assert expired > 0
    rc, changed, out = playbook(tmp_path, "login_remediate", {"login_email": EMAIL})
    assert rc == 0 and changed == 0 and "Not confirmed: would delete %d" % expired in out, out
    assert int(psql(TOTAL)) == total

    rc, changed, out = playbook(tmp_path, "login_remediate", {"login_email": EMAIL, "sre_confirm": "yes"})
    assert rc == 0 and changed == 1 and "Deleted %d expired sessions" % expired in out, out
    assert int(psql(EXPIRED)) == 0 and int(psql(TOTAL)) == total - expired

    rc, changed, out = playbook(tmp_path, "login_remediate", {"login_email": EMAIL, "sre_confirm": "yes"})
    assert rc == 0 and changed == 0 and "No expired sessions to delete" in out, out


def test_password_reset_from_a_vaulted_hash_never_prints_it(tmp_path, lab_snapshot):
    varfile = tmp_path / "secret.json"
    varfile.write_text(json.dumps({"login_new_password_hash": NEW_HASH}))
    base = {"login_email": EMAIL, "login_delete_expired_sessions": False}
    outputs = []
    rc, changed, out = playbook(tmp_path, "login_remediate", base, varfile=varfile)
    outputs.append(out)
    assert rc == 0 and changed == 0 and "Not confirmed: would reset" in out, out
    assert psql(HASH_OF % EMAIL) == lab_snapshot

    rc, changed, out = playbook(tmp_path, "login_remediate", dict(base, sre_confirm="yes"), varfile=varfile)
    outputs.append(out)
    assert rc == 0 and changed == 1 and "Reset the password of %s" % EMAIL in out, out
    assert psql(HASH_OF % EMAIL) == NEW_HASH
    assert psql('SELECT count(*) FROM "User" WHERE "passwordHash" = \'%s\'' % NEW_HASH) == "1"

    rc, changed, out = playbook(tmp_path, "login_remediate", dict(base, sre_confirm="yes"), varfile=varfile)
    outputs.append(out)
    assert rc == 0 and changed == 0 and "already has the vaulted hash" in out, out
    incidents = "".join(p.read_text() for p in (tmp_path / "incidents").rglob("*") if p.is_file())
    for text in outputs + [incidents]:
        assert NEW_HASH not in text and NEW_HASH[7:29] not in text


def test_a_hash_that_is_not_bcrypt_is_refused_unprinted(tmp_path, lab_snapshot):
    bad = "$2x$10$" + "A" * 53
    varfile = tmp_path / "secret.json"
    varfile.write_text(json.dumps({"login_new_password_hash": bad}))
    extra = {"login_email": EMAIL, "sre_confirm": "yes", "login_delete_expired_sessions": False}
    rc, dummy, out = playbook(tmp_path, "login_remediate", extra, varfile=varfile)
    assert rc != 0 and "is not a bcrypt hash" in out and bad not in out, out


def test_bad_identifier_is_refused_before_any_sql(tmp_path):
    rc, dummy, out = playbook(tmp_path, "login_diagnose", {"login_users_table": 'users"; DROP TABLE users; --'})
    assert rc != 0 and "must be a plain identifier" in out, out


def test_unreachable_database_is_a_finding_and_remediate_changes_nothing(tmp_path):
    before = psql(TOTAL)
    wrong = {"login_email": EMAIL, "sre_db_unix_socket": "", "sre_db_host": "127.0.0.1", "sre_db_port": 1}
    rc, changed, out = playbook(tmp_path, "login_diagnose", wrong, check=True)
    assert rc == 0 and changed == 0, out
    assert "db_unreachable" in out and "(refused)" in out and "Traceback" not in out, out
    rc, changed, out = playbook(tmp_path, "login_remediate", dict(wrong, sre_confirm="yes"))
    assert rc != 0 and changed == 0 and "did not answer (refused): nothing was changed" in out, out
    assert psql(TOTAL) == before
