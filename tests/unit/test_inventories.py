# SPDX-License-Identifier: GPL-3.0-or-later
"""inventories/{prod,staging,lab} describe the apps by name (issue 12): one group per app under the environment
group, holding the app's variables and its sre_target_kind; kind groups (systemd, pm2, compose, fly) made of
exactly the app groups of that kind, so two apps of one kind are just two app groups; no plain-text secret in any
variable file; and the values the source runbooks name are the ones prod and staging carry."""

from __future__ import annotations

import functools
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
INVENTORIES = REPO / "inventories"
ANSIBLE_INVENTORY = Path(sys.executable).parent / "ansible-inventory"
ENVS = ["prod", "staging", "lab"]
KINDS = {"systemd", "pm2", "compose", "fly"}

# what every app needs, whatever its kind, and what each kind needs on top (docs/development.md)
COMMON = {"sre_target_kind", "sre_app_name", "sre_app_health_url", "sre_proxy_kind"}
NEEDED = {
    "systemd": {"sre_app_port", "sre_app_dir", "sre_db_port", "sre_db_user", "sre_db_password", "sre_db_name",
                "sre_db_unix_socket", "sre_db_admin_user", "sre_db_service"},
    "pm2": {"sre_app_port", "sre_app_dir", "sre_pm2_ecosystem", "sre_db_dsn", "sre_db_service"},
    "compose": {"sre_compose_project_dir", "sre_compose_file", "sre_compose_project", "sre_db_service",
                "sre_db_user", "sre_db_name", "sre_backup_dir", "sre_backup_pattern"},
    "fly": {"sre_fly_app", "sre_flyctl", "sre_db_dsn", "sre_db_service"},
}
APPS = {
    "prod": {"saasresto": "systemd", "sme_booking": "systemd", "cookcam": "pm2", "ferreteria": "compose",
             "hotdash": "fly"},
    "staging": {"saasresto": "systemd", "sme_booking": "systemd", "cookcam": "pm2", "ferreteria": "compose",
                "hotdash": "fly"},
    "lab": {"saasresto": "systemd", "sme_booking": "systemd", "cookcam": "pm2", "ferreteria": "compose",
            "hotdash": "fly"},
}
SECRET_KEY = re.compile(r"password|dsn|token|hash|secret|database_url", re.I)
# names of columns/tables/commands that merely contain such a word (login_hash_column: '"passwordHash"')
NOT_A_SECRET = re.compile(r"_(column|table|cmd|file)$")
VAULT_REF = re.compile(r"^\{\{\s*vault_[A-Za-z0-9_]+\s*\}\}$")


@functools.lru_cache(maxsize=None)
def inventory(env):
    argv = [str(ANSIBLE_INVENTORY), "-i", str(INVENTORIES / env), "--list"]
    if env == "lab":
        argv += ["--vault-id", f"lab@{INVENTORIES / 'lab' / '.vault-pass'}"]
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def hosts_of(inv, group):
    """Every host of a group, through its children."""
    entry = inv.get(group, {})
    found = set(entry.get("hosts", []))
    for child in entry.get("children", []):
        found |= hosts_of(inv, child)
    return found


def apps_of(inv, env):
    return {app: hosts_of(inv, app) for app in inv[env].get("children", [])}


def kind_of(inv, hosts):
    kinds = {inv["_meta"]["hostvars"][h].get("sre_target_kind") for h in hosts}
    assert len(kinds) == 1, kinds
    return kinds.pop()


def hostvars(env, app):
    inv = inventory(env)
    hosts = sorted(hosts_of(inv, app))
    assert hosts, (env, app)
    return inv["_meta"]["hostvars"][hosts[0]]


# ---- the layout ------------------------------------------------------------------------------------

@pytest.mark.parametrize("env", ENVS)
def test_one_group_per_app_under_the_environment(env):
    inv = inventory(env)
    apps = apps_of(inv, env)
    assert set(apps) == set(APPS[env])
    for app, hosts in apps.items():
        assert hosts, app
        assert kind_of(inv, hosts) == APPS[env][app], app
    every = set(inv["_meta"]["hostvars"]) | hosts_of(inv, "all")
    assert hosts_of(inv, env) == every, "the environment group selects every host"
    # each host belongs to one app
    seen = [h for hosts in apps.values() for h in hosts]
    assert len(seen) == len(set(seen))


@pytest.mark.parametrize("env", ENVS)
def test_every_app_has_its_kind_and_the_shared_variables_it_needs(env):
    inv = inventory(env)
    for app, hosts in apps_of(inv, env).items():
        for host in hosts:
            hv = inv["_meta"]["hostvars"][host]
            assert hv.get("sre_target_kind") in KINDS, (app, host)
            missing = (COMMON | NEEDED[hv["sre_target_kind"]]) - set(hv)
            assert not missing, (env, app, host, sorted(missing))
            assert hv["sre_environment"] == env


@pytest.mark.parametrize("env", ENVS)
def test_kind_groups_are_exactly_the_hosts_of_that_kind(env):
    inv = inventory(env)
    apps = apps_of(inv, env)
    for kind in KINDS:
        of_kind = {app for app, hosts in apps.items() if kind_of(inv, hosts) == kind}
        assert of_kind, kind
        assert hosts_of(inv, kind) == set().union(*(apps[a] for a in of_kind)), kind
        # a kind group holds no variables: they are the apps'
        assert not list((INVENTORIES / env / "group_vars").glob(f"{kind}*")), kind


@pytest.mark.parametrize("env", ENVS)
def test_kind_groups_are_derived_not_hand_kept(env):
    """hosts.yml names no kind group: kinds.yml (the constructed plugin) derives them from sre_target_kind."""
    doc = yaml.safe_load((INVENTORIES / env / "hosts.yml").read_text())
    assert not set(doc["all"].get("children", {})) & set(KINDS)
    kinds = yaml.safe_load((INVENTORIES / env / "kinds.yml").read_text())
    assert kinds["plugin"] == "ansible.builtin.constructed" and kinds["use_vars_plugins"] is True
    assert [g["key"] for g in kinds["keyed_groups"]] == ["sre_target_kind"]


def test_two_apps_of_one_kind():
    inv = inventory("prod")
    assert hosts_of(inv, "systemd") == hosts_of(inv, "saasresto") | hosts_of(inv, "sme_booking")
    assert hostvars("prod", "saasresto")["sre_app_name"] == "saasresto"
    assert hostvars("prod", "sme_booking")["sre_app_name"] == "sme-booking-app"
    assert hosts_of(inv, "saasresto").isdisjoint(hosts_of(inv, "sme_booking"))


# ---- no plain-text secret --------------------------------------------------------------------------

class _Vaulted(str):
    pass


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_constructor("!vault", lambda loader, node: _Vaulted(loader.construct_scalar(node)))
_Loader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))


def _secret_offenders(node, path=""):
    if isinstance(node, dict):
        for key, value in node.items():
            where = f"{path}.{key}" if path else str(key)
            if SECRET_KEY.search(str(key)) and not NOT_A_SECRET.search(str(key)) \
                    and not isinstance(value, (dict, list)):
                if not (value in (None, "") or isinstance(value, _Vaulted) or VAULT_REF.match(str(value))):
                    yield where
            yield from _secret_offenders(value, where)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _secret_offenders(value, f"{path}[{i}]")


def _variable_files(env):
    root = INVENTORIES / env
    files = [root / "hosts.yml"]
    for sub in ("group_vars", "host_vars"):
        files += sorted(p for p in (root / sub).rglob("*") if p.is_file())
    return files


@pytest.mark.parametrize("env", ENVS)
def test_no_plain_text_secret_in_any_variable_file(env):
    files = _variable_files(env)
    assert len(files) > 2
    for path in files:
        text = path.read_text()
        if text.startswith("$ANSIBLE_VAULT;"):
            continue  # a whole encrypted file
        offenders = list(_secret_offenders(yaml.load(text, Loader=_Loader)))
        assert not offenders, (str(path.relative_to(REPO)), offenders)


@pytest.mark.parametrize("env", ENVS)
def test_the_secret_variables_are_vault_references(env):
    inv = inventory(env)
    for host, hv in inv["_meta"]["hostvars"].items():
        for key in ("sre_db_password", "sre_db_dsn", "sre_fly_api_token"):
            if hv.get(key):
                assert VAULT_REF.match(hv[key]), (host, key)


@pytest.mark.parametrize("env", ["prod", "staging"])
def test_vault_example_holds_only_placeholders(env):
    path = INVENTORIES / env / "group_vars" / "all" / "vault.yml.example"
    doc = yaml.load(path.read_text(), Loader=_Loader)
    assert doc
    for key, value in doc.items():
        assert key.startswith("vault_") and isinstance(value, _Vaulted) and "REPLACE_WITH" in value, key
    # every vault_ name an app refers to has its placeholder
    refs = set()
    for hv in inventory(env)["_meta"]["hostvars"].values():
        for value in hv.values():
            refs |= set(re.findall(r"\bvault_[A-Za-z0-9_]+", value if isinstance(value, str) else ""))
    assert refs and refs <= set(doc), refs - set(doc)
    assert not (INVENTORIES / env / "group_vars" / "all" / "vault.yml").exists() or \
        (INVENTORIES / env / "group_vars" / "all" / "vault.yml").read_text().startswith("$ANSIBLE_VAULT;")


# ---- the runbooks' values (issue 12) ---------------------------------------------------------------

def _tls_hosts(hv):
    return {(e["host"], int(e["port"])) for e in hv.get("sre_tls_endpoints", [])}


@pytest.mark.parametrize("env", ["prod", "staging"])
@pytest.mark.parametrize("app,key,expected", [
    ("saasresto", "sre_app_name", "saasresto"),
    ("saasresto", "sre_app_dir", "/opt/saasresto"),
    ("saasresto", "sre_app_port", 3000),
    ("saasresto", "sre_proxy_kind", "caddy"),
    ("saasresto", "sre_backup_dir", "/var/backups/saasresto"),
    ("saasresto", "sre_backup_pattern", "latest_backup.sql.gz"),
    ("saasresto", "db_restore_backup", "/var/backups/saasresto/latest_backup.sql.gz"),
    ("saasresto", "sre_migration_status_cmd", "npx prisma migrate status"),
    ("saasresto", "deploy_failure_migration_chdir", "/opt/saasresto"),
    ("saasresto", "login_users_table", '"User"'),
    ("saasresto", "login_hash_column", '"passwordHash"'),
    ("saasresto", "login_sessions_table", '"Session"'),
    ("saasresto", "login_sessions_user_column", '"userId"'),
    ("saasresto", "login_sessions_expires_column", '"expiresAt"'),
    ("saasresto", "login_sessions_created_column", '"createdAt"'),
    ("sme_booking", "sre_app_name", "sme-booking-app"),
    ("sme_booking", "sre_db_name", "sme_booking"),
    ("cookcam", "sre_app_name", "cookcam-api"),
    ("cookcam", "sre_pm2_ecosystem", "ecosystem.config.production.js"),
    ("cookcam", "sre_proxy_kind", "nginx"),
    ("cookcam", "sre_db_dsn", "{{ vault_cookcam_database_url }}"),
    ("ferreteria", "sre_compose_project_dir", "/root/ferreteria"),
    ("ferreteria", "sre_compose_file", "docker-compose.prod.yml"),
    ("ferreteria", "sre_app_name", "web"),
    ("ferreteria", "sre_db_service", "db"),
    ("ferreteria", "sre_proxy_kind", "nginx_compose"),
    ("ferreteria", "sre_proxy_service", "nginx"),
    ("ferreteria", "sre_db_user", "ferreteria_user"),
    ("ferreteria", "sre_db_name", "ferreteria_db"),
    ("ferreteria", "sre_backup_dir", "/var/backups/ferreteria/daily"),
    ("ferreteria", "sre_backup_pattern", "*.sql.gz"),
    ("ferreteria", "sre_backup_script", "/root/ferreteria/infra/backups/backup_db.sh"),
    ("ferreteria", "sre_rollback_script", "/root/ferreteria/infra/scripts/rollback.sh"),
    ("hotdash", "sre_db_dsn", "{{ vault_hotdash_database_url }}"),
    ("hotdash", "sre_db_host", ""),
    ("hotdash", "sre_db_service", ""),
    ("hotdash", "sre_fly_api_token", "{{ vault_fly_api_token }}"),
])
def test_runbook_values(env, app, key, expected):
    assert hostvars(env, app).get(key) == expected, (env, app, key)


def test_saasresto_prisma_relations():
    for env in ("prod", "staging"):
        relations = hostvars(env, "saasresto")["data_integrity_relations"]
        assert {"child": '"Category"', "column": '"menuId"', "parent": '"Menu"', "parent_column": "id"} in relations
        assert {"child": '"Item"', "column": '"categoryId"', "parent": '"Category"', "parent_column": "id"} in relations


def test_hotdash_is_the_fly_app_of_each_environment():
    assert hostvars("prod", "hotdash")["sre_fly_app"] == "hotdash-production"
    assert hostvars("staging", "hotdash")["sre_fly_app"] == "hotdash-staging"
    assert hostvars("prod", "hotdash")["sre_app_health_url"] == "https://hotdash-production.fly.dev/health"


@pytest.mark.parametrize("app,endpoint", [
    ("saasresto", ("demo.saasresto.isprojets.cloud", 443)),
    ("cookcam", ("api.cookcam.app", 443)),
    ("ferreteria", ("tandil.site", 443)),
    ("hotdash", ("hotdash-production.fly.dev", 443)),
])
def test_prod_tls_endpoints_are_the_runbooks_public_domains(app, endpoint):
    assert endpoint in _tls_hosts(hostvars("prod", app))


@pytest.mark.parametrize("app", ["saasresto", "cookcam", "ferreteria", "hotdash"])
def test_staging_checks_tls_too(app):
    assert _tls_hosts(hostvars("staging", app))


def test_prod_and_staging_keep_their_host_names():
    for env, names in {"prod": {"saasresto-1.example.invalid", "cookcam-api-1.example.invalid",
                                "ferreteria.example.invalid", "hotdash-flyctl"},
                       "staging": {"saasresto-staging-1.example.invalid", "cookcam-api-staging-1.example.invalid",
                                   "ferreteria-staging.example.invalid", "hotdash-staging-flyctl"}}.items():
        assert names <= set(inventory(env)["_meta"]["hostvars"])
