# SPDX-License-Identifier: GPL-3.0-or-later
"""Write molecule/drill_<runbook>_<twin>/{molecule.yml,converge.yml} from molecule/_drills/drills.yml (and the
remediate/rollback playbook of each runbook from awx/catalog.yml). `--check` exits 1 when a written file would
change or a drill scenario directory has no drill (tests/unit/test_drills.py runs it)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
MOLECULE = REPO / "molecule"
CHANGING_PHASES = ("remediate", "rollback", "restore")
TWIN_OF_DRILL = "drill_%s_%s"
# the drill's own state on the twin (its restart cooldown record), emptied by prepare.yml
DRILL_STATE = "/var/tmp/sre-drills/%s"


def changing_playbook(catalog, runbook):
    phases = catalog["runbooks"][runbook]["phases"]
    for phase in CHANGING_PHASES:
        if phase in phases:
            return phases[phase]["playbook"]
    raise SystemExit("drills.yml: runbook %s has no remediate/rollback/restore phase in awx/catalog.yml" % runbook)


def folded(text, indent, width=110):
    """A YAML folded block scalar body (lines joined by spaces when read), each line at most about width."""
    lines, line = [], ""
    for word in text.split(" "):
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = "%s %s" % (line, word) if line else word
    lines.append(line)
    return "\n".join(indent + part for part in lines)


def files_for(name, drill, catalog):
    # sre_lab_root: the lab inventory finds the lab from inventory_dir, which is Molecule's own inventory here
    # target_cooldown_dir: the drill's own restart cooldown record (prepare.yml empties it): the restarts of other drills
    # and tests on the same twin do not count against this drill's, its own two remediates do
    extra = dict({"sre_confirm": "yes", "sre_lab_root": "${MOLECULE_PROJECT_DIRECTORY}/lab",
                  "target_cooldown_dir": DRILL_STATE % name + "/cooldown"},
                 **(drill.get("remediate_vars") or {}))
    molecule = ((HERE / "molecule.yml.template").read_text()
                .replace("__DRILL__", name).replace("__HOST__", drill["twin"])
                .replace("__EXTRA__", folded(json.dumps(extra, sort_keys=True), "      ")))
    playbook = changing_playbook(catalog, drill["runbook"])
    converge = ("---\n# Drill %s (molecule/_drills/drills.yml; written by molecule/_drills/render.py): the confirmed %s\n"
                "# (sre_confirm and the drill's variables come from molecule.yml), then the time the twin is healthy again.\n"
                "- name: Remediate\n  ansible.builtin.import_playbook: ../../playbooks/%s\n\n"
                "- name: Healthy again\n  ansible.builtin.import_playbook: ../_drills/healthy.yml\n"
                % (name, playbook[:-4], playbook))
    return {MOLECULE / name / "molecule.yml": molecule, MOLECULE / name / "converge.yml": converge}


def main(argv):
    check = "--check" in argv
    spec = yaml.safe_load((HERE / "drills.yml").read_text())
    catalog = yaml.safe_load((REPO / "awx" / "catalog.yml").read_text())
    wanted = {}
    for name, drill in spec["drills"].items():
        if drill["twin"] not in spec["twins"]:
            raise SystemExit("drills.yml: %s names twin %s, which is not under twins" % (name, drill["twin"]))
        wanted.update(files_for(name, drill, catalog))
    stale = [str(p.relative_to(REPO)) for p, text in wanted.items() if not p.exists() or p.read_text() != text]
    orphans = [str(d.relative_to(REPO)) for d in sorted(MOLECULE.glob("drill_*"))
               if (d / "molecule.yml").exists() and "molecule/_drills/drills.yml" in (d / "molecule.yml").read_text()
               and d.name not in spec["drills"]]
    if check:
        for path in stale:
            print("out of date (run molecule/_drills/render.py): %s" % path)
        for path in orphans:
            print("a drill scenario with no drill in drills.yml: %s" % path)
        return 1 if stale or orphans else 0
    for path, text in wanted.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for path in stale:
        print("wrote %s" % path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
