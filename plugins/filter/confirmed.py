# -*- coding: utf-8 -*-
# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
name: confirmed
short_description: Parse a confirmation answer (C(sre_confirm)) the one way the collection accepts
version_added: 0.2.0
description:
  - Returns V(true) for C(yes), C(y), C(true), C(on), C(1) (any case, or the boolean V(true)) and V(false) for
    C(no), C(n), C(false), C(off), C(0), an empty string, null (unset) or V(false).
  - Any other answer (C(maybe), C(2), a list) is an error naming the variable, so a mistyped survey answer never
    counts as "no" or as "yes" silently.
  - Every role's confirmation goes through this filter, inside the C(sre.runbooks.confirm) role.
author:
  - sre.runbooks contributors (@sre-runbooks)
options:
  _input:
    description: The answer, as set on the command line, in a survey or in the inventory.
    type: raw
    required: true
  name:
    description: The variable's name, for the error message.
    type: str
    default: sre_confirm
"""

EXAMPLES = r"""
- name: Decide once whether the change is confirmed
  ansible.builtin.set_fact:
    confirmed: "{{ sre_confirm | default(false) | sre.runbooks.confirmed }}"
"""

RETURN = r"""
_value:
  description: Whether the answer confirms the change.
  type: bool
"""

from ansible.errors import AnsibleFilterError

YES = frozenset(("yes", "y", "true", "on", "1"))
NO = frozenset(("no", "n", "false", "off", "0", "", "none", "null"))


def parse_confirm(value, name="sre_confirm"):
    """The answer as a bool; ValueError for anything that is not a yes or a no."""
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, int) and not isinstance(value, bool) and value in (0, 1):
        return value == 1
    if isinstance(value, str):
        word = value.strip().lower()
        if word in YES:
            return True
        if word in NO:
            return False
    raise ValueError("%s: %r is not an answer: use yes or no (true/false, 1/0 also work)" % (name, value))


def confirmed(value, name="sre_confirm"):
    try:
        return parse_confirm(value, name)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc))


class FilterModule(object):
    def filters(self):
        return {"confirmed": confirmed}
