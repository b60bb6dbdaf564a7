# -*- coding: utf-8 -*-
# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to the sre.runbooks collection: the pure helpers of pg_slow_queries (no server needed).

Literal redaction of SQL text, sequential scan hints, and the choice of the queries to cancel.
Not a public API: other collections must not import it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

# One pass over SQL text, left to right. Comments, quoted identifiers, words (identifiers, keywords, so the digits
# of t1 stay) and $n parameters are kept; string literals (standard, E'', dollar quoted, cut off at the end of the
# text too) and numbers become "?"; runs of white space become one space.
_SQL_TOKEN_RE = re.compile(
    r"""
      (?P<comment>--[^\n]*|/\*.*?(?:\*/|\Z))
    | (?P<ident>"(?:[^"]|"")*(?:"|\Z))
    | (?P<estring>[Ee]'(?:[^'\\]|''|\\.)*(?:'|\Z))
    | (?P<string>'(?:[^']|'')*(?:'|\Z))
    | (?P<dollar>\$(?P<tag>(?:[A-Za-z_][A-Za-z0-9_]*)?)\$.*?(?:\$(?P=tag)\$|\Z))
    | (?P<param>\$\d+)
    | (?P<word>[A-Za-z_\x80-\uffff][A-Za-z0-9_$\x80-\uffff]*)
    | (?P<number>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)
    | (?P<space>\s+)
    """,
    re.S | re.X,
)
_LITERALS = ("estring", "string", "dollar", "number")


def clean_query(text, length, redact=True):
    """SQL text for a report: literals replaced by ? (when redact), white space collapsed, cut to length."""
    if text is None:
        return None

    def repl(match):
        kind = match.lastgroup  # the outer group: "dollar" even when its tag matched
        if kind == "space":
            return " "
        if redact and kind in _LITERALS:
            return "?"
        return match.group(0)

    cleaned = _SQL_TOKEN_RE.sub(repl, str(text)).strip()
    if length is not None and len(cleaned) > length:
        cleaned = cleaned[:length]
    return cleaned


def seq_scan_hint(table, statements=()):
    """The index hint for a table read mostly by sequential scans (a dict of pg_stat_user_tables columns)."""
    scans = table["seq_scan"] or 0
    per_scan = int((table["seq_tup_read"] or 0) / scans) if scans else 0
    hint = ("%s.%s: %d sequential scans read %d rows (%d per scan, %d live rows) against %d index scans; "
            "an index on the columns its queries filter or join on would avoid reading the whole table"
            % (table["schema"], table["table"], scans, table["seq_tup_read"] or 0, per_scan, table["n_live_tup"] or 0,
               table["idx_scan"] or 0))
    reads = re.compile(r"\b(?:from|join|update)\s+(?:\"?%s\"?\.)?\"?%s\"?(?![\w\".])"
                       % (re.escape(table["schema"]), re.escape(table["table"])), re.IGNORECASE)
    for statement in statements:
        if statement.get("query") and reads.search(statement["query"]):
            hint += " (for example statement %s: %s)" % (statement.get("queryid"), statement["query"][:120])
            break
    return hint


def cancel_targets(rows, cancel_after, include_superusers=False, databases=(), users=(), applications=()):
    """Rows of the active client backends whose query runs for longer than cancel_after seconds.

    rows are the module's activity rows (dicts with pid, backend_type, state, duration_s, superuser, database,
    user, application); the module's own backend is never in them. Longest running first.
    """
    out = []
    for row in rows:
        if row.get("backend_type") != "client backend" or row.get("state") != "active":
            continue
        if row.get("duration_s") is None or row["duration_s"] <= cancel_after:
            continue
        if row.get("superuser") and not include_superusers:
            continue
        if databases and row.get("database") not in databases:
            continue
        if users and row.get("user") not in users:
            continue
        if applications and row.get("application") not in applications:
            continue
        out.append(row)
    out.sort(key=lambda r: (-r["duration_s"], r["pid"]))
    return out


def version_tuple(text):
    """(1, 10) for "1.10"; () for anything else."""
    try:
        return tuple(int(part) for part in str(text).split("."))
    except ValueError:
        return ()
