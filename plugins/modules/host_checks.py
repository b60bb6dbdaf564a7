#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: host_checks
short_description: The host checks of a diagnosis (port, filesystems, memory, units) in one call
version_added: 0.2.0
description:
  - Reads in one module call what a diagnosis asks of the host an app runs on, instead of one task per concern.
  - Whether a TCP port accepts a connection (retried until O(port_timeout)).
  - The use of the filesystems holding O(disk_paths), as C(df -P -B1) reports it (C(statvfs)).
  - The memory of the host (C(/proc/meminfo)).
  - The state of systemd units (C(systemctl show)), as C(running), C(stopped), C(failed) or C(missing).
  - Never changes anything.
author:
  - sre.runbooks contributors (@sre-runbooks)
attributes:
  check_mode:
    support: full
    description: The module only reads, so it runs the same way in check mode.
  diff_mode:
    support: none
    description: Nothing changes, so there is no diff.
options:
  port:
    description: TCP port to connect to; C(0) skips the port check.
    type: int
    default: 0
  port_host:
    description: Host the port check connects to.
    type: str
    default: 127.0.0.1
  port_timeout:
    description: Seconds during which the connection is retried before the port counts as closed.
    type: float
    default: 2.0
  disk_paths:
    description:
      - Paths whose filesystems are read. A filesystem holding several of them is listed once.
      - A path that does not exist is listed in RV(disk_missing), not failed on.
    type: list
    elements: path
    default: []
  disk_full_pct:
    description: Use (percent, as C(df) rounds it) from which a filesystem is listed in RV(disk_full).
    type: int
    default: 95
  memory:
    description: Read C(/proc/meminfo).
    type: bool
    default: true
  mem_min_available_pct:
    description: Memory available (percent of total) under which RV(memory_exhausted) is true.
    type: float
    default: 5
  units:
    description:
      - systemd units whose state is read; a name without a suffix gets C(.service).
      - On a host where systemd does not run (a container), the state is the LSB status of C(/etc/init.d/NAME)
        (C(missing) without such a script), as M(ansible.builtin.service_facts) falls back to C(service).
    type: list
    elements: str
    default: []
notes:
  - The port check answers the same question as M(ansible.builtin.wait_for) with O(port_timeout) as its
    C(timeout), and the unit state the one of M(ansible.builtin.service_facts), which lists every unit of the
    host; reading only the units asked for is what makes one call cheap.
seealso:
  - module: ansible.builtin.wait_for
  - module: ansible.builtin.service_facts
"""

EXAMPLES = r"""
- name: Check the host of the saasresto unit
  sre.runbooks.host_checks:
    port: 3000
    disk_paths: [/srv/saasresto, /]
    units: [caddy]
  register: host
"""

RETURN = r"""
port_open:
  description: Whether the port accepted a connection; C(null) when O(port=0).
  returned: always
  type: bool
port_error:
  description: Why the last connection failed, when the port is closed.
  returned: when the port is closed
  type: str
disk:
  description: One entry per filesystem, in the order of O(disk_paths).
  returned: always
  type: list
  elements: dict
  contains:
    fs:
      description: The mounted device, as in C(/proc/mounts).
      type: str
    size:
      description: Size in bytes.
      type: int
    used:
      description: Bytes used.
      type: int
    avail:
      description: Bytes available to an unprivileged user.
      type: int
    pct:
      description: Use in percent, rounded up as C(df) does.
      type: int
    mount:
      description: The mount point.
      type: str
    summary:
      description: A line such as C(/ 97% used, 300 MiB free).
      type: str
disk_full:
  description: The entries of RV(disk) whose use is at least O(disk_full_pct).
  returned: always
  type: list
  elements: dict
disk_missing:
  description: The paths of O(disk_paths) that do not exist.
  returned: always
  type: list
  elements: str
memory:
  description: C(total_bytes), C(available_bytes) and C(available_pct) (one decimal); empty when O(memory=false).
  returned: always
  type: dict
memory_exhausted:
  description: Whether C(available_pct) is under O(mem_min_available_pct).
  returned: always
  type: bool
units:
  description: The state of each unit of O(units), by the name as given.
  returned: always
  type: dict
  sample: {caddy: running}
"""

import os
import re
import socket
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.sre.runbooks.plugins.module_utils._targets import parse_systemctl_show

INIT_D = "/etc/init.d"


def probe_port(host, port, timeout, sleep=time.sleep, clock=time.monotonic):
    """Connect to host:port until it accepts or timeout seconds have passed: (open, error)."""
    deadline = clock() + max(float(timeout), 0.0)
    error = None
    while True:
        left = deadline - clock()
        try:
            conn = socket.create_connection((host, int(port)), timeout=max(min(left, 1.0), 0.1))
            conn.close()
            return True, None
        except (OSError, ValueError) as exc:
            error = "%s:%s: %s" % (host, port, getattr(exc, "strerror", None) or exc)
        if clock() + 0.2 >= deadline:
            return False, error
        sleep(0.2)


def mount_point(path):
    """The mount point holding path (the first ancestor on another device, or /)."""
    path = os.path.realpath(path)
    while not os.path.ismount(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def read_mounts(text):
    """{mount point: device} from the text of /proc/mounts (the last mount of a point wins)."""
    out = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2:
            out[fields[1].replace("\\040", " ")] = fields[0]
    return out


def df_entry(fs, mount, st):
    """One filesystem as `df -P -B1` reports it, from an os.statvfs result."""
    size = st.f_blocks * st.f_frsize
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    avail = st.f_bavail * st.f_frsize
    total = used + avail
    # df rounds the use up to the next percent
    pct = 0 if total == 0 else -(-used * 100 // total)
    return {"fs": fs, "size": size, "used": used, "avail": avail, "pct": pct, "mount": mount,
            "summary": "%s %d%% used, %d MiB free" % (mount, pct, avail // 1048576)}


def read_disks(paths, mounts_text):
    """(entries, missing): one entry per filesystem holding one of paths, in their order."""
    mounts = read_mounts(mounts_text)
    entries, missing, seen = [], [], set()
    for path in paths:
        if not os.path.exists(path):
            missing.append(path)
            continue
        mount = mount_point(path)
        if mount in seen:
            continue
        seen.add(mount)
        entries.append(df_entry(mounts.get(mount, "-"), mount, os.statvfs(mount)))
    return entries, missing


def parse_meminfo(text):
    """total_bytes, available_bytes and available_pct from the text of /proc/meminfo."""
    values = {}
    for line in text.splitlines():
        key, _sep, rest = line.partition(":")
        fields = rest.split()
        if fields and fields[0].isdigit():
            values[key.strip()] = int(fields[0]) * 1024
    total = values.get("MemTotal", 0)
    if "MemAvailable" in values:
        avail = values["MemAvailable"]
    else:  # kernels before 3.14
        avail = values.get("MemFree", 0) + values.get("Buffers", 0) + values.get("Cached", 0)
    return {"total_bytes": total, "available_bytes": avail,
            "available_pct": round(avail * 100.0 / max(total, 1), 1)}


def unit_state(props):
    """running, stopped, failed or missing, from `systemctl show` properties."""
    if props.get("LoadState") == "not-found":
        return "missing"
    if props.get("ActiveState") == "active" and props.get("SubState") == "running":
        return "running"
    if props.get("ActiveState") == "failed":
        return "failed"
    return "stopped"


def parse_show(text):
    """[{property: value}] per unit from `systemctl show` output (units separated by a blank line)."""
    blocks = re.split(r"\n\s*\n", text or "")
    return [props for props in (parse_systemctl_show(block) for block in blocks) if props]


def read_init_scripts(module, names):
    """{name: state} on a host where systemd is not running (a container): the LSB status of the init script."""
    states = {}
    for name in names:
        script = os.path.join(INIT_D, name.rsplit(".service", 1)[0])
        if not os.access(script, os.X_OK):
            states[name] = "missing"
            continue
        rc = module.run_command([script, "status"], environ_update={"LANG": "C", "LC_ALL": "C"})[0]
        # LSB: 0 running, 1 and 2 dead with a pid or lock file left, 3 not running, 4 unknown
        states[name] = "running" if rc == 0 else ("failed" if rc in (1, 2) else "stopped")
    return states


def read_units(module, names):
    """{name: state} for the units named."""
    if not names:
        return {}
    systemctl = module.get_bin_path("systemctl")
    if not systemctl or not os.path.isdir("/run/systemd/system"):
        return read_init_scripts(module, names)
    full = [n if "." in n else n + ".service" for n in names]
    rc, out, err = module.run_command(
        [systemctl, "show", "--no-pager", "-p", "Id,LoadState,ActiveState,SubState"] + full,
        environ_update={"LANG": "C", "LC_ALL": "C"})
    if rc != 0:
        module.fail_json(msg="systemctl show %s failed (rc %d): %s" % (" ".join(full), rc, err.strip()))
    shown = parse_show(out)
    by_id = dict((u.get("Id"), u) for u in shown)
    states = {}
    for i, name in enumerate(names):
        # by Id; in the order asked when an alias unit shows under another Id
        props = by_id.get(full[i]) or (shown[i] if i < len(shown) else {"LoadState": "not-found"})
        states[name] = unit_state(props)
    return states


def read_text(path):
    with open(path) as handle:
        return handle.read()


def main():
    module = AnsibleModule(
        argument_spec=dict(
            port=dict(type="int", default=0),
            port_host=dict(type="str", default="127.0.0.1"),
            port_timeout=dict(type="float", default=2.0),
            disk_paths=dict(type="list", elements="path", default=[]),
            disk_full_pct=dict(type="int", default=95),
            memory=dict(type="bool", default=True),
            mem_min_available_pct=dict(type="float", default=5),
            units=dict(type="list", elements="str", default=[]),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if p["port"] < 0 or p["port"] > 65535:
        module.fail_json(msg="port must be between 0 and 65535, not %d" % p["port"])
    if not 0 <= p["disk_full_pct"] <= 100:
        module.fail_json(msg="disk_full_pct must be between 0 and 100, not %d" % p["disk_full_pct"])
    result = dict(changed=False, port_open=None)

    if p["port"]:
        result["port_open"], error = probe_port(p["port_host"], p["port"], p["port_timeout"])
        if error and not result["port_open"]:
            result["port_error"] = error

    try:
        mounts_text = read_text("/proc/mounts") if p["disk_paths"] else ""
        result["disk"], result["disk_missing"] = read_disks(p["disk_paths"], mounts_text)
    except OSError as exc:
        module.fail_json(msg="cannot read the filesystems of %s: %s" % (", ".join(p["disk_paths"]), exc))
    result["disk_full"] = [d for d in result["disk"] if d["pct"] >= p["disk_full_pct"]]

    result["memory"], result["memory_exhausted"] = {}, False
    if p["memory"]:
        try:
            result["memory"] = parse_meminfo(read_text("/proc/meminfo"))
        except (IOError, OSError) as exc:
            module.fail_json(msg="cannot read /proc/meminfo: %s" % exc)
        result["memory_exhausted"] = result["memory"]["available_pct"] < p["mem_min_available_pct"]

    result["units"] = read_units(module, p["units"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
