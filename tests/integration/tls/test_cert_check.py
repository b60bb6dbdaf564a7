# SPDX-License-Identifier: GPL-3.0-or-later
"""cert_check against real TLS servers on loopback (one port per case), certificate files and a real PostgreSQL.

All endpoint cases are checked in ONE module call (module-scoped), then each test asserts its entry's fields.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from conftest import PgCluster, free_port, run_module
from tls_support import NOW, DAY, HttpServer, Pki, SilentListener, TlsServer, closed_port, make_cert, write_chain


@pytest.fixture(scope="module")
def pki():
    return Pki()


@pytest.fixture(scope="module")
def lab(tmp_path_factory, pki):
    """Start one server per case; yield {case: endpoint} and the CA file."""
    base = tmp_path_factory.mktemp("tls")
    ca_file = base / "ca.pem"
    ca_file.write_bytes(pki.root.pem)
    short_int = make_cert("Short Intermediate CA", pki.root, ca=True, not_after=NOW + 20 * DAY)
    cases = {
        "valid": (pki.leaf(90), [pki.intermediate]),
        "expiring": (pki.leaf(3), [pki.intermediate]),
        "expired": (pki.leaf(-2), [pki.intermediate]),
        "wrong_host": (pki.leaf(90, sans=("other.example",), cn="other.example"), [pki.intermediate]),
        "self_signed": (make_cert("localhost", sans=("localhost",)), []),
        "missing_intermediate": (pki.leaf(90), []),
        "short_intermediate": (pki.leaf(90, issuer=short_int), [short_int]),
    }
    servers = []
    endpoints = {}
    for name, (leaf, chain) in cases.items():
        certfile, keyfile = write_chain(base, name, leaf, *chain)
        server = TlsServer(certfile, keyfile)
        servers.append(server)
        endpoints[name] = {"host": "127.0.0.1", "port": server.port, "server_name": "localhost"}
    silent = SilentListener()
    http = HttpServer()
    endpoints["silent"] = "127.0.0.1:%d" % silent.port
    endpoints["http"] = "127.0.0.1:%d" % http.port
    endpoints["refused"] = "127.0.0.1:%d" % closed_port()
    endpoints["dns"] = "nohost.invalid:443"
    yield {"endpoints": endpoints, "ca": str(ca_file), "base": base, "cases": cases}
    for server in servers:
        server.close()
    silent.close()
    http.close()


def _target(endpoint):
    if isinstance(endpoint, dict):
        return "%s:%d" % (endpoint["host"], endpoint["port"])
    return endpoint


@pytest.fixture(scope="module")
def checked(lab):
    args = {"endpoints": list(lab["endpoints"].values()), "ca_cert": lab["ca"], "timeout": 1}
    result = run_module("cert_check", args)
    assert result["rc"] == 0, result["raw"]
    by_target = {entry["target"]: entry for entry in result["certificates"]}
    entries = {name: by_target[_target(ep)] for name, ep in lab["endpoints"].items()}
    return result, entries, args


def _codes(result, target):
    return {f["code"]: f["severity"] for f in result["findings"] if f.get("target") == target}


def test_valid(checked, lab):
    result, entries, dummy = checked
    entry = entries["valid"]
    assert entry["chain_valid"] is True and entry["chain_error"] is None
    assert entry["hostname_match"] is True
    assert entry["self_signed"] is False and entry["expired"] is False
    assert entry["days_left"] == 90 and entry["earliest_expiry_days"] == 90
    assert entry["status"] == "ok"
    assert entry["subject"] == "CN=localhost" and entry["issuer"] == "CN=Test Intermediate CA"
    assert set(entry["sans"]) == {"localhost", "127.0.0.1"}
    assert entry["key_type"] == "EC" and entry["key_bits"] == 256
    assert entry["signature_algorithm"] == "ecdsa-with-SHA256"
    assert [c["subject"] for c in entry["chain"]] == ["CN=localhost", "CN=Test Intermediate CA"]
    leaf = lab["cases"]["valid"][0].cert
    assert entry["serial"] == "%X" % leaf.serial_number
    assert entry["not_after"] == leaf.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert len(entry["fingerprint_sha256"].split(":")) == 32
    assert _codes(result, entry["target"]) == {}


def test_expiring_in_three_days_is_critical(checked):
    result, entries, dummy = checked
    entry = entries["expiring"]
    assert entry["days_left"] == 3 and entry["expired"] is False and entry["chain_valid"] is True
    assert entry["status"] == "critical"
    assert _codes(result, entry["target"]) == {"expiring_critical": "critical"}


def test_expired(checked):
    result, entries, dummy = checked
    entry = entries["expired"]
    assert entry["expired"] is True and entry["days_left"] < 0
    assert entry["chain_valid"] is False and "expired" in entry["chain_error"]
    assert entry["status"] == "critical"
    assert _codes(result, entry["target"])["expired"] == "critical"


def test_wrong_hostname(checked):
    result, entries, dummy = checked
    entry = entries["wrong_host"]
    assert entry["hostname_match"] is False and entry["chain_valid"] is True
    assert entry["sans"] == ["other.example"]
    assert _codes(result, entry["target"]) == {"hostname_mismatch": "critical"}


def test_self_signed(checked):
    result, entries, dummy = checked
    entry = entries["self_signed"]
    assert entry["self_signed"] is True and entry["chain_valid"] is False
    assert "not a trust anchor" in entry["chain_error"]
    assert entry["hostname_match"] is True
    assert _codes(result, entry["target"]) == {"self_signed": "critical"}


def test_missing_intermediate(checked):
    result, entries, dummy = checked
    entry = entries["missing_intermediate"]
    assert entry["chain_valid"] is False and entry["self_signed"] is False
    assert "Test Intermediate CA" in entry["chain_error"] and "issuer" in entry["chain_error"]
    assert len(entry["chain"]) == 1
    assert _codes(result, entry["target"]) == {"chain_invalid": "critical"}


def test_intermediate_expiring_before_leaf(checked):
    result, entries, dummy = checked
    entry = entries["short_intermediate"]
    assert entry["chain_valid"] is True
    assert entry["days_left"] == 90 and entry["earliest_expiry_days"] == 19
    assert entry["chain"][1]["days_left"] == 19
    assert _codes(result, entry["target"]) == {"intermediate_expires_first": "warning"}


@pytest.mark.parametrize("case,category", [
    ("refused", "refused"), ("dns", "dns"), ("silent", "timeout"), ("http", "handshake"),
])
def test_unreachable_categories(checked, case, category):
    result, entries, dummy = checked
    entry = entries[case]
    assert entry["error_category"] == category, entry["error"]
    assert entry["status"] == "unreachable" and entry["subject"] is None and entry["chain"] == []
    assert _codes(result, entry["target"]) == {"unreachable": "critical"}


def test_top_level(checked):
    result, entries, dummy = checked
    assert result["changed"] is False
    assert result["status"] == "unreachable"
    assert result["soonest"]["days"] < 0 and result["soonest"]["target"] == entries["expired"]["target"]
    assert "Traceback" not in result["raw"]


def test_check_mode_identical(checked):
    result, _entries, args = checked
    again = run_module("cert_check", args, check_mode=True)
    assert again["rc"] == 0 and again["changed"] is False

    def stable(res):
        return sorted((e["target"], e["status"], e.get("error_category"), e["fingerprint_sha256"], e["days_left"])
                      for e in res["certificates"])

    assert stable(again) == stable(result)
    assert [f["code"] for f in again["findings"]] == [f["code"] for f in result["findings"]]


def test_fail_on_critical(lab):
    ep = lab["endpoints"]
    result = run_module("cert_check", {"endpoints": [ep["valid"], ep["expiring"]], "ca_cert": lab["ca"],
                                       "fail_on": "critical"})
    assert result["rc"] == 1 and result["failed"] is True
    assert result["msg"].startswith("Checking 2 TLS certificates: status critical (expiring_critical: ")
    assert "Traceback" not in result["raw"]
    assert len(result["certificates"]) == 2
    ok = run_module("cert_check", {"endpoints": [ep["valid"]], "ca_cert": lab["ca"], "fail_on": "warning"})
    assert ok["rc"] == 0 and ok["status"] == "ok"


def test_without_ca_cert_chain_is_untrusted(lab):
    result = run_module("cert_check", {"endpoints": [lab["endpoints"]["valid"]]})
    entry = result["certificates"][0]
    assert entry["chain_valid"] is False and "Test Root CA" in entry["chain_error"]


def test_files(tmp_path, pki):
    leaf = pki.leaf(40)
    (tmp_path / "leaf.pem").write_bytes(leaf.pem)
    (tmp_path / "leaf.der").write_bytes(leaf.der)
    (tmp_path / "bundle.pem").write_bytes(leaf.pem + pki.intermediate.pem)
    (tmp_path / "garbage.pem").write_bytes(b"this is not a certificate\n")
    store = tmp_path / "live" / "example.com"
    store.mkdir(parents=True)
    (store / "fullchain.pem").write_bytes(pki.leaf(10).pem + pki.intermediate.pem)
    (store / "privkey.pem").write_bytes(leaf.key_pem)
    (store / "README").write_text("not a certificate\n")
    (store / "meta.json").write_text("{}\n")
    ca = tmp_path / "ca.pem"
    ca.write_bytes(pki.root.pem)
    paths = [str(tmp_path / n) for n in ("leaf.pem", "leaf.der", "bundle.pem", "garbage.pem")]
    paths += [str(tmp_path / "live"), str(tmp_path / "missing.pem")]
    result = run_module("cert_check", {"paths": paths, "ca_cert": str(ca)})
    assert result["rc"] == 0, result["raw"]
    by = {e["target"]: e for e in result["certificates"]}
    assert sorted(by) == sorted(paths[:4] + [str(store / "fullchain.pem"), str(tmp_path / "missing.pem")])
    for name in ("leaf.pem", "leaf.der", "bundle.pem"):
        entry = by[str(tmp_path / name)]
        assert entry["days_left"] == 40 and entry["hostname_match"] is None and entry["server_name"] is None
        assert entry["fingerprint_sha256"] == by[str(tmp_path / "leaf.pem")]["fingerprint_sha256"]
        # the bundle brings the intermediate that the single-leaf files use too
        assert entry["chain_valid"] is True, entry["chain_error"]
        assert entry["status"] == "ok"
    assert len(by[str(tmp_path / "bundle.pem")]["chain"]) == 2
    full = by[str(store / "fullchain.pem")]
    assert full["days_left"] == 10 and full["status"] == "warning"
    for bad in ("garbage.pem", "missing.pem"):
        entry = by[str(tmp_path / bad)]
        assert entry["error_category"] == "file" and entry["status"] == "critical"
    codes = {(f["target"], f["code"]) for f in result["findings"]}
    assert (str(tmp_path / "garbage.pem"), "unreadable") in codes
    assert (str(store / "fullchain.pem"), "expiring_warning") in codes
    assert result["soonest"] == {"target": str(store / "fullchain.pem"), "days": 10}


def test_bad_endpoint_spec_fails_cleanly():
    result = run_module("cert_check", {"endpoints": [{"host": "a", "starttls": "imap"}]})
    assert result["rc"] == 1 and "starttls must be one of" in result["msg"]
    assert "Traceback" not in result["raw"]


@pytest.fixture(scope="module")
def pg_tls(pki):
    # initdb runs as 'postgres' and must traverse the path: pytest's temp root is 0700, use our own dir
    base = Path(tempfile.mkdtemp(prefix="sre-pgtls-"))
    base.chmod(0o711)
    certs = base / "certs"
    certs.mkdir()
    leaf = pki.leaf(60, sans=("localhost", "127.0.0.1"))
    certfile, keyfile = write_chain(certs, "server", leaf, pki.intermediate)
    if os.geteuid() == 0:
        for item in (certs, certfile, keyfile):
            shutil.chown(item, "postgres", "postgres")
    cluster = PgCluster(base / "cluster", free_port(), {
        "ssl": "on", "ssl_cert_file": "'%s'" % certfile, "ssl_key_file": "'%s'" % keyfile,
        "shared_preload_libraries": "''"}).start()
    ca = base / "ca.pem"
    ca.write_bytes(pki.root.pem)
    yield cluster, str(ca)
    cluster.stop()
    shutil.rmtree(base, ignore_errors=True)


def test_starttls_postgres(pg_tls):
    cluster, ca = pg_tls
    result = run_module("cert_check", {
        "endpoints": [{"host": "127.0.0.1", "port": cluster.port, "starttls": "postgres"}], "ca_cert": ca})
    entry = result["certificates"][0]
    assert entry.get("error") is None, entry
    assert entry["starttls"] == "postgres" and entry["server_name"] == "127.0.0.1"
    assert entry["chain_valid"] is True and entry["hostname_match"] is True and entry["days_left"] == 60
    assert len(entry["chain"]) == 2 and result["status"] == "ok"


def test_starttls_postgres_against_plain_tls_is_handshake(lab):
    port = lab["endpoints"]["valid"]["port"]
    result = run_module("cert_check", {"endpoints": [{"host": "127.0.0.1", "port": port, "starttls": "postgres"}],
                                       "timeout": 2})
    assert result["certificates"][0]["error_category"] == "handshake"
