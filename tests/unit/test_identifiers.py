# SPDX-License-Identifier: GPL-3.0-or-later
"""The one identifier rule (plugins/module_utils/_identifiers.py), its filter sre.runbooks.sql_identifier, and
_orphans (pg_orphans) using it."""

from __future__ import annotations

import sys

import pytest
from ansible.errors import AnsibleFilterError

from conftest import ensure_collection_link

sys.path.insert(0, str(ensure_collection_link()))
from ansible_collections.sre.runbooks.plugins.filter.sql_identifier import sql_identifier  # noqa: E402
from ansible_collections.sre.runbooks.plugins.module_utils import _identifiers as ident  # noqa: E402
from ansible_collections.sre.runbooks.plugins.module_utils import _orphans  # noqa: E402

ACCEPTED = [
    # (name, parts allowed, parts, quoted)
    ("users", 1, ("users",), '"users"'),
    ("password_hash", 1, ("password_hash",), '"password_hash"'),
    ("_x$1", 1, ("_x$1",), '"_x$1"'),
    ("User", 1, ("User",), '"User"'),
    ('"User"', 1, ("User",), '"User"'),
    ('"passwordHash"', 1, ("passwordHash",), '"passwordHash"'),
    ('"menuId"', 1, ("menuId",), '"menuId"'),
    ('"Category"', 2, ("Category",), '"Category"'),
    ("shop.items", 2, ("shop", "items"), '"shop"."items"'),
    ('shop."Odd Name"', 2, ("shop", "Odd Name"), '"shop"."Odd Name"'),
    ('"public"."User"', 2, ("public", "User"), '"public"."User"'),
    ('"1st"', 1, ("1st",), '"1st"'),
    ('"café"', 1, ("café",), '"café"'),
    ("a" * 63, 1, ("a" * 63,), '"%s"' % ("a" * 63)),
]

REFUSED = [
    # (name, parts allowed, part of the message)
    ("", 1, "empty name"),
    ('""', 1, "empty quoted name"),
    ('"us"ers"', 1, "unexpected"),
    ('"a""b"', 1, "unexpected"),
    ('"unterminated', 1, "unterminated double quote"),
    ("users; DROP TABLE users", 1, "unexpected ';'"),
    ('"users;"', 1, "';' is not allowed inside quotes"),
    ("my table", 1, "unexpected ' '"),
    (" users", 1, "unexpected ' '"),
    ("users ", 1, "unexpected ' '"),
    ("1users", 1, "unexpected '1'"),
    ("user-name", 1, "unexpected '-'"),
    ("users'", 1, "unexpected \"'\""),
    ('"a\\b"', 1, "not allowed inside quotes"),
    ('"a\nb"', 1, "not allowed inside quotes"),
    ("shop.items", 1, "at most 1 part"),
    ("a.b.c", 2, "at most 2 part"),
    ("shop.", 2, "ends with a dot"),
    (".items", 2, "unexpected '.'"),
    ("a" * 64, 1, "longer than 63 bytes"),
    ('"%s"' % ("é" * 32), 1, "longer than 63 bytes"),
    (None, 1, "expected a text"),
    (12, 1, "expected a text"),
]


@pytest.mark.parametrize("name, parts, expected, quoted", ACCEPTED)
def test_accepted(name, parts, expected, quoted):
    assert ident.split_identifier(name, parts) == expected
    assert ident.quote_identifier(name, parts) == quoted
    assert ident.is_identifier(name, parts)
    assert sql_identifier(name, parts=parts) == quoted
    assert sql_identifier(name, parts=parts, quote=False) == ".".join(expected)


@pytest.mark.parametrize("name, parts, message", REFUSED)
def test_refused(name, parts, message):
    with pytest.raises(ident.IdentifierError) as err:
        ident.split_identifier(name, parts)
    assert message in str(err.value)
    assert not ident.is_identifier(name, parts)
    with pytest.raises(AnsibleFilterError) as ferr:
        sql_identifier(name, parts=parts, what="login_users_table")
    assert str(ferr.value).startswith("login_users_table: ") and message in str(ferr.value)


def test_orphans_uses_the_rule():
    rels = _orphans.normalize_relations([{"child": '"Category"', "column": '"menuId"', "parent": '"Menu"'},
                                         {"child": "shop.items", "column": "category_id", "parent": "categories"}])
    assert rels[0] == {"child": '"Category"', "column": "menuId", "parent": '"Menu"', "parent_column": "id"}
    assert _orphans.split_table('"Category"') == ("Category",)
    assert _orphans.quoted_name('shop."Odd Name"') == '"shop"."Odd Name"'
    for bad in ({"child": "items; x", "column": "c", "parent": "p"}, {"child": "i", "column": '"a"b"', "parent": "p"}):
        with pytest.raises(ValueError):
            _orphans.normalize_relations([bad])
