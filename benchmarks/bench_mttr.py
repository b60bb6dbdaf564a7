# SPDX-License-Identifier: GPL-3.0-or-later
"""Fault to healthy, per drill, against the source runbooks' own estimates (issue 13).

Runs the drills of molecule/_drills/drills.yml on the running lab (`make drills`; MOLECULE_SCENARIOS limits
them), then prints for each drill the seconds from fault injection to healthy and the ratio to the estimate its
source runbook gives for the manual procedure ("restart (about 1 min)", "5-30 min": `estimate_s` and `source` in
drills.yml). The goal is every drill healthy in under 60 s on this machine. Not a test: it reports time.

    python benchmarks/bench_mttr.py            # run the drills, then report
    python benchmarks/bench_mttr.py --report   # report what the last run wrote in build/drills
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SPEC = yaml.safe_load((REPO / "molecule" / "_drills" / "drills.yml").read_text())
RESULTS = REPO / "build" / "drills"
GOAL_S = 60.0


def run_drills(names):
    env = dict(os.environ, STAGES="lab molecule", MOLECULE_SCENARIOS=" ".join(names))
    return subprocess.run([str(REPO / "scripts" / "test.sh")], cwd=REPO, env=env, check=False).returncode


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", action="store_true", help="only report the last run's results")
    parser.add_argument("--quick", action="store_true", help="accepted for scripts/bench.sh; same as a full run")
    args = parser.parse_args(argv)
    wanted = os.environ.get("MOLECULE_SCENARIOS", "").split() or list(SPEC["drills"])
    if not args.report:
        run_drills(wanted)
    rows, ratios, over = [], [], 0
    for name in wanted:
        drill = SPEC["drills"].get(name)
        note_path = RESULTS / ("%s.json" % name)
        result = (RESULTS / ("%s.result" % name)).read_text().strip() if (RESULTS / ("%s.result" % name)).exists() else "not run"
        note = json.loads(note_path.read_text()) if note_path.exists() else {}
        took = note["t_healthy"] - note["t_inject"] if "t_healthy" in note and "t_inject" in note else None
        estimate = float(drill["estimate_s"]) if drill else None
        ratio = took / estimate if took is not None and estimate else None
        if ratio is not None:
            ratios.append(ratio)
        if took is None or took > GOAL_S:
            over += 1
        rows.append((name, result, took, estimate, ratio, drill["source"] if drill else "?"))
    print("%-36s %-7s %9s %11s %7s  %s" % ("drill", "result", "fault->ok", "runbook est", "ratio", "baseline (source runbook)"))
    for name, result, took, estimate, ratio, source in rows:
        print("%-36s %-7s %9s %11s %7s  %s" % (
            name, result, "%.1f s" % took if took is not None else "-", "%.0f s" % estimate if estimate else "-",
            "%.3f" % ratio if ratio is not None else "-", source))
    if ratios:
        print("median ratio to the runbooks' estimates: %.3f; drills over %.0f s (or not healthy): %d of %d"
              % (statistics.median(ratios), GOAL_S, over, len(rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
