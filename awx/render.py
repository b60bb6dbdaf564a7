# -*- coding: utf-8 -*-
# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Render awx/catalog.yml into the AWX data and the EDA rulebook: python awx/render.py [--check]."""

from __future__ import annotations

import os
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "build", "collections"))

from ansible_collections.sre.runbooks.plugins.plugin_utils import _awx_catalog as cat  # noqa: E402  pylint: disable=wrong-import-position

HEADER = "---\n# GENERATED from awx/catalog.yml by `python awx/render.py`: edit the catalog, not this file.\n"


class _Dumper(yaml.SafeDumper):
    """Indent lists under their key (yamllint's default indentation)."""

    def increase_indent(self, flow=False, indentless=False):
        return super().increase_indent(flow, False)


def outputs(catalog):
    return {
        os.path.join(HERE, "generated", "job_templates.yml"): {"sre_awx_job_templates": cat.job_templates(catalog)},
        os.path.join(HERE, "generated", "workflow_job_templates.yml"): {"sre_awx_workflows": cat.workflows(catalog)},
        os.path.join(ROOT, "extensions", "eda", "rulebooks", "alertmanager.yml"): cat.rulebook(catalog),
    }


def render(data):
    return HEADER + yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=150, default_flow_style=False)


def main(argv):
    with open(os.path.join(HERE, "catalog.yml"), encoding="utf-8") as handle:
        catalog = yaml.safe_load(handle)
    stale = []
    for path, data in outputs(catalog).items():
        text = render(data)
        current = None
        if os.path.exists(path):
            with open(path, encoding="utf-8") as handle:
                current = handle.read()
        if current == text:
            continue
        stale.append(os.path.relpath(path, ROOT))
        if "--check" not in argv:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text)
    for path in stale:
        print(("stale: %s" if "--check" in argv else "wrote %s") % path)
    return 1 if stale and "--check" in argv else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
