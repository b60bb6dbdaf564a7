# -*- coding: utf-8 -*-
# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
name: sql_identifier
short_description: The one rule for a safe SQL identifier; returns it double-quoted
version_added: 0.2.0
description:
  - Accepts plain names (C([A-Za-z_][A-Za-z0-9_$]*), taken as written), double-quoted names such as C("User"),
    C("passwordHash"), C("menuId") (Prisma), and with O(parts=2) schema-qualified names (C(shop.items),
    C(shop."Odd Name")).
  - Refuses anything else with a message saying why, never a traceback; an empty name, a quote, semicolon,
    backslash or control character inside quotes, spaces or other characters outside quotes, more parts than
    O(parts), or a part over 63 bytes.
  - Returns the name double-quoted, ready for SQL (C("shop"."items")). The same rule is used by the
    C(sre.runbooks.pg_orphans) module.
author:
  - sre.runbooks contributors (@sre-runbooks)
options:
  _input:
    description: The name.
    type: str
    required: true
  parts:
    description: How many dot-separated parts are allowed (2 for C(schema.table)).
    type: int
    default: 1
  what:
    description: What the name is, for the error message (C(login_users_table)).
    type: str
    default: identifier
  quote:
    description:
      - V(false) returns the validated name without its quotes (C("menuId") gives C(menuId)), as the catalog
        (C(pg_attribute.attname)) spells it; parts are joined by dots.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Count the rows of a table named by a user
  community.postgresql.postgresql_query:
    query: "SELECT count(*) FROM {{ my_table | sre.runbooks.sql_identifier(parts=2, what='my_table') }}"
"""

RETURN = r"""
_value:
  description: The name double-quoted (each part), e.g. C("shop"."Odd Name"); unquoted with O(quote=false).
  type: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.sre.runbooks.plugins.module_utils._identifiers import (
    IdentifierError, quote_identifier, split_identifier,
)


def sql_identifier(name, parts=1, what="identifier", quote=True):
    try:
        if not quote:
            return ".".join(split_identifier(name, int(parts)))
        return quote_identifier(name, int(parts))
    except (IdentifierError, TypeError, ValueError) as exc:
        raise AnsibleFilterError("%s: %s; it must be a plain identifier or a double-quoted name (\"menuId\")" % (what, exc))


class FilterModule(object):
    def filters(self):
        return {"sql_identifier": sql_identifier}
