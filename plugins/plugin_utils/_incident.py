# -*- coding: utf-8 -*-
# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to the sre.runbooks collection: the incident record, without Ansible.

Pure helpers used by the ``sre.runbooks.incident`` callback: secret scrubbing, severity,
identifiers, file names, the Markdown rendering (communication templates of the source runbooks
and a post-mortem skeleton) and the short chat notification. Not a public API.
"""

from __future__ import annotations

import datetime
import os
import re
import secrets

# Names of variables (and result keys) whose values are treated as secret.
SECRET_NAME_RE = re.compile(
    r"(passw|passphrase|pwd|pgpass|(?:^|[_-])pass(?:[_-]|$)|token|secret|hash|(?:^|[_-])keys?(?:[_-]|$)|apikey"
    r"|private|credential|dsn|cookie|database_?url|(?:^|_)db_?url(?:_|$)|(?:^|[_-])authorization$"
    r"|conn(?:ection)?_?str(?:ing)?)",
    re.IGNORECASE,
)
# Shorter values are censored where they appear under a secret name, but not searched for in
# free text: replacing every "yes" or "1234" in a record would make it unreadable.
MIN_SCRUB_LENGTH = 6
CENSORED = "[censored]"

SEVERITY_LEVELS = ("P0", "P1", "P2", "P3", "P4")
# The severity scales of the source runbooks, worst first: P1-P4 (003, and the default), P0-P3 (001: P0 critical,
# complete outage; P1 high, partial outage; P2 medium; P3 low). Chosen per inventory (sre_severity_scale).
SEVERITY_SCALES = {"P1-P4": ("P1", "P2", "P3", "P4"), "P0-P3": ("P0", "P1", "P2", "P3")}
DEFAULT_SCALE = "P1-P4"
FINDING_RANK = {"info": 0, "ok": 0, "warning": 1, "critical": 2}
# Codes that describe what users see rather than why: at the same severity, a cause (app_stopped,
# release_unhealthy, pool_saturated, orphans...) ranks before them as the root cause of a host.
SYMPTOM_CODES = frozenset(("health_failed", "instance_unhealthy", "log_errors", "app_starting", "service_log_errors",
                           "no_release_record", "unreachable", "db_unreachable", "port_closed"))
# Codes that say what the process does (stopped, failed, restarting in a loop): the cause of what users see, and
# the effect of a root cause found beside it (a bad release, a missing secret, orphans...): they rank between the two.
PROCESS_CODES = frozenset(("app_stopped", "app_failed", "app_crash_loop", "app_restarts", "app_missing", "app_stopping",
                           "app_unknown"))


def _cause_tier(code):
    return 2 if code in SYMPTOM_CODES else 1 if code in PROCESS_CODES else 0


def ranked_findings(findings):
    """Findings worst first: severity, then root causes before the process state (PROCESS_CODES) before symptoms
    (SYMPTOM_CODES), then the order found."""
    indexed = list(enumerate(findings))
    indexed.sort(key=lambda pair: (-FINDING_RANK.get(str(pair[1].get("severity", "info")).lower(), 0),
                                   _cause_tier(pair[1].get("code")), pair[0]))
    return [finding for dummy, finding in indexed]


def causes_by_host(findings, run_index=None):
    """{host: the top-ranked finding of that host (warning or worse)} for the findings of one run."""
    causes = {}
    mine = [f for f in findings if run_index is None or f.get("run") in (None, run_index)]
    for finding in ranked_findings(mine):
        if FINDING_RANK.get(finding.get("severity"), 0) >= 1 and finding.get("host") not in causes:
            causes[finding.get("host")] = {"code": finding.get("code"), "message": finding.get("message"),
                                           "severity": finding.get("severity")}
    return causes


KNOWN_PHASES = ("diagnose", "remediate", "rollback", "verify")

STATUS_TEXT = {
    "diagnose": ("Investigating", "Identified"),
    "verify": ("Monitoring", "Monitoring"),
}


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc)


def iso(moment):
    """2024-05-01T12:00:03Z for a timezone-aware datetime."""
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def stamp(moment):
    """20240501T120003Z: sortable and safe in file names."""
    return moment.astimezone(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def parse_iso(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)


# systemd unit names are not secret names, whatever words they hold: service_facts returns
# systemd-ask-password-wall.service = {state: stopped, source: systemd}, and censoring those values
# would turn every "stopped" and "systemd" in a record into [censored].
UNIT_NAME_RE = re.compile(r"^[\w@:.\\-]+\.(service|socket|timer|path|target|mount|automount|slice|scope|device|swap)$")


# Names that describe secrets without holding one: the secrets runbook's own facts (secrets_findings,
# secrets_missing, secrets_required, secrets_env_names: names and findings, never values), a column, table or file
# that merely has such a word in its name (login_hash_column: '"passwordHash"'). Censoring their values would turn
# "critical", "secrets_missing" and every required secret's NAME into [censored] in every record.
DESCRIBES_SECRETS_RE = re.compile(
    r"_(findings|names|missing|present|empty|required|where|file|format|kind|phase|known|restart|changed|confirm"
    r"|column|table|dir|unvaulted|count)$", re.IGNORECASE)


def is_secret_name(name):
    return (isinstance(name, str) and bool(SECRET_NAME_RE.search(name)) and not UNIT_NAME_RE.match(name)
            and not (DESCRIBES_SECRETS_RE.search(name) and not _HOLDS_A_PASSFILE_RE.search(name)))


_HOLDS_A_PASSFILE_RE = re.compile(r"pgpass|passfile", re.IGNORECASE)


# -- scrubbing by pattern ------------------------------------------------------------------------------
# Secrets nobody declared (a DSN in a command's output, a hash in a finding, a token in a header) are found by
# their shape. A pattern masks the secret part only and keeps what says what it was (the scheme and user of a
# URL, the key of key=value, the scheme of an Authorization header), so the record stays readable.
MASK = "***"

# scheme://user:password@host: the password runs to the last @ before the host (an unencoded @ in it too).
_URL_USERINFO_RE = re.compile(
    r"(?<![A-Za-z0-9+.-])(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/?#@\s'\"<>|]*:)(?P<password>[^\s'\"<>|]*?)"
    r"@(?=[^@\s'\"/?#<>|]*(?:[/?#\s'\"<>|]|$))")
# bcrypt ($2a$, $2b$, $2y$, also $2$ and $2x$): cost, then 53 characters of salt and hash (or a cut-off prefix).
_BCRYPT_RE = re.compile(r"\$2[abxy]?\$\d{2}\$[./A-Za-z0-9]{22,53}")
# Authorization: <scheme> <credentials>, as a header line, in curl -H '...', in JSON or a Python dict. The
# credentials of Basic, Bearer and Token are one word; those of other schemes (Digest k=v, ...) or of no known
# scheme run to the end of the line (or of the quoted string).
_AUTH_HEADER_RE = re.compile(
    r"(?P<head>\b(?:proxy-)?authorization(?:\\?[\"'])?[ \t]*[:=][ \t]*)(?P<quote>\\?[\"']?)"
    r"(?:(?P<scheme>basic|bearer|token)[ \t]+(?P<word>[^\s\"'|\\,;]+)"
    r"|(?:(?P<other>digest|negotiate|ntlm|apikey|aws4-hmac-sha256|[a-z][\w-]*(?=[ \t]+\S+=))[ \t]+)?"
    r"(?P<rest>[^\s\"'|\\]+(?:[ \t]+[^\s\"'|\\]+)*))",
    re.IGNORECASE)
# Bearer <token> anywhere (a token is at least 8 characters: "Bearer token expired" stays readable).
_BEARER_RE = re.compile(r"\b(?P<scheme>bearer)[ \t]+(?P<token>[A-Za-z0-9\-._~+/]{8,}=*)", re.IGNORECASE)
# key=value and key: value whose key is named like a secret (see TEXT_SECRET_KEY_RE): libpq key=value DSNs
# (password='x y'), env files and shell lines (DATABASE_URL=...), query strings (&token=...), YAML, JSON and
# Python reprs ("api_key": "..."), command lines (--password=...).
_KEY_VALUE_RE = re.compile(
    r"(?<![\w.\-/\\])(?<!://)(?P<key>-{0,2}[A-Za-z_][\w.\-]*)(?P<kq>\\?[\"'])?(?P<sep>[ \t]*(?:(?P<colon>:)|=)[ \t]*)"
    r"(?P<value>\[censored\]|\*\*\*|\\\"(?:(?!\\\").)*\\\"|\\'(?:(?!\\').)*\\'|\"(?:[^\"\\\n]|\\.)*\""
    r"|'(?:[^'\\\n]|\\.)*'"
    # after "key:" (YAML, a header, prose) the value runs to the end of the line; after "key=" to the next blank
    r"|(?P<bare>(?(colon)[^\s\"'|,;&)}\]>\\]+(?:[ \t]+[^\s\"'|,;&)}\]>\\]+)*|[^\s\"'|,;&)}\]>\\]+)))")
# A key names a secret in free text when it ENDS with a secret word: sre_db_password, PGPASSWORD, client_secret,
# GITHUB_TOKEN, api_key, AWS_SECRET_ACCESS_KEY, login_password_hash, sre_db_dsn, DATABASE_URL. Stricter than
# is_secret_name (which also censors token.service.env and api_key_id in data): in prose "token-service: active"
# or "password_file: /etc/x" is no secret.
TEXT_SECRET_KEY_RE = re.compile(
    r"(?:passw(?:or)?d|passphrase|pwd|(?:^|[_.-])pass|pgpass|secret|token|api[_-]?key|(?:^|[_.-])key|hash|dsn"
    r"|database[_-]?url|(?:^|[_.-])db[_-]?url|credentials?|cookie|(?:^|[_.-])auth|conn(?:ection)?[_-]?str(?:ing)?)$",
    re.IGNORECASE)
# --password VALUE, --token VALUE on a command line (--password=VALUE is key=value above).
_CLI_FLAG_RE = re.compile(r"(?<![\w-])(?P<flag>--?[A-Za-z][\w-]*)(?P<sep>[ \t]+)(?P<value>[^\s\-'\"|][^\s'\"|]*)")
# Where a key (or a flag) and its separator are: cheap to find, so that a value is only read after a secret key
# (reading every value would be quadratic on a long "a: b: c: ..." line, a value after ":" runs to the line end).
_KEY_CANDIDATE_RE = re.compile(r"(?<![\w.\-/\\])(?<!://)(?P<key>-{0,2}[A-Za-z_][\w.\-]*)(?:\\?[\"'])?[ \t]*[:=]")
_CLI_CANDIDATE_RE = re.compile(r"(?<![\w-])(?P<flag>--?[A-Za-z][\w-]*)[ \t]+")
_ALREADY_MASKED = frozenset(("", MASK, CENSORED))


def is_secret_text_key(name):
    """Whether key=value (or key: value) with this key, found in free text, holds a secret."""
    return bool(TEXT_SECRET_KEY_RE.search(str(name).lstrip("-"))) and not UNIT_NAME_RE.match(str(name))


def _sub_keyed(candidates, regex, key_group, mask, text):
    """regex.sub(mask, text), only where candidates finds a key (key_group) that names a secret: a value under
    any other key is not consumed, so that "libpq: host=db password=x" still reaches password=x."""
    out = []
    pos = 0
    for candidate in candidates.finditer(text):
        if candidate.start() < pos or not is_secret_text_key(candidate.group(key_group)):
            continue
        match = regex.match(text, candidate.start())
        if match is None:
            continue
        out.append(text[pos:match.start()])
        out.append(mask(match))
        pos = match.end()
    out.append(text[pos:])
    return "".join(out)


def _mask_key_value(match):
    value = match.group("value")
    bare = match.group("bare")
    if value in _ALREADY_MASKED:
        return match.group(0)
    if bare is not None:
        inner, quote = bare, ""
    else:
        quote = value[:2] if value.startswith("\\") else value[:1]
        inner = value[len(quote):-len(quote)]
    if inner in _ALREADY_MASKED:
        return match.group(0)
    return "%s%s%s%s%s%s" % (match.group("key"), match.group("kq") or "", match.group("sep"), quote, MASK, quote)


def _mask_cli_flag(match):
    if match.group("value") in _ALREADY_MASKED:
        return match.group(0)
    return match.group("flag") + match.group("sep") + MASK


def _mask_auth_header(match):
    if (match.group("word") or match.group("rest")) in _ALREADY_MASKED:
        return match.group(0)
    scheme = match.group("scheme") or match.group("other")
    return "%s%s%s%s" % (match.group("head"), match.group("quote"), scheme + " " if scheme else "", MASK)


def scrub_patterns(text):
    """text with the secrets recognisable by their shape masked (MASK): URL userinfo passwords
    (scheme://user:***@), bcrypt hashes, Authorization and Bearer credentials, and the values of keys named
    like secrets in key=value / key: value text."""
    if not isinstance(text, str) or not text:
        return text
    text = _URL_USERINFO_RE.sub(lambda m: m.group("head") + MASK + "@", text)
    text = _BCRYPT_RE.sub(MASK, text)
    text = _AUTH_HEADER_RE.sub(_mask_auth_header, text)
    text = _BEARER_RE.sub(lambda m: m.group("scheme") + " " + MASK, text)
    text = _sub_keyed(_KEY_CANDIDATE_RE, _KEY_VALUE_RE, "key", _mask_key_value, text)
    return _sub_keyed(_CLI_CANDIDATE_RE, _CLI_FLAG_RE, "flag", _mask_cli_flag, text)


def safe_name(text, fallback="unknown"):
    """Restrict a value to characters safe in a file name ([A-Za-z0-9._-])."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", str(text or "")).strip("-.")
    return cleaned[:80] or fallback


def new_incident_id(moment):
    """INC-20240501-1a2b3c: unique enough for a team's incident log, stable once chosen."""
    return "INC-%s-%s" % (moment.strftime("%Y%m%d"), secrets.token_hex(3))


def runbook_phase_from_playbook(path):
    """(runbook, phase) from a playbook file name when the play does not say.

    db_connections_diagnose.yml -> (db_connections, diagnose); db_restore.yml -> (db_restore, restore);
    db_restore_swap_back.yml -> (db_restore, swap_back); anything else -> (<stem>, run).
    """
    stem = os.path.splitext(os.path.basename(str(path or "")))[0] or "unknown"
    if stem == "db_restore":
        return "db_restore", "restore"
    if stem.startswith("db_restore_"):
        return "db_restore", stem[len("db_restore_"):]
    head, sep, tail = stem.rpartition("_")
    if sep and head and tail in KNOWN_PHASES:
        return head, tail
    return stem, "run"


def parse_scale(value):
    """Normalise a severity scale: P1-P4 (also 003, p1-p4, 1-4) or P0-P3 (also 001, p0-p3, 0-3); empty = P1-P4.

    Raises ValueError for anything else.
    """
    text = str(value if value is not None else "").strip().upper().replace(" ", "")
    if text in ("", "P1-P4", "1-4", "003"):
        return "P1-P4"
    if text in ("P0-P3", "0-3", "001"):
        return "P0-P3"
    raise ValueError("invalid severity scale %r: expected P1-P4 or P0-P3" % (value,))


def parse_severity(value, scale=DEFAULT_SCALE):
    """Normalise a severity override on its scale: P1-P4 (also 1-4, 'p2'), where runbook 001's P0 reads as P1, or
    P0-P3 (runbook 001's own, where P4 reads as P3).

    Raises ValueError for anything else.
    """
    levels = SEVERITY_SCALES[scale]
    text = str(value).strip().upper()
    if text.startswith("P"):
        text = text[1:]
    if text in ("0", "1", "2", "3", "4"):
        number = min(max(int(text), int(levels[0][1:])), int(levels[-1][1:]))
        return "P%d" % number
    raise ValueError("invalid severity %r: expected %s" % (value, ", ".join(levels[:-1]) + " or " + levels[-1]))


def worse_severity(first, second):
    """The more severe of two P levels (P1 is worst); None counts as least severe."""
    levels = [s for s in (first, second) if s in SEVERITY_LEVELS]
    return min(levels, key=SEVERITY_LEVELS.index) if levels else None


def severity_from(findings, hosts, down_hosts=(), scale=DEFAULT_SCALE):
    """P level from findings and scope, on the scale (P1-P4, or runbook 001's P0-P3).

    critical (or an unreachable host) on every host of the run -> the worst level (P1, or P0), on some -> the
    second; worst finding a warning -> the third; nothing worse than info -> the fourth.
    """
    levels = SEVERITY_SCALES[scale]
    critical_hosts = set(down_hosts)
    worst = 0
    for finding in findings:
        rank = FINDING_RANK.get(str(finding.get("severity", "info")).lower(), 0)
        worst = max(worst, rank)
        if rank == 2:
            critical_hosts.add(finding.get("host"))
    if critical_hosts:
        all_hosts = set(hosts)
        return levels[0] if all_hosts and all_hosts <= critical_hosts else levels[1]
    if worst == 1:
        return levels[2]
    return levels[3]


class Scrubber:
    """Removes known secret values and secrets recognisable by pattern from text, censors secret-named keys in data."""

    def __init__(self):
        self._values = set()
        self._pattern = None

    def add(self, value):
        """Remember a secret value (strings, or every string inside a list/dict)."""
        if isinstance(value, dict):
            for item in value.values():
                self.add(item)
        elif isinstance(value, (list, tuple, set)):
            for item in value:
                self.add(item)
        elif isinstance(value, str) and len(value) >= MIN_SCRUB_LENGTH and "{{" not in value:
            if value not in self._values:
                self._values.add(value)
                self._pattern = None

    def __len__(self):
        return len(self._values)

    def text(self, value):
        """value with every known secret replaced by CENSORED, then the secrets found by pattern masked."""
        if self._values:
            if self._pattern is None:
                ordered = sorted(self._values, key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(item) for item in ordered))
            value = self._pattern.sub(CENSORED, value)
        return scrub_patterns(value)

    def data(self, value, key=None):
        """A copy of value with secret-named keys censored and secret values replaced everywhere."""
        if key is not None and is_secret_name(key) and value not in (None, "", [], {}):
            if not isinstance(value, bool):
                return CENSORED
        if isinstance(value, dict):
            return {self.text(str(k)): self.data(v, key=str(k)) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.data(item) for item in value]
        if isinstance(value, str):
            return self.text(value)
        return value


def _fill(text, width=None):
    text = " ".join(str(text).split())
    if width and len(text) > width:
        return text[: width - 3] + "..."
    return text


def _duration_minutes(record):
    try:
        start = parse_iso(record["started"])
        end = parse_iso(record["ended"])
    except (KeyError, TypeError, ValueError):
        return None
    return max(0, int(round((end - start).total_seconds() / 60.0)))


def incident_status(record):
    """Status word of the communication templates of runbook 003."""
    phase = record.get("phase")
    run_failed = record.get("outcome") != "ok"
    open_findings = [f for f in record.get("findings", []) if f.get("run") == record.get("run_index")
                     and FINDING_RANK.get(f.get("severity"), 0) >= 1]
    if phase == "diagnose":
        return "Identified" if open_findings else "Investigating"
    if run_failed:
        return "Fixing"
    if open_findings:
        return "Fixing"
    return "Monitoring"


def is_resolved(record):
    return record.get("phase") not in ("diagnose",) and incident_status(record) == "Monitoring"


def _worst_findings(record):
    """The critical findings of the whole incident, worst first (causes before symptoms), else its warnings."""
    ranked = ranked_findings(record.get("findings", []))
    return [f for f in ranked if f.get("severity") == "critical"] or \
        [f for f in ranked if f.get("severity") == "warning"]


def _impact(record, worst):
    return "; ".join("%s on %s" % (_fill(f.get("message"), 120), f.get("host")) for f in worst[:3]) or \
        "No impact found by %s/%s" % (record.get("runbook"), record.get("phase"))


def _actions(record, last=5):
    """The last changed tasks of the incident (timeline events of kind action)."""
    return [e for e in record.get("timeline", []) if e.get("kind") == "action"][-last:]


def communication(record):
    """The three notices of runbook 003 (initial, update, resolved), filled in from the record."""
    sev = record.get("severity", "P4")
    hosts = record.get("hosts", [])
    worst = _worst_findings(record)
    impact = _impact(record, worst)
    affected = ", ".join(hosts) if hosts else "[none]"
    action_text = "; ".join("%s (%s)" % (_fill(e.get("task"), 80), e.get("host")) for e in _actions(record)) or "None yet"
    minutes = _duration_minutes(record)
    duration = "%s minutes" % minutes if minutes is not None else "[X minutes]"
    status = incident_status(record)
    initial = "\n".join([
        "INCIDENT ALERT - %s" % sev,
        "",
        "Status: Investigating",
        "Incident: %s" % record.get("id"),
        "Started: %s" % record.get("started"),
        "Impact: %s" % impact,
        "Affected: %s" % affected,
        "",
        "We are investigating and will provide updates every 15 minutes.",
    ])
    update = "\n".join([
        "INCIDENT UPDATE - %s" % sev,
        "",
        "Status: %s" % status,
        "Incident: %s" % record.get("id"),
        "Duration: %s" % duration,
        "Actions Taken: %s" % action_text,
        "ETA Resolution: %s" % ("now" if status == "Monitoring" else "TBD"),
        "",
        "Next update in 15 minutes.",
    ])
    root = worst[0] if worst else None
    resolved = "\n".join([
        "INCIDENT RESOLVED - %s" % sev,
        "",
        "Resolved At: %s" % (record.get("ended") if is_resolved(record) else "[not resolved yet]"),
        "Incident: %s" % record.get("id"),
        "Total Duration: %s" % duration,
        "Root Cause: %s" % ("[to confirm] %s: %s" % (root.get("code"), _fill(root.get("message"), 160))
                            if root else "[Brief description]"),
        "Impact: %s" % impact,
        "Actions Taken: %s" % action_text,
        "",
        "Post-mortem will be shared within 24 hours.",
        "Thank you for your patience.",
    ])
    return {"initial": initial, "update": update, "resolved": resolved}


def _md_cell(value):
    return _fill(value).replace("|", "\\|") if value not in (None, "") else "-"


def render_markdown(record):
    """The Markdown twin of the JSON record: summary, notices, timeline, state, post-mortem."""
    who = record.get("operator", {})
    lines = [
        "# Incident %s: %s / %s" % (record.get("id"), record.get("runbook"), record.get("phase")),
        "",
        "| field | value |",
        "|---|---|",
        "| severity | %s (%s) |" % (record.get("severity"), record.get("severity_source")),
        "| outcome of this run | %s |" % record.get("outcome"),
        "| mode | %s |" % ("check (nothing changed)" if record.get("check_mode") else "run"),
        "| started (UTC) | %s |" % record.get("started"),
        "| this run (UTC) | %s to %s |" % (record.get("run_started"), record.get("ended")),
        "| hosts | %s |" % _md_cell(", ".join(record.get("hosts", []))),
        "| run by | %s |" % _md_cell(who.get("user")),
    ]
    if who.get("awx_job_id") not in (None, ""):
        lines.append("| AWX job | %s (%s) |" % (who.get("awx_job_id"), _md_cell(who.get("awx_job_template_name"))))
    if who.get("awx_workflow_job_id") not in (None, ""):
        lines.append("| AWX workflow job | %s |" % who.get("awx_workflow_job_id"))
    lines.append("| playbook | %s |" % _md_cell(record.get("playbook")))
    counts = record.get("counts", {})
    lines += [
        "| findings | %s critical, %s warning, %s info |" % (
            counts.get("critical", 0), counts.get("warning", 0), counts.get("info", 0)),
        "| actions (changed tasks) | %s |" % counts.get("actions", 0),
        "| failed tasks | %s |" % counts.get("failures", 0),
        "",
        "## Communication",
        "",
    ]
    notices = record.get("communication", {})
    for key, title in (("initial", "Initial notification"), ("update", "Update"), ("resolved", "Resolution")):
        lines += ["### %s" % title, "", "```", notices.get(key, ""), "```", ""]
    lines += ["## Timeline (UTC)", "", "| time | run | host | kind | what |", "|---|---|---|---|---|"]
    for event in record.get("timeline", []):
        what = event.get("message") or ""
        if event.get("task"):
            what = "%s: %s" % (event.get("task"), what) if what else event.get("task")
        if event.get("code"):
            what = "[%s %s] %s" % (event.get("severity"), event.get("code"), what)
        lines.append("| %s | %s | %s | %s | %s |" % (
            event.get("time"), event.get("run"), _md_cell(event.get("host")), event.get("kind"), _md_cell(what)))
    lines += ["", "## State before and after", ""]
    states = record.get("state", {})
    if not states:
        lines.append("No state was recorded (tasks publish it as the `target_status` or `sre_state` fact).")
    for host in sorted(states):
        lines += ["### %s" % host, "", "| | state |", "|---|---|",
                  "| before | `%s` |" % _md_cell(states[host].get("before")),
                  "| after | `%s` |" % _md_cell(states[host].get("after")), ""]
    lines += ["", "## Runs", "", "| # | runbook | phase | started | ended | outcome | by |", "|---|---|---|---|---|---|---|"]
    for index, run in enumerate(record.get("runs", []), 1):
        lines.append("| %d | %s | %s | %s | %s | %s | %s |" % (
            index, run.get("runbook"), run.get("phase"), run.get("started"), run.get("ended"),
            run.get("outcome"), _md_cell(run.get("user"))))
    lines += [
        "",
        "## Post-mortem (within 48 hours)",
        "",
        "1. **Timeline of events**: start from the timeline above; add detection time and who was paged.",
        "2. **Root cause analysis**: ",
        "3. **Impact assessment** (users, revenue, downtime): ",
        "4. **What went well**: ",
        "5. **What went poorly**: ",
        "6. **Action items** (with owners and deadlines):",
        "   - [ ] ",
        "",
        "### Post-incident checklist",
        "",
        "- [ ] Incident documented in `incidents/` folder",
        "- [ ] Root cause analysis completed",
        "- [ ] Post-mortem meeting scheduled",
        "- [ ] Preventive measures identified",
        "- [ ] Tickets created for preventive measures",
        "- [ ] Communication sent to affected users",
        "- [ ] Runbook updated if needed",
        "- [ ] Monitoring/alerts improved",
        "",
    ]
    return "\n".join(lines)


def chat_text(record):
    """One short Slack-compatible line for the webhook."""
    counts = record.get("counts", {})
    who = record.get("operator", {})
    by = who.get("user") or "unknown"
    if who.get("awx_job_id") not in (None, ""):
        by = "%s (AWX job %s)" % (by, who.get("awx_job_id"))
    return "[%s] %s %s/%s%s on %s: %s, %d critical / %d warning findings, %d actions, status %s, by %s" % (
        record.get("severity"), record.get("id"), record.get("runbook"), record.get("phase"),
        " (check mode)" if record.get("check_mode") else "",
        ", ".join(record.get("hosts", [])) or "no hosts", record.get("outcome"),
        counts.get("critical", 0), counts.get("warning", 0), counts.get("actions", 0),
        incident_status(record), by)


# -- notices posted to the webhook -----------------------------------------------------------------------------------
# The callback posts three kinds of notice: "initial" when a run opens a new incident, then at the end of every run
# "update" (the incident goes on) or "resolved" (is_resolved, never in check mode). The wording is runbook 003's
# (the default); an app whose own runbook has a response template uses that one instead: runbook 002's "Critical Error
# Response Template" (INCIDENT RESPONSE - <service>, SEVERITY CRITICAL/HIGH/MEDIUM/LOW, STATUS
# INVESTIGATING/MITIGATING/MONITORING/RESOLVED) for sme-booking-app (the inventories' sre_app_name).
NOTICE_KINDS = ("initial", "update", "resolved")
APP_TEMPLATES = {"sme-booking-app": "002"}
# runbook 002's SEVERITY words for the levels of each scale (its escalation table: CRITICAL, HIGH, MEDIUM, LOW)
SEVERITY_WORDS = {"P1-P4": {"P1": "CRITICAL", "P2": "HIGH", "P3": "MEDIUM", "P4": "LOW"},
                  "P0-P3": {"P0": "CRITICAL", "P1": "HIGH", "P2": "MEDIUM", "P3": "LOW"}}
# 003's status words (incident_status) in 002's: a cause identified is still being investigated until a fix runs
STATUS_002 = {"Investigating": "INVESTIGATING", "Identified": "INVESTIGATING", "Fixing": "MITIGATING",
              "Monitoring": "MONITORING"}
NEXT_STEPS = {
    "Investigating": "Run the diagnose of the runbook that fits the symptoms",
    "Identified": "Remediate the root cause with the runbook's remediate playbook (it asks for confirmation)",
    "Fixing": "Finish the remediation, then run the diagnose again",
    "Monitoring": "Verify and watch the error rate until the incident can be resolved",
    "Resolved": "Write the post-mortem within 48 hours and work through the post-incident checklist",
}


def default_severity(scale=DEFAULT_SCALE):
    """The severity of an incident nothing has rated yet: the scale's lowest level (what severity_from gives
    without findings); the first findings raise it."""
    return SEVERITY_SCALES[scale if scale in SEVERITY_SCALES else DEFAULT_SCALE][-1]


def notice_template(apps):
    """Which source runbook's wording the notices use: '002' when every app of the run is one of runbook 002's
    (APP_TEMPLATES), else '003' (also for a run without app names or over apps of different runbooks)."""
    templates = set(APP_TEMPLATES.get(str(app)) for app in apps or ())
    return templates.pop() if len(templates) == 1 and None not in templates else "003"


def notice_kind(record):
    """The notice the end of a run posts: 'resolved' when the run resolved the incident, else 'update'. A check-mode
    run changed nothing, so it never resolves."""
    return "resolved" if is_resolved(record) and not record.get("check_mode") else "update"


def _by(operator):
    by = operator.get("user") or "unknown"
    if operator.get("awx_job_id") not in (None, ""):
        by = "%s (AWX job %s)" % (by, operator.get("awx_job_id"))
    return by


def _host_list(hosts, cap=20):
    hosts = list(hosts or [])
    return ", ".join(hosts[:cap]) + (" and %d more" % (len(hosts) - cap) if len(hosts) > cap else "")


def _affected(start):
    hosts = _host_list(start.get("hosts")) or "[none matched yet]"
    return hosts + (" (limit %s)" % start["limit"] if start.get("limit") else "")


def _severity_note(start):
    if start.get("severity_source") == "override":
        return "%s (set by sre_severity)" % start.get("severity")
    return "%s (provisional: the %s scale's default until the findings rate it)" % (
        start.get("severity"), start.get("severity_scale") or DEFAULT_SCALE)


def start_summary(start):
    """The one-line summary of a run that opens an incident (the first line of the initial notice)."""
    return "[%s] %s %s/%s%s on %s: started%s, status Investigating, by %s" % (
        start.get("severity"), start.get("id"), start.get("runbook"), start.get("phase"),
        " (check mode)" if start.get("check_mode") else "", _host_list(start.get("hosts")) or "no hosts",
        " on alert %s" % start["alert"] if start.get("alert") else "", _by(start.get("operator") or {}))


def initial_notice(start):
    """The initial notice (runbook 003's "INCIDENT ALERT", or 002's "INCIDENT RESPONSE" when the run's apps are
    002's) filled with what is known when a run opens the incident. start: id, runbook, phase, severity,
    severity_source (override or default), severity_scale, started, hosts, limit, alert, apps, check_mode,
    operator."""
    runbook = "%s/%s%s" % (start.get("runbook"), start.get("phase"), " (check mode)" if start.get("check_mode") else "")
    impact = "Alert %s is firing; %s is assessing it" % (start["alert"], runbook) if start.get("alert") else \
        "Being assessed by %s" % runbook
    if notice_template(start.get("apps")) == "002":
        return _response_002(
            service=", ".join(sorted(set(start.get("apps") or []))), time=start.get("started"),
            severity=start.get("severity"), scale=start.get("severity_scale"), status="INVESTIGATING",
            incident=start.get("id"), impact=impact, affected=_affected(start), root="[Under investigation]",
            actions=[], error_rate="[not measured yet]", eta="TBD", next_steps=[NEXT_STEPS["Investigating"]],
            updates=["[%s] - Incident opened by %s, run by %s"
                     % (_hhmm(start.get("started")), runbook, _by(start.get("operator") or {}))])
    return "\n".join([
        "INCIDENT ALERT - %s" % start.get("severity"),
        "",
        "Status: Investigating",
        "Incident: %s" % start.get("id"),
        "Started: %s" % start.get("started"),
        "Impact: %s" % impact,
        "Affected: %s" % _affected(start),
        "Severity: %s" % _severity_note(start),
        "Runbook: %s" % runbook,
        "",
        "We are investigating and will provide updates every 15 minutes.",
    ])


def _hhmm(moment):
    text = str(moment or "")
    return text[11:16] if len(text) >= 16 else "--:--"


def _response_002(service, time, severity, scale, status, incident, impact, affected, root, actions, error_rate, eta,
                  next_steps, updates):
    """Runbook 002's "Critical Error Response Template", filled in."""
    word = SEVERITY_WORDS.get(scale or DEFAULT_SCALE, SEVERITY_WORDS[DEFAULT_SCALE]).get(severity)
    return "\n".join([
        "INCIDENT RESPONSE - %s" % (service or "[SERVICE NAME]"),
        "================================",
        "",
        "TIME: %s" % time,
        "SEVERITY: %s" % ("%s (%s)" % (word, severity) if word else severity),
        "STATUS: %s" % status,
        "INCIDENT: %s" % incident,
        "",
        "IMPACT:",
        "- Users Affected: [to assess]",
        "- Hosts Affected: %s" % affected,
        "- Features Down: %s" % impact,
        "- Revenue Impact: [$/hour if applicable]",
        "",
        "ROOT CAUSE:",
        root,
        "",
        "ACTIONS TAKEN:",
    ] + (["- %s" % action for action in actions] or ["- None yet"]) + [
        "",
        "CURRENT STATUS:",
        "- Error Rate: %s" % error_rate,
        "- Recovery ETA: %s" % eta,
        "",
        "NEXT STEPS:",
    ] + ["- %s" % step for step in next_steps] + [
        "",
        "UPDATES:",
    ] + updates)


def _notice_002(record, kind):
    """Runbook 002's template for the update or the resolution of record."""
    status = incident_status(record)
    worst = _worst_findings(record)
    root = worst[0] if worst else None
    root_text = "[to confirm] %s: %s" % (root.get("code"), _fill(root.get("message"), 160)) if root else \
        "[Under investigation]" if kind != "resolved" else "[Brief description]"
    rates = [f for f in record.get("findings", []) if f.get("code") == "error_rate_over_threshold"
             and f.get("run") in (None, record.get("run_index"))]
    error_rate = "; ".join(_fill(f.get("message"), 160) for f in rates[:2]) or "[not measured by this run]"
    updates = ["[%s] - %s/%s: %s" % (_hhmm(run.get("ended")), run.get("runbook"), run.get("phase"), run.get("outcome"))
               for run in record.get("runs", [])]
    resolved = kind == "resolved"
    minutes = _duration_minutes(record)
    if resolved:
        updates.append("[%s] - Resolved after %s" % (
            _hhmm(record.get("ended")), "%s minutes" % minutes if minutes is not None else "[X minutes]"))
    return _response_002(
        service=", ".join(sorted(set(record.get("apps") or []))), time=record.get("ended"),
        severity=record.get("severity"), scale=record.get("severity_scale"),
        status="RESOLVED" if resolved else STATUS_002.get(status, status.upper()), incident=record.get("id"),
        impact=_impact(record, worst), affected=", ".join(record.get("hosts", [])) or "[none]", root=root_text,
        actions=["%s on %s at %s" % (_fill(e.get("task"), 80), e.get("host"), _hhmm(e.get("time")))
                 for e in _actions(record)],
        error_rate=error_rate, eta="resolved" if resolved else "now" if status == "Monitoring" else "TBD",
        next_steps=[NEXT_STEPS["Resolved" if resolved else status]], updates=updates)


def end_notice(record, kind=None):
    """(kind, text) of the notice the end of a run posts: kind 'update' or 'resolved' (notice_kind when None); text
    is the one-line summary (chat_text), a blank line, then the template of the run's apps (003's, or 002's)."""
    kind = kind or notice_kind(record)
    if notice_template(record.get("apps")) == "002":
        body = _notice_002(record, kind)
    else:
        body = (record.get("communication") or communication(record))[kind]
    return kind, chat_text(record) + "\n\n" + body


def start_notice(start):
    """The text of the initial notice: the one-line summary (start_summary), a blank line, the template."""
    return start_summary(start) + "\n\n" + initial_notice(start)


def notice_payload(kind, text, summary, incident_id, severity, status):
    """The Slack-compatible JSON object posted to the webhook: text (what Slack shows; its first line is the
    one-line summary, as before), and fields for other consumers."""
    return {"text": text, "kind": kind, "summary": summary, "incident": incident_id, "severity": severity,
            "status": status}


def parse_notices(value):
    """The notice kinds to post from the webhook_notices option (a list or a comma-separated string; 'all' is the
    three, 'none' or empty posts nothing). Returns (kinds, unknown names)."""
    if value is None:
        return list(NOTICE_KINDS), []
    items = value.split(",") if isinstance(value, str) else list(value)
    names = [str(item).strip().lower() for item in items if str(item).strip()]
    if "all" in names:
        return list(NOTICE_KINDS), [n for n in names if n not in NOTICE_KINDS + ("all", "none")]
    aliases = {"resolution": "resolved", "start": "initial"}
    kinds = []
    unknown = []
    for name in names:
        name = aliases.get(name, name)
        if name in NOTICE_KINDS:
            if name not in kinds:
                kinds.append(name)
        elif name != "none":
            unknown.append(name)
    return kinds, unknown
