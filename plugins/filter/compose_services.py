# -*- coding: utf-8 -*-
# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
name: compose_services
short_description: The services of a compose project to read logs from, from C(docker ps)
version_added: 0.1.0
description:
  - Reads the lines C(<container id><TAB><service><TAB><status>) that C(docker ps -a --format) prints with the
    container ID, the C(com.docker.compose.service) label and the C(.Status) (C(Up 2 hours), C(Exited (1) ...))
    or C(.State) (C(running), C(exited)) of the containers of a project, and returns one item per service,
    C({service, ids, states, state, running}), the app's service first, then by name.
  - A service listed in O(wanted) with no container is returned with C(state=missing) and no C(ids).
  - A C(restarting) (crash-looping) container does not count as running.
author:
  - sre.runbooks contributors (@sre-runbooks)
options:
  _input:
    description: The standard output of that C(docker ps) command.
    type: str
    required: true
  wanted:
    description: The services to return; empty or holding V(*) returns every service found.
    type: list
    elements: str
  app:
    description: The app's own service, returned first.
    type: str
"""

EXAMPLES = r"""
- name: Every service of the project, the app's first
  ansible.builtin.set_fact:
    services: "{{ ps.stdout | sre.runbooks.compose_services(['*'], 'web') }}"
"""

RETURN = r"""
_value:
  description: One item per service, C({service, ids, states, state, running}).
  type: list
  elements: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.sre.runbooks.plugins.module_utils._compose_logs import ComposeLogsError, select_services


def compose_services(ps_output, wanted=None, app=None):
    try:
        return select_services(ps_output, wanted, app)
    except ComposeLogsError as exc:
        raise AnsibleFilterError(str(exc))


class FilterModule(object):
    def filters(self):
        return {"compose_services": compose_services}
