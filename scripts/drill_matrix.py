#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-3.0-or-later
"""Print the drill matrix (issue 13) from what the drills wrote in build/drills: one row per runbook, one column
per twin, each cell pass/FAIL and the seconds from fault injection to healthy; then
`drills: N passed, N failed; median fault to healthy S s`. Usage: drill_matrix.py <results dir> <drill names...>"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

SPEC = Path(__file__).resolve().parents[1] / "molecule" / "_drills" / "drills.yml"


def spec_of(name):
    """runbook (with its variant: "app_down/db"), and twin app of a drill from drills.yml."""
    try:
        import yaml  # pylint: disable=import-outside-toplevel
        doc = yaml.safe_load(SPEC.read_text())
        drill = doc["drills"][name]
        variant = drill.get("variant")
        return drill["runbook"] + ("/" + variant if variant else ""), doc["twins"][drill["twin"]]["app"]
    except (ImportError, OSError, KeyError, TypeError, ValueError):
        return name.split("_", 1)[1], "?"


def main(argv):
    results = Path(argv[0])
    names = argv[1:]
    rows, twins, seconds = {}, [], []
    passed = failed = 0
    for name in names:
        note_path, result_path = results / ("%s.json" % name), results / ("%s.result" % name)
        note = json.loads(note_path.read_text()) if note_path.exists() else {}
        ok = result_path.exists() and result_path.read_text().split()[:1] == ["ok"]
        runbook, twin = spec_of(name)
        twin = note.get("twin") or twin  # the row is the spec's: runbook/variant
        took = (note["t_healthy"] - note["t_inject"]) if ok and "t_healthy" in note and "t_inject" in note else None
        if ok:
            passed += 1
            if took is not None:
                seconds.append(took)
        else:
            failed += 1
        if twin not in twins:
            twins.append(twin)
        rows.setdefault(runbook, {})[twin] = ("pass %5.1fs" % took) if ok and took is not None else (
            "pass" if ok else "FAIL")
    width = max([len(t) for t in twins] + [11])
    print("drill matrix (runbook x twin: result, seconds from fault injection to healthy)")
    print("%-16s " % "runbook" + " ".join("%-*s" % (width, t) for t in twins))
    for runbook in sorted(rows):
        print("%-16s " % runbook + " ".join("%-*s" % (width, rows[runbook].get(t, "-")) for t in twins))
    median = statistics.median(seconds) if seconds else 0.0
    print("drills: %d passed, %d failed; median fault to healthy %.1f s" % (passed, failed, median))
    # a drill that failed or left no result (it never ran to its end) fails the matrix too
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
