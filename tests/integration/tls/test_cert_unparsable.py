# SPDX-License-Identifier: GPL-3.0-or-later
"""cert_check: a certificate that Python's parser (cryptography) refuses is a finding for that endpoint or file,
never a traceback (issue 11).

The broken certificates are real ones with their DER edited; both still load, and cryptography refuses them when
it parses their extensions:
- a duplicate extension: the OID of the subjectAltName becomes the OID of basicConstraints (stored as PEM and DER
  files; OpenSSL refuses to serve it);
- a subjectAltName dNSName that is no IA5String (a byte over 127): OpenSSL serves it, a TLS server on loopback
  presents it.
"""

from __future__ import annotations

import base64

import pytest
from cryptography import x509

from conftest import run_module
from tls_support import Pki, TlsServer, write_chain

SAN_OID = bytes.fromhex("0603551d11")  # 2.5.29.17 subjectAltName
BASIC_CONSTRAINTS_OID = bytes.fromhex("0603551d13")  # 2.5.29.19 basicConstraints


def duplicate_extension(der: bytes) -> bytes:
    assert der.count(SAN_OID) == 1 and der.count(BASIC_CONSTRAINTS_OID) == 1
    broken = der.replace(SAN_OID, BASIC_CONSTRAINTS_OID)
    cert = x509.load_der_x509_certificate(broken)  # loads...
    with pytest.raises(Exception) as refused:  # ...but the parser refuses it (DuplicateExtension)
        cert.extensions
    assert "Duplicate" in type(refused.value).__name__ or "uplicate" in str(refused.value)
    return broken


def non_ascii_dns_name(der: bytes) -> bytes:
    old = b"\x82\x09localhost"  # dNSName [2], 9 bytes
    assert der.count(old) == 1
    broken = der.replace(old, b"\x82\x09l\xffcalhost")
    cert = x509.load_der_x509_certificate(broken)
    with pytest.raises(ValueError):
        cert.extensions
    return broken


def pem(der: bytes) -> bytes:
    body = base64.encodebytes(der).replace(b"\n", b"")
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return b"-----BEGIN CERTIFICATE-----\n" + b"\n".join(lines) + b"\n-----END CERTIFICATE-----\n"


@pytest.fixture(scope="module")
def pki():
    return Pki()


@pytest.fixture(scope="module")
def broken(tmp_path_factory, pki):
    base = tmp_path_factory.mktemp("unparsable")
    leaf = pki.leaf(60)
    bad_der = duplicate_extension(leaf.der)
    good_cert, keyfile = write_chain(base, "good", pki.leaf(60), pki.intermediate)
    bad_cert = base / "bad-chain.pem"
    bad_key = base / "bad-key.pem"
    bad_cert.write_bytes(pem(non_ascii_dns_name(leaf.der)) + pki.intermediate.pem)
    bad_key.write_bytes(leaf.key_pem)
    bad_server = TlsServer(bad_cert, bad_key)
    good_server = TlsServer(good_cert, keyfile)
    ca = base / "ca.pem"
    ca.write_bytes(pki.root.pem)
    files = base / "files"
    (files / "live").mkdir(parents=True)
    (files / "bad.der").write_bytes(bad_der)
    (files / "live" / "fullchain.pem").write_bytes(pem(bad_der) + pki.intermediate.pem)
    (files / "live" / "privkey.pem").write_bytes(leaf.key_pem)  # skipped: a key file beside the certificates
    (files / "good.pem").write_bytes(pki.leaf(60).pem + pki.intermediate.pem)
    (files / "bad-name.pem").write_bytes(pem(non_ascii_dns_name(leaf.der)))
    yield {"bad": {"host": "127.0.0.1", "port": bad_server.port, "server_name": "localhost"},
           "good": {"host": "127.0.0.1", "port": good_server.port, "server_name": "localhost"},
           "ca": str(ca), "files": files}
    bad_server.close()
    good_server.close()


def codes(result, target):
    return {f["code"]: f for f in result["findings"] if f.get("target") == target}


def test_endpoint_presenting_an_unparsable_certificate_is_a_finding(broken):
    result = run_module("cert_check", {"endpoints": [broken["bad"], broken["good"]], "ca_cert": broken["ca"]})
    assert result["rc"] == 0 and "Traceback" not in result["raw"], result["raw"]
    by = {e["target"]: e for e in result["certificates"]}
    bad = by["127.0.0.1:%d" % broken["bad"]["port"]]
    assert bad["error_category"] == "parse" and bad["status"] == "critical", bad
    assert "cannot be parsed" in bad["error"] and "DNSName" in bad["error"], bad["error"]
    assert bad["subject"] is None and bad["chain"] == []
    found = codes(result, bad["target"])
    assert set(found) == {"unparsable"} and found["unparsable"]["severity"] == "critical"
    assert found["unparsable"]["message"].startswith(bad["target"] + ": ")
    good = by["127.0.0.1:%d" % broken["good"]["port"]]
    assert good["status"] == "ok" and good["chain_valid"] is True  # the other endpoint is checked all the same
    assert result["status"] == "critical"
    failing = run_module("cert_check", {"endpoints": [broken["bad"]], "ca_cert": broken["ca"], "fail_on": "critical"})
    assert failing["rc"] == 1 and "unparsable" in failing["msg"] and "Traceback" not in failing["raw"]


def test_unparsable_certificate_files_are_findings(broken):
    files = broken["files"]
    result = run_module("cert_check", {"paths": [str(files)], "ca_cert": broken["ca"]})
    assert result["rc"] == 0 and "Traceback" not in result["raw"], result["raw"]
    by = {e["target"]: e for e in result["certificates"]}
    assert sorted(by) == sorted(str(files / n) for n in ("bad.der", "bad-name.pem", "good.pem", "live/fullchain.pem"))
    for name, reason in (("bad.der", "Duplicate"), ("live/fullchain.pem", "Duplicate"), ("bad-name.pem", "DNSName")):
        entry = by[str(files / name)]
        assert entry["error_category"] == "parse" and entry["status"] == "critical", entry
        assert "cannot be parsed" in entry["error"] and reason in entry["error"], entry["error"]
        assert set(codes(result, entry["target"])) == {"unparsable"}
    assert "certificate 1 of the PEM data" in by[str(files / "live/fullchain.pem")]["error"]
    assert by[str(files / "good.pem")]["status"] == "ok"
