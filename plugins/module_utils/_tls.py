# -*- coding: utf-8 -*-
# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to the sre.runbooks collection: TLS certificate checks for cert_check, the entry points.

An endpoint's chain is fetched by _tls_net.py (sockets, STARTTLS, no verification) and validated by
_tls_x509.py (path building, signatures, dates, names); files and directories are read by _tls_x509.py too.
This file joins the two halves and re-exports what cert_check uses, so the module imports one name.

Not a public API: other collections must not import it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.sre.runbooks.plugins.module_utils._common import worst_status
from ansible_collections.sre.runbooks.plugins.module_utils._tls_net import (
    endpoint_target,
    fetch_chain,
    parse_endpoint,
)
from ansible_collections.sre.runbooks.plugins.module_utils._tls_x509 import (
    CRYPTOGRAPHY_IMPORT_ERROR,
    HAS_CRYPTOGRAPHY,
    PARSE_ERRORS,
    CertificateParseError,
    TlsError,
    assess,
    describe,
    empty_entry,
    load_certificates,
    load_der_chain,
    load_trust_store,
    read_cert_files,
    utcnow,
)

__all__ = [
    "CRYPTOGRAPHY_IMPORT_ERROR", "HAS_CRYPTOGRAPHY", "TlsError", "check_endpoint", "check_files", "load_paths",
    "load_trust_store", "parse_endpoint", "summarise", "utcnow",
]


def check_endpoint(endpoint, store, timeout, warn_days, critical_days, now=None):
    target = endpoint_target(endpoint)
    try:
        certs = load_der_chain(fetch_chain(endpoint, timeout))
    except TlsError as exc:
        entry = empty_entry(target, endpoint["server_name"], exc.category, exc.message)
        return entry, assess(entry, None, warn_days, critical_days)
    try:
        entry, earliest_name = describe(certs, store, now or utcnow(), server_name=endpoint["server_name"])
    except PARSE_ERRORS as exc:  # what check_parsable did not foresee is still a finding, not a traceback
        entry = empty_entry(target, endpoint["server_name"], "parse", _unparsable(exc))
        entry["starttls"] = endpoint["starttls"]
        return entry, assess(entry, None, warn_days, critical_days)
    entry["target"] = target
    entry["starttls"] = endpoint["starttls"]
    return entry, assess(entry, earliest_name, warn_days, critical_days)


def _unparsable(exc):
    if isinstance(exc, CertificateParseError):
        return str(exc)
    return "the certificate cannot be parsed: %s: %s" % (type(exc).__name__, str(exc).strip() or "refused")


def load_paths(paths):
    """Return [(target, certs or None, error, error_category)] for every file given or found under a directory.

    error_category is file (missing, unreadable, no certificate in it) or parse (a certificate in it that the
    parser refuses, for example with a duplicate extension).
    """
    loaded = []
    for path in paths:
        if not os.path.exists(path):
            loaded.append((path, None, "no such file or directory", "file"))
            continue
        for name, from_dir in read_cert_files(path):
            try:
                with open(name, "rb") as handle:
                    data = handle.read()
            except OSError as exc:
                loaded.append((name, None, "cannot read: %s" % (exc.strerror or exc), "file"))
                continue
            try:
                loaded.append((name, load_certificates(data), None, None))
            except CertificateParseError as exc:
                loaded.append((name, None, str(exc), "parse"))
            except ValueError as exc:
                if from_dir and b"PRIVATE KEY" in data:
                    continue  # a key file beside the certificates (privkey.pem)
                loaded.append((name, None, str(exc), "file"))
    return loaded


def check_files(paths, store, warn_days, critical_days, now=None):
    now = now or utcnow()
    loaded = load_paths(paths)
    pool = [cert for _name_, certs, _err, _cat in loaded if certs for cert in certs]
    results = []
    for target, certs, error, category in loaded:
        if certs is None:
            entry = empty_entry(target, None, category, error)
            results.append((entry, assess(entry, None, warn_days, critical_days, is_file=True)))
            continue
        try:
            entry, earliest_name = describe(certs, store, now, server_name=None, extra_pool=pool)
        except PARSE_ERRORS as exc:  # what check_parsable did not foresee is still a finding, not a traceback
            entry = empty_entry(target, None, "parse", _unparsable(exc))
            results.append((entry, assess(entry, None, warn_days, critical_days, is_file=True)))
            continue
        entry["target"] = target
        results.append((entry, assess(entry, earliest_name, warn_days, critical_days, is_file=True)))
    return results


def summarise(results):
    """Top level status, findings and soonest from [(entry, findings)]."""
    findings = []
    statuses = []
    soonest = None
    for entry, entry_findings in results:
        findings.extend(entry_findings.as_list())
        statuses.append(entry["status"])
        days = entry.get("earliest_expiry_days")
        if days is not None and (soonest is None or days < soonest["days"]):
            soonest = {"target": entry["target"], "days": days}
    return worst_status(statuses), findings, soonest
