# SPDX-License-Identifier: GPL-3.0-or-later
"""cert_check on real-looking certificate stores: a Caddy storage folder (with Caddy's local CA) and certbot's
/etc/letsencrypt layout (live/ symlinks into archive/).

CA certificates kept beside the leaves (Caddy's pki/authorities/local/root.crt, certbot's chain.pem) are
reported with is_ca and an info finding, not as a critical self-signed or untrusted certificate; the leaves
they sign still carry chain_invalid when their root is not trusted.
"""

from __future__ import annotations

import os

import pytest

from conftest import run_module
from tls_support import Pki


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    pki = Pki()
    base = tmp_path_factory.mktemp("stores")
    caddy = base / "caddy"
    site = caddy / "certificates" / "acme-v02.api.letsencrypt.org-directory" / "example.com"
    site.mkdir(parents=True)
    leaf = pki.leaf(60, sans=("example.com",), cn="example.com")
    (site / "example.com.crt").write_bytes(leaf.pem + pki.intermediate.pem)
    (site / "example.com.key").write_bytes(leaf.key_pem)
    (site / "example.com.json").write_text("{}\n")
    local = caddy / "pki" / "authorities" / "local"
    local.mkdir(parents=True)
    (local / "root.crt").write_bytes(pki.root.pem)
    (local / "intermediate.crt").write_bytes(pki.intermediate.pem)
    (local / "root.key").write_bytes(pki.root.key_pem)

    le = base / "letsencrypt"
    archive = le / "archive" / "example.org"
    live = le / "live" / "example.org"
    archive.mkdir(parents=True)
    live.mkdir(parents=True)
    le_leaf = pki.leaf(20, sans=("example.org", "www.example.org"), cn="example.org")
    (archive / "cert1.pem").write_bytes(le_leaf.pem)
    (archive / "chain1.pem").write_bytes(pki.intermediate.pem)
    (archive / "fullchain1.pem").write_bytes(le_leaf.pem + pki.intermediate.pem)
    (archive / "privkey1.pem").write_bytes(le_leaf.key_pem)
    for name in ("cert", "chain", "fullchain", "privkey"):
        os.symlink("../../archive/example.org/%s1.pem" % name, live / ("%s.pem" % name))
    (le / "live" / "README").write_text("This directory contains your keys and certificates.\n")
    ca = base / "ca.pem"
    ca.write_bytes(pki.root.pem)
    return {"caddy": caddy, "site": site, "local": local, "live": live, "le": le, "ca": str(ca), "pki": pki}


def _by_target(result):
    return {e["target"]: e for e in result["certificates"]}


def _codes(result, target):
    return {f["code"]: f["severity"] for f in result["findings"] if f.get("target") == target}


def test_caddy_storage_without_the_root_trusted(stores):
    result = run_module("cert_check", {"paths": [str(stores["caddy"])]})
    assert result["rc"] == 0, result["raw"]
    by = _by_target(result)
    leaf_file = str(stores["site"] / "example.com.crt")
    root_file = str(stores["local"] / "root.crt")
    inter_file = str(stores["local"] / "intermediate.crt")
    assert sorted(by) == sorted([leaf_file, root_file, inter_file])  # .key and .json files are not read
    leaf = by[leaf_file]
    assert leaf["is_ca"] is False and leaf["sans"] == ["example.com"] and len(leaf["chain"]) == 2
    assert leaf["chain_valid"] is False and "Test Root CA" in leaf["chain_error"]
    assert _codes(result, leaf_file) == {"chain_invalid": "critical"}
    root = by[root_file]
    assert root["is_ca"] is True and root["self_signed"] is True and root["chain_valid"] is False
    assert root["status"] == "ok" and _codes(result, root_file) == {"ca_certificate": "info"}
    inter = by[inter_file]
    assert inter["is_ca"] is True and inter["self_signed"] is False and inter["status"] == "ok"
    assert _codes(result, inter_file) == {"ca_certificate": "info"}
    assert result["status"] == "critical"


def test_caddy_storage_with_the_root_trusted(stores):
    result = run_module("cert_check", {"paths": [str(stores["caddy"])], "ca_cert": stores["ca"]})
    by = _by_target(result)
    assert all(e["chain_valid"] is True for e in by.values()), by
    assert result["status"] == "ok"
    assert {f["code"] for f in result["findings"]} == {"ca_certificate"}


def test_letsencrypt_live_follows_symlinks(stores):
    result = run_module("cert_check", {"paths": [str(stores["le"] / "live")], "ca_cert": stores["ca"],
                                       "warn_days": 30})
    assert result["rc"] == 0, result["raw"]
    by = _by_target(result)
    live = stores["live"]
    assert sorted(by) == sorted(str(live / n) for n in ("cert.pem", "chain.pem", "fullchain.pem"))
    cert, full, chain = by[str(live / "cert.pem")], by[str(live / "fullchain.pem")], by[str(live / "chain.pem")]
    assert cert["fingerprint_sha256"] == full["fingerprint_sha256"]
    # cert.pem holds the leaf alone: chain.pem beside it completes the path
    assert cert["chain_valid"] is True and len(cert["chain"]) == 1 and len(full["chain"]) == 2
    assert cert["days_left"] == 20 and cert["status"] == "warning"
    assert _codes(result, str(live / "fullchain.pem")) == {"expiring_warning": "warning"}
    assert chain["is_ca"] is True and chain["status"] == "ok"
    assert result["soonest"]["days"] == 20 and result["status"] == "warning"
