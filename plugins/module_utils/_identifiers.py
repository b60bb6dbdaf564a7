# -*- coding: utf-8 -*-
# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to the sre.runbooks collection: the one rule for a safe SQL identifier (filter sre.runbooks.sql_identifier,
pg_orphans through _orphans, the login and data_integrity roles).

A name is one to max_parts parts separated by dots (schema.table). Each part is either
  - plain: [A-Za-z_][A-Za-z0-9_$]*, taken as written (the roles double-quote it, so `User` means "User"), or
  - double-quoted: "..." holding any printable characters but a double quote, a semicolon, a backslash or a
    control character (Prisma's "User", "passwordHash", "menuId"; "Odd Name").
Each part is at most 63 bytes (NAMEDATALEN - 1) in UTF-8. Anything else is refused with a message saying why.
Not a public API: other collections must not import it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

MAX_BYTES = 63
_PLAIN_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_FORBIDDEN_QUOTED = re.compile(r'["\\;\x00-\x1f\x7f]')


class IdentifierError(ValueError):
    """Not an identifier; the message says why."""


def split_identifier(name, max_parts=1):
    """The parts of a validated name, unquoted (('shop', 'Odd Name')); IdentifierError for anything else."""
    if not isinstance(name, str):
        raise IdentifierError("%r is not an identifier: expected a text, got %s" % (name, type(name).__name__))
    if name == "":
        raise IdentifierError("an empty name is not an identifier")
    parts = []
    pos = 0
    while True:
        if name.startswith('"', pos):
            end = name.find('"', pos + 1)
            if end < 0:
                raise IdentifierError("%r is not an identifier: unterminated double quote" % (name,))
            part = name[pos + 1:end]
            if part == "":
                raise IdentifierError("%r is not an identifier: an empty quoted name" % (name,))
            bad = _FORBIDDEN_QUOTED.search(part)
            if bad:
                raise IdentifierError("%r is not an identifier: %r is not allowed inside quotes" % (name, bad.group(0)))
            pos = end + 1
        else:
            match = _PLAIN_RE.match(name, pos)
            if not match:
                char = name[pos] if pos < len(name) else "end of text"
                raise IdentifierError(
                    "%r is not an identifier: unexpected %r at position %d (plain names are [A-Za-z_][A-Za-z0-9_$]*; "
                    "double-quote other names, e.g. \"menuId\")" % (name, char, pos))
            part = match.group(0)
            pos = match.end()
        if len(part.encode("utf-8")) > MAX_BYTES:
            raise IdentifierError("%r is not an identifier: %r is longer than %d bytes" % (name, part, MAX_BYTES))
        parts.append(part)
        if pos == len(name):
            break
        if name[pos] != ".":
            raise IdentifierError("%r is not an identifier: unexpected %r at position %d" % (name, name[pos], pos))
        pos += 1
        if pos == len(name):
            raise IdentifierError("%r is not an identifier: it ends with a dot" % (name,))
    if len(parts) > max_parts:
        raise IdentifierError("%r is not an identifier: at most %d part(s) (%s) allowed, got %d"
                              % (name, max_parts, "schema.table" if max_parts == 2 else "no dots", len(parts)))
    return tuple(parts)


def quote_identifier(name, max_parts=1):
    """The double-quoted SQL text of a validated name ('"shop"."Odd Name"')."""
    return ".".join('"%s"' % part for part in split_identifier(name, max_parts))


def is_identifier(name, max_parts=1):
    try:
        split_identifier(name, max_parts)
    except IdentifierError:
        return False
    return True
