#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: env_file
short_description: Read the names in an env file, and set secret values in it, quoted for its readers
version_added: 0.1.0
description:
  - Reads the C(NAME=value) statements of an env file and returns the names (never the values), and which of
    them are empty.
  - With O(values), sets each name to its value. The last statement of a name is replaced when its value
    differs (an C(export) prefix is kept), and missing names are appended. Other lines, comments and
    multi-line values are kept as they are. The file is replaced atomically, and its mode and owner are kept.
  - Values are quoted for the readers of O(format), so that spaces, C(#), quotes, C($), backslashes and
    newlines read back exactly. Values never appear in the result, in messages or in a diff.
author:
  - sre.runbooks contributors (@sre-runbooks)
attributes:
  check_mode:
    support: full
    description:
      - In check mode the result says which names would change; the file is not written.
  diff_mode:
    support: none
    description:
      - No diff is returned, because the values are secrets. RV(changed_names) says what changed.
options:
  path:
    description:
      - The env file.
    type: path
    required: true
  values:
    description:
      - Names and the values to set. Names must match C(^[A-Za-z_][A-Za-z0-9_]*$).
      - Empty (the default) only reads the names.
    type: dict
    default: {}
  format:
    description:
      - V(shell) is for files read by POSIX sh (C(set -a; . file)) and systemd C(EnvironmentFile=). Single
        quotes are literal, and a quote is written C('\\'').
      - V(dotenv) is for files read by python-dotenv (C(\\\\) and C(\\') escapes in single quotes). Values
        without C(') or C(\\) are written so that docker compose and node's dotenv read them the same way;
        for others the module warns, naming the variable. A value holding C(${...}) is refused, because
        python-dotenv expands it in every value and has no escape for it.
    type: str
    choices: [shell, dotenv]
    default: dotenv
  create:
    description:
      - Create the file (mode C(0600)) when it is missing and O(values) are set. Otherwise a missing file is
        an error when values are set, and is reported with RV(exists) when only reading.
    type: bool
    default: false
notes:
  - Statements whose value depends on the shell (C($VAR), a command substitution, a C(${VAR}) interpolation)
    cannot be compared; setting such a name replaces the statement.
"""

EXAMPLES = r"""
- name: Read the names in the app's env file
  sre.runbooks.env_file:
    path: /srv/app/shared/.env
    format: shell
  register: env

- name: Set two secrets from the vault
  sre.runbooks.env_file:
    path: /srv/app/shared/.env
    format: shell
    values:
      DATABASE_URL: "{{ vault_database_url }}"
      SESSION_SECRET: "{{ vault_session_secret }}"
  no_log: true
"""

RETURN = r"""
exists:
  description: Whether the file existed before the module ran.
  returned: always
  type: bool
readable:
  description: Whether the file could be read (false when it is missing or not readable; only reading).
  returned: always
  type: bool
names:
  description: The names set in the file (after the change), in order of first appearance.
  returned: always
  type: list
  elements: str
  sample: [PORT, DATABASE_URL, SESSION_SECRET]
empty:
  description: Names whose value is empty.
  returned: always
  type: list
  elements: str
changed_names:
  description: Names that were (or in check mode would be) set or replaced.
  returned: always
  type: list
  elements: str
format:
  description: The format used.
  returned: always
  type: str
"""

import os
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes, to_text

from ansible_collections.sre.runbooks.plugins.module_utils._envfile import (
    DOTENV_INTERPOLATION_RE, FORMATS, NAME_RE, EnvFileError, names, parse, portable, update,
)


def read(path):
    with open(path, "rb") as handle:
        return to_text(handle.read(), errors="surrogate_or_strict")


def write(module, path, text, existed):
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(to_bytes(text, errors="surrogate_or_strict"))
            handle.flush()
            os.fsync(handle.fileno())
        if not existed:
            os.chmod(tmp, 0o600)
    except OSError:
        os.unlink(tmp)
        raise
    # atomic_move keeps the mode, owner and SELinux context of an existing file
    module.atomic_move(tmp, path)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            values=dict(type="dict", default={}, no_log=True),
            format=dict(type="str", choices=list(FORMATS), default="dotenv"),
            create=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    path = module.params["path"]
    fmt = module.params["format"]
    values = dict((to_text(k), to_text(v) if v is not None else "") for k, v in module.params["values"].items())
    result = dict(changed=False, exists=os.path.exists(path), readable=False, names=[], empty=[], changed_names=[],
                  format=fmt)

    bad = sorted(name for name in values if not NAME_RE.match(name))
    if bad:
        module.fail_json(msg="setting values in %s: invalid names %s (letters, digits and _, not starting with a digit)"
                         % (path, ", ".join(bad)), **result)
    if any("\0" in value for value in values.values()):
        module.fail_json(msg="setting values in %s: the value of %s holds a NUL character, which an env file cannot"
                         % (path, ", ".join(sorted(n for n, v in values.items() if "\0" in v))), **result)

    if fmt == "dotenv":
        expanded = sorted(name for name, value in values.items() if DOTENV_INTERPOLATION_RE.search(value))
        if expanded:
            module.fail_json(msg="setting values in %s: the value of %s holds ${...}, which python-dotenv expands in "
                             "every value with no escape for it, so it cannot be written exactly (use format shell)"
                             % (path, ", ".join(expanded)), **result)

    if result["exists"]:
        if not os.path.isfile(path):
            module.fail_json(msg="reading %s: not a regular file" % path, **result)
        try:
            text = read(path)
        except (OSError, IOError) as exc:
            if not values:
                result["msg"] = "%s is not readable: %s" % (path, exc.strerror or exc)
                module.exit_json(**result)
            module.fail_json(msg="reading %s: %s" % (path, exc.strerror or exc), **result)
        except UnicodeError:
            module.fail_json(msg="reading %s: not UTF-8 text" % path, **result)
        result["readable"] = True
    elif values and not module.params["create"]:
        module.fail_json(msg="setting values in %s: the file is missing (not creating it: create is false)" % path,
                         **result)
    else:
        text = ""

    try:
        result["names"], result["empty"] = names(parse(text, fmt))
        if not values:
            module.exit_json(**result)
        new_text, changed = update(text, values, fmt)
        result["names"], result["empty"] = names(parse(new_text, fmt))
    except EnvFileError as exc:
        module.fail_json(msg="%s %s as a %s env file: %s" % ("updating" if values else "reading", path, fmt, exc),
                         **result)

    if fmt == "dotenv":
        for name in changed:
            if not portable(values[name]):
                module.warn("the value of %s holds ' or \\: written for python-dotenv; docker compose and node dotenv "
                            "read those escapes literally (use format shell for sh and systemd)" % name)
    result["changed_names"] = changed
    result["changed"] = bool(changed)
    if changed and not module.check_mode:
        try:
            write(module, path, new_text, result["exists"])
        except (OSError, IOError) as exc:
            module.fail_json(msg="writing %s: %s" % (path, exc.strerror or exc), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
