# SPDX-License-Identifier: GPL-3.0-or-later
"""meta/runtime.yml: every module is in an action group (module_defaults: group/sre.runbooks.<group>), and
the modules that take the shared PostgreSQL connection options are in the postgres group."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
MODULES = sorted(p.stem for p in (REPO / "plugins" / "modules").glob("*.py") if not p.name.startswith("_"))


def groups():
    runtime = yaml.safe_load((REPO / "meta" / "runtime.yml").read_text())
    out = {}
    for name, members in runtime["action_groups"].items():
        out[name] = [m for m in members if isinstance(m, str)]
        for meta in (m["metadata"] for m in members if isinstance(m, dict) and "metadata" in m):
            out[name] += [("extends", g) for g in meta.get("extend_group", [])]
    return out


# Modules that share their options with no other module, so no group (module_defaults sets every key of a
# group on each of its members). A new module goes into a group or here, on purpose.
NOT_GROUPED = {"env_file", "app_errors"}  # no connection options shared with a group


def test_every_module_is_in_exactly_one_group_and_all_extends_them():
    found = groups()
    plain = {name: [m for m in members if isinstance(m, str)] for name, members in found.items() if name != "all"}
    placed = sorted(m for members in plain.values() for m in members)
    assert placed == sorted(set(MODULES) - NOT_GROUPED), "modules missing from (or doubled in) meta/runtime.yml action_groups"
    assert sorted(g for dummy, g in found["all"]) == sorted(plain), "group 'all' must extend every group"
    assert {"pg_orphans": "postgres", "app_status": "target"} == {
        m: g for g, members in plain.items() for m in members if m in ("pg_orphans", "app_status")}


def test_postgres_connection_modules_are_in_the_postgres_group():
    uses_pg_args = sorted(m for m in MODULES
                          if "postgres_argument_spec" in (REPO / "plugins" / "modules" / (m + ".py")).read_text())
    assert uses_pg_args and sorted(groups()["postgres"]) == uses_pg_args
