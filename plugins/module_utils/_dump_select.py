# -*- coding: utf-8 -*-
# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to the sre.runbooks collection: which backup to verify (newest match, history, checksum files).
Part of the dump verifier (see _dump.py).

Not a public API: other collections must not import it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import fnmatch
import os
import re
import stat


def list_candidates(directory, pattern):
    """Backups in directory matching pattern (files or directory-format dumps), newest first."""
    items = []
    for name in os.listdir(directory):
        if name.startswith(".") or name.endswith(".sha256") or not fnmatch.fnmatch(name, pattern):
            continue
        full = os.path.join(directory, name)
        try:
            st = os.stat(full)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode) and not os.path.exists(os.path.join(full, "toc.dat")):
            continue
        if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
            continue
        items.append((st.st_mtime, name, full, _size_of(full, st)))
    items.sort(reverse=True)
    return items


def _size_of(path, st=None):
    st = st or os.stat(path)
    if stat.S_ISDIR(st.st_mode):
        total = 0
        for name in os.listdir(path):
            try:
                total += os.stat(os.path.join(path, name)).st_size
            except OSError:
                pass
        return total
    return st.st_size


def median(values):
    values = sorted(values)
    if not values:
        return None
    mid = len(values) // 2
    return float(values[mid]) if len(values) % 2 else (values[mid - 1] + values[mid]) / 2.0


def read_checksum(value, backup_path):
    """A sha256 hex value, or a .sha256 file ('<hex>  <name>' lines). Returns (hex, source)."""
    text = (value or "").strip()
    if re.match(r"^[0-9a-fA-F]{64}$", text):
        return text.lower(), "given value"
    with open(text, "r") as handle:
        content = handle.read(1 << 20)
    base = os.path.basename(backup_path)
    first = None
    for line in content.splitlines():
        m = re.match(r"^(?:SHA256 \((.+)\) = ([0-9a-fA-F]{64})|([0-9a-fA-F]{64})\s+\*?(.*))$", line.strip())
        if not m:
            continue
        digest = (m.group(2) or m.group(3)).lower()
        name = m.group(1) or m.group(4) or ""
        if first is None:
            first = digest
        if os.path.basename(name.strip()) == base:
            return digest, text
    if first is None:
        raise ValueError("no sha256 value found in %s" % text)
    return first, text
