# -*- coding: utf-8 -*-
# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
name: compose_log_summary
short_description: Last lines and error counts of each compose service's logs, and the service whose logs show the cause
version_added: 0.1.0
description:
  - Takes the services of P(sre.runbooks.compose_services#filter) with the lines C(docker logs --timestamps) printed for
    their containers (C(lines), stdout and stderr together) and returns C(services), one summary per service
    C({service, containers, state, running, scanned, lines, error_count, errors, first_error, first_error_at}),
    lines in time order, and C(cause).
  - C(cause) C({service, reason, first_error, error_count}) names the service whose logs show the cause - among
    the services with error lines, one that is not running first, then the one whose first error came earliest
    (a database that failed before the app's connection errors, an app that died before the proxy's 502s), then
    the one with the most errors. C(service) is null when no log shows an error. When the service named is
    running, C(reason) also names the services that are stopped with no error line (a database shut down cleanly
    behind the app's connection errors).
author:
  - sre.runbooks contributors (@sre-runbooks)
options:
  _input:
    description: The services, each with C(service), C(ids), C(states), C(running) and C(lines).
    type: list
    elements: dict
    required: true
  error_regex:
    description: What an error line is (Python regular expression); default the target role's.
    type: str
  lines:
    description: Last lines kept per service.
    type: int
    default: 20
  errors:
    description: Last error lines kept per service.
    type: int
    default: 5
"""

EXAMPLES = r"""
- name: Summarise the logs of every service
  ansible.builtin.set_fact:
    summary: "{{ services_with_lines | sre.runbooks.compose_log_summary('(?i)error|fatal', 20) }}"
"""

RETURN = r"""
_value:
  description: C({services, cause}).
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.sre.runbooks.plugins.module_utils._compose_logs import ComposeLogsError, summarise


def compose_log_summary(services, error_regex=None, lines=20, errors=5):
    try:
        return summarise(services, error_regex, lines, errors)
    except ComposeLogsError as exc:
        raise AnsibleFilterError(str(exc))


class FilterModule(object):
    def filters(self):
        return {"compose_log_summary": compose_log_summary}
