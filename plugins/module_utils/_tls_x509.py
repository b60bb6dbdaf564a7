# -*- coding: utf-8 -*-
# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to the sre.runbooks collection: X.509 certificates and trust for cert_check.

Certificates are read from PEM or DER, and a presented chain is validated here with ``cryptography``: path
building leaf -> presented intermediates -> trust anchors, every signature (``verify_directly_issued_by``),
validity dates, hostname/SAN match; ``describe`` and ``assess`` turn a chain into a certificate entry and its
findings. The network half (sockets, STARTTLS) is _tls_net.py; the entry points are in _tls.py.

Not a public API: other collections must not import it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import ipaddress
import math
import os

try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
    from cryptography.x509 import DuplicateExtension, UnsupportedGeneralNameType
    from cryptography.x509.oid import NameOID
    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None
    # what cryptography raises when it parses, lazily, a certificate it loaded (DuplicateExtension is no
    # ValueError)
    PARSE_ERRORS = (ValueError, TypeError, UnsupportedAlgorithm, DuplicateExtension, UnsupportedGeneralNameType)
except ImportError as exc:  # pragma: no cover - reported by the module with missing_required_lib
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR = exc
    PARSE_ERRORS = (ValueError, TypeError)

from ansible_collections.sre.runbooks.plugins.module_utils._common import Findings

SYSTEM_CA_FILES = (
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu, Alpine
    "/etc/pki/tls/certs/ca-bundle.crt",  # RHEL, Fedora
    "/etc/ssl/ca-bundle.pem",  # SUSE
    "/etc/ssl/cert.pem",  # BSD, macOS
)
CERT_EXTENSIONS = (".pem", ".crt", ".cer", ".cert", ".der")
MAX_PATH_DEPTH = 10
PEM_MARKER = b"-----BEGIN CERTIFICATE-----"


class TlsError(Exception):
    """A failure with a category: dns, refused, timeout, handshake, parse, verify or file."""

    def __init__(self, category, message):
        super(TlsError, self).__init__(message)
        self.category = category
        self.message = message


# ---------------------------------------------------------------------------------------------------------
# Pure helpers


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def hostname_matches(hostname, dns_names, ip_addresses=()):
    """RFC 6125 matching: exact (case-insensitive), or a wildcard as the whole leftmost label.

    IP addresses match only IP SANs; wildcards never match IPs, the bare parent domain, or several labels.
    """
    if not hostname:
        return False
    name = hostname.strip().rstrip(".").lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    try:
        wanted_ip = ipaddress.ip_address(name)
    except ValueError:
        wanted_ip = None
    if wanted_ip is not None:
        for value in ip_addresses:
            try:
                if ipaddress.ip_address(str(value)) == wanted_ip:
                    return True
            except ValueError:
                continue
        return False
    labels = name.split(".")
    for pattern in dns_names:
        pat = str(pattern).strip().rstrip(".").lower()
        if not pat:
            continue
        if pat == name:
            return True
        pat_labels = pat.split(".")
        if (pat_labels[0] == "*" and len(pat_labels) >= 3 and len(pat_labels) == len(labels)
                and "*" not in ".".join(pat_labels[1:]) and pat_labels[1:] == labels[1:] and labels[0]):
            return True
    return False


def days_between(not_after, now):
    """Whole days left until not_after (floor), negative once expired."""
    return int(math.floor((not_after - now).total_seconds() / 86400.0))


def iso(value):
    return value.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def expiry_severity(days, warn_days, critical_days):
    """Return (severity, code) for a number of days left, or (None, None) when fine."""
    if days < 0:
        return "critical", "expired"
    if days <= critical_days:
        return "critical", "expiring_critical"
    if days <= warn_days:
        return "warning", "expiring_warning"
    return None, None


# ---------------------------------------------------------------------------------------------------------
# Certificates


class CertificateParseError(ValueError):
    """A certificate that loads but that the parser refuses (a duplicate extension, a malformed name or date)."""


def _parse_reason(exc):
    return "%s: %s" % (type(exc).__name__, str(exc).strip() or "refused by the parser")


def check_parsable(cert):
    """Parse now what cryptography parses lazily (extensions, names, dates), so that a certificate the parser
    refuses is refused when it is read, with the reason (CertificateParseError), never later in a traceback."""
    try:
        dummy = [len(cert.extensions), cert.subject.rfc4514_string(), cert.issuer.rfc4514_string(),
                 _not_after(cert), _not_before(cert), cert.serial_number, cert.signature_algorithm_oid]
    except PARSE_ERRORS as exc:
        raise CertificateParseError(_parse_reason(exc))
    return cert


def load_certificates(data, lenient=False):
    """Parse PEM (one or many certificates) or DER bytes. Raises ValueError when nothing is a certificate, and
    CertificateParseError when a certificate loads but cannot be parsed (lenient: such certificates are
    skipped, as for a trust bundle)."""
    if PEM_MARKER in data:
        certs = []
        for number, block in enumerate(_pem_blocks(data), 1):
            try:
                cert = x509.load_pem_x509_certificate(block)
            except ValueError:
                continue
            try:
                certs.append(check_parsable(cert))
            except CertificateParseError as exc:
                if not lenient:
                    raise CertificateParseError("certificate %d of the PEM data cannot be parsed: %s" % (number, exc))
        if not certs:
            raise ValueError("no parsable PEM certificate")
        return certs
    if b"-----BEGIN" in data:
        raise ValueError("PEM data without a certificate")
    try:
        cert = x509.load_der_x509_certificate(data)
    except ValueError:
        raise ValueError("neither a PEM nor a DER certificate")
    try:
        return [check_parsable(cert)]
    except CertificateParseError as exc:
        raise CertificateParseError("the DER certificate cannot be parsed: %s" % exc)


def _pem_blocks(data):
    start = 0
    end_marker = b"-----END CERTIFICATE-----"
    while True:
        begin = data.find(PEM_MARKER, start)
        if begin < 0:
            return
        end = data.find(end_marker, begin)
        if end < 0:
            return
        end += len(end_marker)
        yield data[begin:end] + b"\n"
        start = end


def _not_after(cert):
    value = getattr(cert, "not_valid_after_utc", None)
    return value if value is not None else cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)


def _not_before(cert):
    value = getattr(cert, "not_valid_before_utc", None)
    return value if value is not None else cert.not_valid_before.replace(tzinfo=datetime.timezone.utc)


def fingerprint(cert):
    return cert.fingerprint(hashes.SHA256()).hex().upper()


def _fp_colon(cert):
    raw = fingerprint(cert)
    return ":".join(raw[i:i + 2] for i in range(0, len(raw), 2))


def subject_alt_names(cert):
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], []
    return ext.get_values_for_type(x509.DNSName), [str(ip) for ip in ext.get_values_for_type(x509.IPAddress)]


def _key_info(cert):
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm):
        return "unknown", None
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "EC", key.key_size
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519", 256
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448", 456
    if isinstance(key, dsa.DSAPublicKey):
        return "DSA", key.key_size
    return type(key).__name__, None


def _signature_algorithm(cert):
    oid = cert.signature_algorithm_oid
    return getattr(oid, "_name", None) or oid.dotted_string


def is_self_issued(cert):
    return cert.issuer == cert.subject


def _verify_issued_by(cert, issuer):
    """cryptography >= 40: verify_directly_issued_by. Older (Debian bookworm has 38): the same check by hand.

    Raises ValueError (names differ, unsupported), TypeError (key type), InvalidSignature.
    """
    method = getattr(cert, "verify_directly_issued_by", None)
    if method is not None:
        method(issuer)
        return
    if cert.issuer != issuer.subject:
        raise ValueError("issuer name does not match")
    key = issuer.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        if cert.signature_hash_algorithm is None:
            raise ValueError("unsupported signature algorithm")
        key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), cert.signature_hash_algorithm)
    elif isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))
    elif isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        key.verify(cert.signature, cert.tbs_certificate_bytes)
    else:
        raise TypeError("unsupported issuer key type")


def is_ca(cert):
    """True when the basic constraints extension says CA (an intermediate or a root)."""
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def signed_by(cert, issuer):
    """True when issuer's key signed cert (names must match too)."""
    try:
        _verify_issued_by(cert, issuer)
        return True
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False


def is_self_signed(cert):
    """Self-issued and not proven otherwise (a SHA-1 root cannot be verified by cryptography, it is still a root)."""
    if not is_self_issued(cert):
        return False
    try:
        _verify_issued_by(cert, cert)
        return True
    except InvalidSignature:
        return False
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return True


class TrustStore:
    """Trust anchors indexed by subject, plus the set of their fingerprints."""

    def __init__(self, certs=()):
        self.by_subject = {}
        self.fingerprints = set()
        for cert in certs:
            self.add(cert)

    def add(self, cert):
        fp = fingerprint(cert)
        if fp in self.fingerprints:
            return
        self.fingerprints.add(fp)
        self.by_subject.setdefault(cert.subject.public_bytes(), []).append(cert)

    def issuers_of(self, cert):
        return self.by_subject.get(cert.issuer.public_bytes(), [])

    def __contains__(self, cert):
        return fingerprint(cert) in self.fingerprints

    def __len__(self):
        return len(self.fingerprints)


def read_cert_files(path):
    """Yield (file, data) for a file, or for every certificate-looking file under a directory (recursive)."""
    if os.path.isdir(path):
        for root, dirs, files in os.walk(path, followlinks=True):
            dirs.sort()
            for name in sorted(files):
                if name.lower().endswith(CERT_EXTENSIONS):
                    yield os.path.join(root, name), True
    else:
        yield path, False


def load_trust_store(ca_cert=None, system=True):
    """System bundle (first one found) plus O(ca_cert) (a file or a directory). Raises TlsError(file)."""
    store = TrustStore()
    if system:
        for candidate in SYSTEM_CA_FILES:
            if os.path.isfile(candidate):
                try:
                    with open(candidate, "rb") as handle:
                        data = handle.read()
                    for cert in load_certificates(data, lenient=True):  # a broken anchor never hides the others
                        store.add(cert)
                except (OSError, ValueError):
                    pass
                break
    if ca_cert:
        if not os.path.exists(ca_cert):
            raise TlsError("file", "ca_cert %s: no such file or directory" % ca_cert)
        for name, _from_dir in read_cert_files(ca_cert):
            try:
                with open(name, "rb") as handle:
                    for cert in load_certificates(handle.read()):
                        store.add(cert)
            except (OSError, ValueError) as exc:
                if not _from_dir:
                    raise TlsError("file", "ca_cert %s: %s" % (name, exc))
    return store


def build_path(leaf, intermediates, store, now):
    """Build and verify leaf -> intermediates -> anchor. Return (valid, error, path_certs)."""
    path = [leaf]
    current = leaf
    seen = set([fingerprint(leaf)])
    for _depth in range(MAX_PATH_DEPTH):
        if current in store:
            break  # reached a trust anchor (the leaf itself may be one: a pinned self-signed certificate)
        anchor = None
        for candidate in store.issuers_of(current):
            if signed_by(current, candidate):
                anchor = candidate
                break
        if anchor is not None:
            path.append(anchor)
            break
        if is_self_issued(current) and signed_by(current, current):
            if current is leaf:
                return False, "self-signed certificate %s is not a trust anchor" % _name(current), path
            return False, "root %s is not a trust anchor" % _name(current), path
        nxt = None
        wrong_signature = False
        for candidate in intermediates:
            fp = fingerprint(candidate)
            if fp in seen or candidate.subject != current.issuer:
                continue
            if signed_by(current, candidate):
                nxt = candidate
                break
            wrong_signature = True
        if nxt is None:
            if wrong_signature:
                return False, "signature of %s does not verify with issuer %s" % (
                    _name(current), current.issuer.rfc4514_string()), path
            return False, "unable to find issuer %s of %s (missing intermediate?)" % (
                current.issuer.rfc4514_string(), _name(current)), path
        seen.add(fingerprint(nxt))
        path.append(nxt)
        current = nxt
    else:
        return False, "chain longer than %d certificates" % MAX_PATH_DEPTH, path
    for cert in path:
        if cert in store and cert is not leaf:
            continue  # trust anchors' own dates are not checked (as browsers do)
        if _not_after(cert) < now:
            return False, "certificate %s expired at %s" % (_name(cert), iso(_not_after(cert))), path
        if _not_before(cert) > now:
            return False, "certificate %s is not valid before %s" % (_name(cert), iso(_not_before(cert))), path
    return True, None, path


def _name(cert):
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if cns:
        return "'%s'" % cns[0].value
    return "'%s'" % cert.subject.rfc4514_string()


def describe(certs, store, now, server_name=None, extra_pool=()):
    """Describe a presented chain (leaf first). Returns the certificate entry without status/findings."""
    leaf = certs[0]
    dns_names, ip_names = subject_alt_names(leaf)
    key_type, key_bits = _key_info(leaf)
    days = days_between(_not_after(leaf), now)
    pool = list(certs[1:]) + [c for c in extra_pool if c is not leaf]
    valid, error, path = build_path(leaf, pool, store, now)
    self_signed = is_self_signed(leaf)
    expiry_days = [days]
    earliest_name = None
    for cert in list(certs[1:]) + path[1:]:
        if cert in store or is_self_signed(cert):
            continue
        cert_days = days_between(_not_after(cert), now)
        if cert_days < min(expiry_days):
            earliest_name = _name(cert)
        expiry_days.append(cert_days)
    entry = {
        "target": None,
        "server_name": server_name,
        "subject": leaf.subject.rfc4514_string(),
        "issuer": leaf.issuer.rfc4514_string(),
        "sans": list(dns_names) + list(ip_names),
        "serial": "%X" % leaf.serial_number,
        "fingerprint_sha256": _fp_colon(leaf),
        "not_before": iso(_not_before(leaf)),
        "not_after": iso(_not_after(leaf)),
        "days_left": days,
        "expired": _not_after(leaf) < now,
        "hostname_match": hostname_matches(server_name, dns_names, ip_names) if server_name else None,
        "chain_valid": valid,
        "chain_error": error,
        "self_signed": self_signed,
        "chain": [{"subject": c.subject.rfc4514_string(), "issuer": c.issuer.rfc4514_string(),
                   "not_after": iso(_not_after(c)), "days_left": days_between(_not_after(c), now)} for c in certs],
        "earliest_expiry_days": min(expiry_days),
        "key_type": key_type,
        "key_bits": key_bits,
        "signature_algorithm": _signature_algorithm(leaf),
        "is_ca": is_ca(leaf),
    }
    return entry, earliest_name


def empty_entry(target, server_name, category, message):
    entry = dict((key, None) for key in (
        "subject", "issuer", "serial", "fingerprint_sha256", "not_before", "not_after", "days_left", "expired",
        "hostname_match", "chain_valid", "chain_error", "self_signed", "earliest_expiry_days", "key_type",
        "key_bits", "signature_algorithm", "is_ca"))
    entry.update({"target": target, "server_name": server_name, "sans": [], "chain": [],
                  "error_category": category, "error": message})
    return entry


def assess(entry, earliest_name, warn_days, critical_days, is_file=False):
    """Add findings and status to a described entry. Returns the Findings."""
    findings = Findings()
    target = entry["target"]
    if entry.get("error_category") == "parse":
        # the endpoint answered or the file was read: its certificate is what is wrong
        findings.add("critical", "unparsable", "%s: %s" % (target, entry["error"]), target=target)
        entry["status"] = "critical"
        return findings
    if entry.get("error_category"):
        if is_file:
            findings.add("critical", "unreadable", "%s: %s" % (target, entry["error"]), target=target)
            entry["status"] = "critical"
        else:
            findings.add("critical", "unreachable", "%s: %s (%s)" % (target, entry["error"], entry["error_category"]),
                         target=target)
            entry["status"] = "unreachable"
        return findings
    days = entry["days_left"]
    severity, code = expiry_severity(days, warn_days, critical_days)
    if code == "expired":
        findings.add(severity, code, "%s: certificate expired %d days ago (%s)" % (target, -days, entry["not_after"]),
                     target=target)
    elif code:
        findings.add(severity, code, "%s: certificate expires in %d days (%s)" % (target, days, entry["not_after"]),
                     target=target)
    if entry["hostname_match"] is False:
        findings.add("critical", "hostname_mismatch", "%s: %s is not in the certificate names (%s)" % (
            target, entry["server_name"], ", ".join(entry["sans"]) or entry["subject"]), target=target)
    if is_file and entry.get("is_ca"):
        # a CA certificate kept on disk (Caddy's local authority, chain.pem): its own trust is not a finding,
        # the leaves it signs carry chain_invalid when it matters; only its dates count
        findings.add("info", "ca_certificate", "%s: CA certificate%s" % (
            target, "" if entry["chain_valid"] else " (%s)" % entry["chain_error"]), target=target)
    elif entry["self_signed"] and not entry["chain_valid"]:
        findings.add("critical", "self_signed", "%s: self-signed certificate %s, not trusted" % (
            target, entry["subject"]), target=target)
    elif entry["self_signed"]:
        findings.add("info", "self_signed", "%s: self-signed certificate, trusted as an anchor" % target, target=target)
    elif not entry["chain_valid"]:
        findings.add("critical", "chain_invalid", "%s: %s" % (target, entry["chain_error"]), target=target)
    earliest = entry["earliest_expiry_days"]
    if earliest is not None and days is not None and earliest < days:
        sev = "critical" if earliest <= critical_days else "warning"
        findings.add(sev, "intermediate_expires_first", "%s: intermediate %s expires in %d days, before the leaf (%d)" % (
            target, earliest_name or "?", earliest, days), target=target)
    entry["status"] = findings.status()
    return findings


def load_der_chain(ders):
    """Certificates from the DER bytes a peer presented (leaf first). Raises TlsError(handshake, parse)."""
    if not ders:
        raise TlsError("handshake", "no certificate presented")
    certs = []
    for number, der in enumerate(ders, 1):
        what = "the presented certificate" if number == 1 else "presented certificate %d (of the chain)" % number
        try:
            certs.append(check_parsable(x509.load_der_x509_certificate(der)))
        except PARSE_ERRORS as exc:
            reason = exc if isinstance(exc, CertificateParseError) else _parse_reason(exc)
            raise TlsError("parse", "%s cannot be parsed: %s" % (what, reason))
    return certs
