#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: cert_check
short_description: Check the TLS certificates served by endpoints or stored in files
version_added: 0.1.0
description:
  - Connects to TLS endpoints (directly, or after a PostgreSQL or SMTP STARTTLS negotiation), reads the presented
    chain B(without) verifying it, so expired, self-signed or mismatched certificates are still reported, and
    validates it itself with the C(cryptography) library.
  - Validation builds the path leaf, presented intermediates, trust anchor (the system store plus O(ca_cert)),
    verifies every signature and validity period, and matches the server name against the subject alternative
    names (DNS names with a wildcard as the whole leftmost label, and IP addresses).
  - Also reads certificate files (PEM, DER, bundles) and directories of them, recursively, for example a Caddy
    storage directory or C(/etc/letsencrypt/live). In a directory only C(.pem), C(.crt), C(.cer), C(.cert) and
    C(.der) files are read and private key files are skipped. Certificates found under O(paths) serve as
    intermediates for each other.
  - A certificate that the parser refuses (for example one with a duplicate extension) is a critical
    C(unparsable) finding for that endpoint or file, with RV(certificates[].error_category=parse) and the reason
    in RV(certificates[].error); the other endpoints and files are checked all the same.
  - Endpoints are checked concurrently. Nothing is ever changed.
author:
  - sre.runbooks contributors (@sre-runbooks)
attributes:
  check_mode:
    support: full
    description: The module only reads, so it runs the same way in check mode and returns the same results.
  diff_mode:
    support: none
    description: Nothing changes, so there is no diff.
options:
  endpoints:
    description:
      - TLS endpoints to check. Each is V(host), V(host:port) (V([v6addr]:port) for IPv6) or a dictionary with
        the keys C(host) (required), C(port) (default 443, 5432 for PostgreSQL, 25 for SMTP), C(server_name)
        (the SNI name and the name checked against the certificate, default C(host)) and C(starttls)
        (V(none), V(postgres) or V(smtp), default V(none)).
    type: list
    elements: raw
    default: []
  paths:
    description:
      - Certificate files (PEM, DER or PEM bundles, the leaf first) and directories searched recursively.
      - A file that cannot be read or holds no certificate is a critical C(unreadable) finding.
    type: list
    elements: path
    default: []
  ca_cert:
    description:
      - Extra trust anchors, a PEM bundle or a directory of certificates, added to the system store.
    type: path
  warn_days:
    description: A certificate with this many days left or fewer is a warning C(expiring_warning) finding.
    type: int
    default: 30
  critical_days:
    description: A certificate with this many days left or fewer is a critical C(expiring_critical) finding.
    type: int
    default: 7
  timeout:
    description: Seconds allowed for each connection and each network read.
    type: float
    default: 10
  fail_on:
    description:
      - Fail the task when the status reaches this level (the results are returned either way).
    type: str
    choices: [never, warning, critical]
    default: never
  workers:
    description: How many endpoints are checked at the same time.
    type: int
    default: 32
requirements:
  - cryptography >= 38.0 (Debian bookworm's C(python3-cryptography) works)
notes:
  - The trust store is the first of C(/etc/ssl/certs/ca-certificates.crt), C(/etc/pki/tls/certs/ca-bundle.crt),
    C(/etc/ssl/ca-bundle.pem) and C(/etc/ssl/cert.pem) that exists, plus O(ca_cert).
  - On Python older than 3.10 only the leaf certificate can be read from an endpoint.
seealso:
  - module: sre.runbooks.backup_verify
"""

EXAMPLES = r"""
- name: Check the public endpoints and the certificates on disk
  sre.runbooks.cert_check:
    endpoints:
      - example.com
      - api.example.com:8443
      - host: 10.0.0.5
        server_name: www.example.com
      - host: db.internal
        starttls: postgres
    paths:
      - /etc/letsencrypt/live
    warn_days: 21
    fail_on: critical
  register: certs

- name: Check an internal service signed by a private CA
  sre.runbooks.cert_check:
    endpoints: [internal.example.net:443]
    ca_cert: /etc/pki/internal-ca.pem
"""

RETURN = r"""
status:
  description: Worst status of all certificates, V(ok), V(warning), V(critical) or V(unreachable).
  returned: always
  type: str
findings:
  description:
    - What is wrong, as C({severity, code, message, target}). Codes are C(expired), C(expiring_critical),
      C(expiring_warning), C(hostname_mismatch), C(chain_invalid), C(self_signed), C(intermediate_expires_first),
      C(unreachable), C(unreadable), C(unparsable) (a certificate the parser refuses) and, as V(info) for a CA certificate file (a root or an intermediate found
      beside the leaves, whose own trust is not judged), C(ca_certificate).
  returned: always
  type: list
  elements: dict
  sample:
    - severity: critical
      code: expiring_critical
      message: "example.com:443: certificate expires in 3 days (2025-01-04T12:00:00Z)"
      target: example.com:443
soonest:
  description: The certificate expiring first (leaf or intermediate), as C({target, days}); null when none was read.
  returned: always
  type: dict
certificates:
  description:
    - One entry per endpoint and per certificate file.
    - When an endpoint or a file cannot be read, the certificate fields are null and RV(certificates[].error_category)
      and RV(certificates[].error) say why.
  returned: always
  type: list
  elements: dict
  contains:
    target:
      description: C(host:port) of the endpoint, or the file path.
      type: str
    server_name:
      description: The name sent as SNI and matched against the certificate; null for files.
      type: str
    subject:
      description: Subject of the leaf certificate (RFC 4514).
      type: str
    issuer:
      description: Issuer of the leaf certificate (RFC 4514).
      type: str
    sans:
      description: DNS names and IP addresses of the subject alternative names.
      type: list
      elements: str
    serial:
      description: Serial number, hexadecimal.
      type: str
    fingerprint_sha256:
      description: SHA-256 fingerprint of the leaf, colon separated hexadecimal.
      type: str
    not_before:
      description: Start of validity, ISO 8601 UTC.
      type: str
    not_after:
      description: End of validity, ISO 8601 UTC.
      type: str
    days_left:
      description: Whole days until RV(certificates[].not_after), negative once expired.
      type: int
    expired:
      description: Whether the leaf has expired.
      type: bool
    hostname_match:
      description: Whether the server name matches the certificate; null for files.
      type: bool
    chain_valid:
      description: Whether a path to a trust anchor was built and every signature and validity period checked.
      type: bool
    chain_error:
      description: Why the chain is not valid; null when it is.
      type: str
    self_signed:
      description: Whether the leaf is signed by its own key.
      type: bool
    chain:
      description: Every presented certificate, leaf first, as C({subject, issuer, not_after, days_left}).
      type: list
      elements: dict
    earliest_expiry_days:
      description: Fewest days left over the leaf and the intermediates (trust anchors and self-signed roots excluded).
      type: int
    key_type:
      description: V(RSA), V(EC), V(Ed25519), V(Ed448) or V(DSA).
      type: str
    key_bits:
      description: Key size in bits.
      type: int
    signature_algorithm:
      description: Signature algorithm of the leaf, for example V(sha256WithRSAEncryption).
      type: str
    is_ca:
      description: Whether the leaf is a CA certificate (basic constraints); null when nothing was read.
      type: bool
    status:
      description: V(ok), V(warning), V(critical), or V(unreachable) for an endpoint that could not be read.
      type: str
    error_category:
      description:
        - V(dns), V(refused), V(timeout), V(handshake) or V(file); only on failure.
        - V(parse) when a presented or stored certificate cannot be parsed (a critical C(unparsable) finding);
          earlier versions said V(verify) for a presented one.
      type: str
    error:
      description: What went wrong; only on failure.
      type: str
"""

from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.sre.runbooks.plugins.module_utils._common import FAIL_ON_CHOICES, fail_message, should_fail
from ansible_collections.sre.runbooks.plugins.module_utils import _tls


def main():
    module = AnsibleModule(
        argument_spec=dict(
            endpoints=dict(type="list", elements="raw", default=[]),
            paths=dict(type="list", elements="path", default=[]),
            ca_cert=dict(type="path"),
            warn_days=dict(type="int", default=30),
            critical_days=dict(type="int", default=7),
            timeout=dict(type="float", default=10),
            fail_on=dict(type="str", choices=FAIL_ON_CHOICES, default="never"),
            workers=dict(type="int", default=32),
        ),
        supports_check_mode=True,
    )
    if not _tls.HAS_CRYPTOGRAPHY:
        module.fail_json(msg=missing_required_lib("cryptography"), exception=str(_tls.CRYPTOGRAPHY_IMPORT_ERROR))
    params = module.params
    try:
        endpoints = [_tls.parse_endpoint(spec) for spec in params["endpoints"]]
    except ValueError as exc:
        module.fail_json(msg="Checking TLS certificates: invalid endpoint: %s" % exc)
    if params["timeout"] <= 0 or params["workers"] < 1:
        module.fail_json(msg="Checking TLS certificates: timeout must be positive and workers at least 1")
    try:
        store = _tls.load_trust_store(params["ca_cert"])
    except _tls.TlsError as exc:
        module.fail_json(msg="Loading trust anchors: %s" % exc.message)

    warn, crit = params["warn_days"], params["critical_days"]
    now = _tls.utcnow()
    results = []
    if endpoints:
        workers = min(params["workers"], len(endpoints))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results.extend(pool.map(
                lambda ep: _tls.check_endpoint(ep, store, params["timeout"], warn, crit, now=now), endpoints))
    results.extend(_tls.check_files(params["paths"], store, warn, crit, now=now))

    status, findings, soonest = _tls.summarise(results)
    result = dict(
        changed=False,
        status=status,
        findings=findings,
        soonest=soonest,
        certificates=[entry for entry, _findings in results],
    )
    if should_fail(status, params["fail_on"]):
        module.fail_json(msg=fail_message("Checking %d TLS certificates" % len(results), status, findings), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
