# SPDX-License-Identifier: GPL-3.0-or-later
"""The incident callback's scrub by pattern (plugins/plugin_utils/_incident.py): secrets nobody declared are
masked by their shape in text (URL userinfo, key=value DSNs, bcrypt hashes, Authorization / Bearer, secret-named
keys), and secret-named keys are censored in data; plain words stay readable."""

from __future__ import annotations

import sys

import pytest

from conftest import ensure_collection_link

sys.path.insert(0, str(ensure_collection_link()))
from ansible_collections.sre.runbooks.plugins.plugin_utils import _incident as inc  # noqa: E402

BCRYPT = {
    "2a": "$2a$10$" + "N9qo8uLOickgx2ZMRZoMye" + "IjZAgcfl7p92ldGxad68LJZdL17lhWy",
    "2b": "$2b$12$" + "R9h/cIPz0gi.URNNX3kh2O" + "PST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
    "2y": "$2y$04$" + "abcdefghijklmnopqrstuv" + "ABCDEFGHIJKLMNOPQRSTUVWXYZ01234",
}
assert all(len(h) == 4 + 56 for h in BCRYPT.values())

# (text, expected): every secret part is masked, what says what it was stays
MASKED = [
    # URL userinfo
    ("postgresql://app:s3cr3t-Pw@db.internal:5432/app", "postgresql://app:***@db.internal:5432/app"),
    ("DATABASE_URL is postgres://app:s3cr3t-Pw@127.0.0.1/app?sslmode=require",
     "DATABASE_URL is postgres://app:***@127.0.0.1/app?sslmode=require"),
    ("redis://:only-a-password@cache:6379/0", "redis://:***@cache:6379/0"),
    ("amqp://guest:p@ss@word@rabbit/vhost", "amqp://guest:***@rabbit/vhost"),  # an unencoded @ in the password
    ("a https://bot:t0k3n-xyz@git.example/repo.git and mysql://root:r00t-pw@db/x",
     "a https://bot:***@git.example/repo.git and mysql://root:***@db/x"),
    ("mongodb+srv://u:pa%2Fss@cluster0.example.net/db", "mongodb+srv://u:***@cluster0.example.net/db"),
    # password= in key=value DSNs
    ("host=db port=5432 user=app password=s3cr3t-Pw dbname=app",
     "host=db port=5432 user=app password=*** dbname=app"),
    ("host=db password='two words here' dbname=app", "host=db password='***' dbname=app"),
    ("password = 'it\\'s' sslmode=require", "password = '***' sslmode=require"),
    ('dbname=app password="dq secret" host=db', 'dbname=app password="***" host=db'),
    ("passwd=hunter2-x user=bob", "passwd=*** user=bob"),
    ("libpq: host=db password='x y' dbname=app", "libpq: host=db password='***' dbname=app"),  # behind a plain key
    ("error: connection to server failed, dsn: user=app password=pw", "error: connection to server failed, dsn: ***"),
    ("postgresql:///app?host=/run/pg&password=s3cr3t-Pw&user=app",
     "postgresql:///app?host=/run/pg&password=***&user=app"),
    # bcrypt hashes
    ("hash " + BCRYPT["2a"] + " stored", "hash *** stored"),
    ("UPDATE users SET pw='%s'" % BCRYPT["2b"], "UPDATE users SET pw='***'"),
    ("new hash=" + BCRYPT["2y"], "new hash=***"),
    ("cut " + BCRYPT["2b"][:40], "cut ***"),
    # Authorization / Bearer
    ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln", "Authorization: Bearer ***"),
    ("curl -H 'Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==' https://api", "curl -H 'Authorization: Basic ***' https://api"),
    ('{"Authorization": "Token abcdef123456", "Accept": "application/json"}',
     '{"Authorization": "Token ***", "Accept": "application/json"}'),
    ("proxy-authorization: Digest username=bob, response=6629fae4", "proxy-authorization: Digest ***"),
    ("authorization=s3cr3t-raw", "authorization=***"),
    ("Authorization: Bearer abcdef123456 was refused", "Authorization: Bearer *** was refused"),
    ("401 for Bearer gho_16C7e42F292c6912E7710c838347Ae178B4a from api", "401 for Bearer *** from api"),
    # values of keys named like secrets
    ("api_key=abc123def&user=bob", "api_key=***&user=bob"),
    ('{"token": "tok-123456", "name": "web"}', '{"token": "***", "name": "web"}'),
    ("{'client_secret': 'cs-abcdef', 'n': 1}", "{'client_secret': '***', 'n': 1}"),
    ('{\\"password\\": \\"in-escaped-json\\"}', '{\\"password\\": \\"***\\"}'),
    ("export SESSION_SECRET=ss-abcdef", "export SESSION_SECRET=***"),
    ("DATABASE_URL=postgresql://app:s3cr3t-Pw@db/app", "DATABASE_URL=***"),
    ("sre_db_dsn: host=db password=x", "sre_db_dsn: ***"),
    ("login_password_hash: " + BCRYPT["2b"], "login_password_hash: ***"),
    ("PGPASSWORD=pg-pw-1234 pg_dump app", "PGPASSWORD=*** pg_dump app"),
    ("MYSQL_PWD=my-pw-1234 mysqldump", "MYSQL_PWD=*** mysqldump"),
    ("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG", "AWS_SECRET_ACCESS_KEY=***"),
    ("GITHUB_TOKEN: ghp_abcdef and more", "GITHUB_TOKEN: ***"),
    ("X-Api-Key: k-123456", "X-Api-Key: ***"),
    ("mysql --user root --password hunter2-x -h db", "mysql --user root --password *** -h db"),
    ("flyctl --access-token fo1_abcdef secrets list", "flyctl --access-token *** secrets list"),
    ("pg_dump --dbname=app --password=hunter2-x", "pg_dump --dbname=app --password=***"),
]


@pytest.mark.parametrize("text,expected", MASKED)
def test_secret_shapes_are_masked(text, expected):
    assert inc.scrub_patterns(text) == expected


# text that holds no secret: unchanged, however secret some of its words look
KEPT = [
    "systemd unit saasresto.service is stopped",
    "unit token-service is stopped",
    "token-service: active",
    "token-service.service: running",
    "password authentication failed for user \"app\"",
    "FATAL:  password authentication failed for user \"app\"",
    "Password: ",
    "Bearer token expired",
    "missing secrets: DATABASE_URL, SESSION_SECRET",
    "Secrets in /srv/app/.env: 3 names.",
    "keys: 3",
    "password_file: /etc/app/pw",
    "--password-file /etc/app/pw",
    "see https://example.com/a:b and bob@example.com",
    "https://user@example.com/x (no password)",
    "Root Cause: [to confirm] saturation: 99% used on db1",
    "monkey: banana",
    "connected with [censored]",
    "password: [censored]",
    "password=***",
    "postgresql://app:***@db/app",
    "2024-05-01T12:00:03Z",
    "$2b$ is the bcrypt prefix",
    "",
]


@pytest.mark.parametrize("text", KEPT)
def test_plain_text_is_kept(text):
    assert inc.scrub_patterns(text) == text


@pytest.mark.parametrize("text", [t for t, dummy in MASKED])
def test_masking_is_idempotent(text):
    once = inc.scrub_patterns(text)
    assert inc.scrub_patterns(once) == once


@pytest.mark.parametrize("name,secret", [
    ("DATABASE_URL", True), ("database_url", True), ("app_db_url", True), ("Authorization", True),
    ("Proxy-Authorization", True), ("x-api-key", True), ("passwd", True), ("pgpass_file", True),
    ("db_pass", True), ("passphrase", True), ("connection_string", True), ("api_key", True),
    ("token-service", True),  # in data a scalar under it is censored (as before); in prose it is a plain word
    ("sre_app_url", False), ("url", False), ("author", False), ("passive", False), ("compass", False),
    ("bypass_cache", False), ("keyboard", False), ("sre_db_name", False),
    # names that describe secrets without holding one (the secrets runbook's own facts, a column name)
    ("secrets_findings", False), ("secrets_missing", False), ("secrets_required", False), ("secrets_env_names", False),
    ("secrets_env_file", False), ("login_hash_column", False), ("secrets_values", True),
    ("login_new_password_hash", True), ("target_fly_api_token", True), ("sre_db_password", True),
])
def test_is_secret_name_extended(name, secret):
    assert inc.is_secret_name(name) is secret


@pytest.mark.parametrize("name,secret", [
    ("password", True), ("sre_db_password", True), ("PGPASSWORD", True), ("client_secret", True),
    ("vault_api_token", True), ("api_key", True), ("API-KEY", True), ("ssh_key", True), ("login_password_hash", True),
    ("sre_db_dsn", True), ("DATABASE_URL", True), ("--password", True), ("basic_auth", True),
    ("token-service", False), ("token.service.env", False), ("api_key_id", False), ("password_file", False),
    ("secrets", False), ("keys", False), ("monkey", False), ("systemd-ask-password-wall.service", False),
    ("saturation", False), ("Status", False),
])
def test_is_secret_text_key(name, secret):
    assert inc.is_secret_text_key(name) is secret


def test_scrubber_masks_patterns_in_every_string_and_censors_secret_keys():
    scrub = inc.Scrubber()  # knows no value: everything below is found by name or by shape
    data = {
        "msg": "pg_dump failed: postgresql://app:leak-1@db/app",
        "state": {"env": {"DATABASE_URL": "postgresql://app:leak-2@db/app", "PORT": "3000"},
                  "headers": {"Authorization": "Bearer leak-3-abcdefgh"},
                  "cmd": ["psql", "host=db password=leak-4"]},
        "users": [{"email": "a@example.com", "password_hash": BCRYPT["2b"]}, {"note": "hash " + BCRYPT["2y"]}],
        "x-api-key": "leak-5", "passwd": "leak-6",
        "service": {"token-service.service": {"state": "running"}, "name": "token-service"},
    }
    out = scrub.data(data)
    flat = repr(out)
    for leak in ("leak-1", "leak-2", "leak-3", "leak-4", "leak-5", "leak-6", BCRYPT["2b"], BCRYPT["2y"]):
        assert leak not in flat, leak
    assert out["msg"] == "pg_dump failed: postgresql://app:***@db/app"
    assert out["state"]["env"] == {"DATABASE_URL": inc.CENSORED, "PORT": "3000"}
    assert out["state"]["headers"] == {"Authorization": inc.CENSORED}
    assert out["state"]["cmd"] == ["psql", "host=db password=***"]
    assert out["users"][0] == {"email": "a@example.com", "password_hash": inc.CENSORED}
    assert out["service"] == {"token-service.service": {"state": "running"}, "name": "token-service"}


def test_known_values_first_then_patterns():
    scrub = inc.Scrubber()
    scrub.add("known-secret-value")
    assert scrub.text("dsn postgresql://app:known-secret-value@db/app and known-secret-value") == \
        "dsn postgresql://app:***@db/app and [censored]"


def test_markdown_of_a_scrubbed_record_has_no_pattern_secret():
    scrub = inc.Scrubber()
    record = scrub.data({
        "id": "INC-1", "runbook": "backup", "phase": "remediate", "severity": "P3", "hosts": ["db1"],
        "operator": {"user": "alice"}, "counts": {}, "runs": [],
        "findings": [{"run": 1, "host": "db1", "severity": "warning", "code": "dump", "message":
                      "pg_dump -d postgresql://app:md-leak-1@db/app failed"}],
        "timeline": [{"time": "2024-05-01T12:00:01Z", "run": 1, "kind": "failure", "host": "db1", "task": "Dump",
                      "message": "Authorization: Bearer md-leak-2-abcdef | api_key=md-leak-3"}],
        "state": {"db1": {"before": {"cmdline": "password='md leak 4'"}, "after": {"hash": BCRYPT["2a"]}}},
    })
    record["communication"] = scrub.data(inc.communication(record))
    text = scrub.text(inc.render_markdown(record))
    for leak in ("md-leak-1", "md-leak-2", "md-leak-3", "md leak 4", BCRYPT["2a"]):
        assert leak not in text
    assert "postgresql://app:***@db/app" in text and "## Timeline (UTC)" in text
    assert scrub.text(inc.chat_text(record)).startswith("[P3] INC-1 backup/remediate on db1")
