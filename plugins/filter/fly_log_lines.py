# -*- coding: utf-8 -*-
# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
name: fly_log_lines
short_description: The lines of C(flyctl logs --json --no-tail) in a time window
version_added: 0.1.0
description:
  - Reads the log entries that C(flyctl logs --json --no-tail) prints (each one pretty-printed JSON, one object
    after another) and returns one text line per entry whose timestamp is at or after O(since).
  - Lines have flyctl's text form, C(<timestamp> <instance> <region> [<level>] <message>), in the order printed.
author:
  - sre.runbooks contributors (@sre-runbooks)
options:
  _input:
    description: The standard output of C(flyctl logs --json --no-tail).
    type: str
    required: true
  since:
    description:
      - Start of the window, epoch seconds. Entries before it, or without an RFC 3339 timestamp, are left out.
      - Omitted or null keeps every entry.
    type: float
"""

EXAMPLES = r"""
- name: Keep the Fly log lines of the last hour
  ansible.builtin.set_fact:
    lines: "{{ fly_logs.stdout | sre.runbooks.fly_log_lines(now().timestamp() - 3600) }}"
"""

RETURN = r"""
_value:
  description: One line per entry in the window.
  type: list
  elements: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.sre.runbooks.plugins.module_utils._targets import fly_log_lines as _lines, parse_fly_logs


def fly_log_lines(text, since=None):
    try:
        since = None if since is None or since == "" else float(since)
    except (TypeError, ValueError):
        raise AnsibleFilterError("fly_log_lines: since must be epoch seconds, got %r" % (since,))
    return _lines(parse_fly_logs(text if isinstance(text, str) else str(text or "")), since)


class FilterModule(object):
    def filters(self):
        return {"fly_log_lines": fly_log_lines}
