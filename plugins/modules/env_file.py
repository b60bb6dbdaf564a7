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
    multi-line values are kept as they are.
  - The file is replaced atomically (a temporary file in the same directory, fsync, rename). An existing file
    keeps its mode and owner (its mode is never loosened), a new file is created C(0600). When O(path) is a
    symlink, the file it points to is written and the link stays.
  - Before an existing file is changed, its previous content is kept in a C(0600) backup next to it
    (C(<file>.<UTC stamp>~)), named in RV(backup_file).
  - With O(restore_from), puts back the content of one of those backups (a way back after a change); the newest
    with V(latest), or the one named. The current content is kept first in a backup tagged C(before-restore)
    (C(<file>.<UTC stamp>.before-restore~)), which V(latest) never picks, so a second restore of V(latest)
    finds the file already restored and changes nothing. RV(changed_names) names what differs.
  - Values are quoted for the readers of O(format), so that spaces, C(#), quotes, C($), backslashes and
    newlines read back exactly. Values never appear in the result, in messages or in a diff.
author:
  - sre.runbooks contributors (@sre-runbooks)
attributes:
  check_mode:
    support: full
    description:
      - In check mode the result says which names would change, and the checks a real run makes before writing
        (a missing file without O(create), a missing or unwritable directory) fail in the same way; nothing is
        written and no backup is made.
  diff_mode:
    support: full
    description:
      - The diff lists the names only, as C(NAME=<hidden>) (C(NAME=) when empty) and C(NAME=<hidden, changed>)
        for the names set; values never appear, because they are secrets.
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
  backup:
    description:
      - Keep the previous content of an existing file in a C(0600) file next to it before changing it.
    type: bool
    default: true
  restore_from:
    description:
      - V(latest) (the newest backup of O(path) not tagged C(before-restore)) or the path of one of its backups,
        as RV(backups) lists them. Its content replaces the file's. Not with O(values).
    type: str
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
dest:
  description: The file read and written, O(path) or, when O(path) is a symlink, the file it points to.
  returned: always
  type: str
backup_file:
  description: The backup of the previous content (mode C(0600)); null when no backup was made (nothing
    changed, a new file, check mode, O(backup=false)).
  returned: always
  type: str
  sample: /srv/app/shared/.env.20240501T120003Z~
backups:
  description: The backups of the file next to it, newest first (those tagged C(before-restore) included).
  returned: when O(restore_from) is set
  type: list
  elements: str
compared_with:
  description: The backup O(restore_from) chose, whether or not the file differed from it.
  returned: when O(restore_from) is set
  type: str
restored_from:
  description: The backup whose content was (or in check mode would be) put back; null when nothing changed.
  returned: when O(restore_from) is set
  type: str
  sample: /srv/app/shared/.env.20240501T120003Z~
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes, to_text

from ansible_collections.sre.runbooks.plugins.module_utils._envfile import (
    DOTENV_INTERPOLATION_RE, FORMATS, NAME_RE, EnvFileError, backups, differing_names, names, parse, portable,
    resolve, skeleton, update, write_through,
)


def read(path):
    with open(path, "rb") as handle:
        return to_text(handle.read(), errors="surrogate_or_strict")


def check_writable(module, path, dest, result):
    """Fail, in check mode as in a real run, when dest cannot be written (its directory is missing or not
    writable: the temporary file goes there)."""
    directory = os.path.dirname(dest)
    if not os.path.isdir(directory):
        module.fail_json(msg="writing %s: the directory %s is missing" % (path, directory), **result)
    if not os.access(directory, os.W_OK | os.X_OK):
        module.fail_json(msg="writing %s: the directory %s is not writable" % (path, directory), **result)


def write(module, path, text, backup, tag=""):
    """Write text through path (a symlink is followed), keeping the SELinux context; return the backup path."""
    dest = resolve(path)
    context = None
    if module.selinux_enabled():
        context = module.selinux_context(dest) if os.path.exists(dest) else module.selinux_default_context(dest)
    dummy, saved = write_through(path, to_bytes(text, errors="surrogate_or_strict"), backup=backup, tag=tag)
    if context is not None:
        module.set_context_if_different(dest, context, False)
    return saved


def restore(module):
    """restore_from: put back the content of a backup of path, keeping the current content first."""
    path, fmt, wanted = module.params["path"], module.params["format"], module.params["restore_from"]
    dest = resolve(path)
    result = dict(changed=False, exists=os.path.exists(path), readable=False, names=[], empty=[], changed_names=[],
                  format=fmt, dest=dest, backup_file=None, backups=[], restored_from=None, compared_with=None)
    if not result["exists"] or not os.path.isfile(dest):
        module.fail_json(msg="restoring %s: the file is missing or not a regular file (nothing restored)" % path,
                         **result)
    found = backups(dest)
    result["backups"] = [p for p, dummy in found]
    if wanted == "latest":
        plain = [p for p, tagged in found if not tagged]
        if not plain:
            module.fail_json(msg="restoring %s: no backup of it next to it (%s.<UTC stamp>~); nothing was changed"
                             % (path, dest), **result)
        source = plain[0]
    else:
        source = os.path.abspath(wanted)
        if source not in result["backups"]:
            module.fail_json(msg="restoring %s: %s is not one of its backups (%s); nothing was changed"
                             % (path, wanted, ", ".join(result["backups"]) or "none"), **result)
    result["compared_with"] = source
    try:
        current, saved = read(dest), read(source)
    except (OSError, IOError) as exc:
        module.fail_json(msg="restoring %s from %s: %s" % (path, source, exc.strerror or exc), **result)
    except UnicodeError:
        module.fail_json(msg="restoring %s from %s: not UTF-8 text" % (path, source), **result)
    result["readable"] = True
    try:
        result["names"], result["empty"] = names(parse(saved, fmt))
        result["changed_names"] = differing_names(current, saved, fmt)
    except EnvFileError as exc:
        module.fail_json(msg="reading %s or %s as a %s env file: %s" % (path, source, fmt, exc), **result)
    if current == saved:
        module.exit_json(**result)
    result.update(changed=True, restored_from=source)
    if module._diff:
        result["diff"] = dict(before_header=path, after_header=source, before=skeleton(current, fmt),
                              after=skeleton(saved, fmt, result["changed_names"]))
    check_writable(module, path, dest, result)
    if not module.check_mode:
        try:
            result["backup_file"] = write(module, dest, saved, True, tag="before-restore")
        except (OSError, IOError) as exc:
            module.fail_json(msg="writing %s: %s" % (path, exc.strerror or exc), **result)
    module.exit_json(**result)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            values=dict(type="dict", default={}, no_log=True),
            format=dict(type="str", choices=list(FORMATS), default="dotenv"),
            create=dict(type="bool", default=False),
            backup=dict(type="bool", default=True),
            restore_from=dict(type="str"),
        ),
        mutually_exclusive=[("values", "restore_from")],
        supports_check_mode=True,
    )
    if module.params["restore_from"]:
        restore(module)
    path = module.params["path"]
    fmt = module.params["format"]
    values = dict((to_text(k), to_text(v) if v is not None else "") for k, v in module.params["values"].items())
    dest = resolve(path)
    result = dict(changed=False, exists=os.path.exists(path), readable=False, names=[], empty=[], changed_names=[],
                  format=fmt, dest=dest, backup_file=None)

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
    if changed and module._diff:
        before = set(names(parse(text, fmt))[0])
        result["diff"] = dict(before_header=path, after_header=path, before=skeleton(text, fmt),
                              after=skeleton(new_text, fmt, [name for name in changed if name in before]))
    if changed:
        check_writable(module, path, dest, result)
    if changed and not module.check_mode:
        try:
            result["backup_file"] = write(module, path, new_text, module.params["backup"])
        except (OSError, IOError) as exc:
            module.fail_json(msg="writing %s: %s" % (path, exc.strerror or exc), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
