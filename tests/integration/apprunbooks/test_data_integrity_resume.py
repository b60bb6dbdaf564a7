# SPDX-License-Identifier: GPL-3.0-or-later
"""data_integrity's stop-writes is undone by the next run when a run was interrupted (issue 11, "Blast radius and
leftovers"), on localhost against a throwaway cluster: a remediate is killed (SIGKILL of ansible-playbook, as a lost
control node or an AWX cancel that does not wait) right after it made the database read-only; the marker it wrote on
the host (sre_state_dir/data_integrity/) is then a diagnose finding, an unconfirmed remediate only plans to resume
writes, and a confirmed one resumes them first, says so, and then deletes the orphans as usual."""

from __future__ import annotations

import json
import os
import time

from app_support import app_db, playbook, seed_chained_orphans  # noqa: F401  pylint: disable=unused-import

RELATIONS = [{"child": "categories", "column": "menu_id", "parent": "menus", "parent_column": "id"},
             {"child": "items", "column": "category_id", "parent": "categories", "parent_column": "id"}]

# Right after writes are stopped: SIGKILL every ansible-playbook process above this task (the worker, then the
# main process), never past this test's own process: no always: block, no handler, nothing of the play runs after it.
KILL_HOOK = r"""
- name: Kill the run right after writes were stopped (test only)
  ansible.builtin.shell:
    cmd: |
      pid=$$; victims=""
      while [ "$pid" -gt 1 ] && [ "$pid" != "%(stop)d" ]; do
        case "$(tr '\0' ' ' < /proc/$pid/cmdline)" in *ansible-playbook*) victims="$pid $victims" ;; esac
        pid=$(ps -o ppid= -p "$pid" | tr -d ' ')
      done
      ps -ww -o pid,ppid,args -p "${victims%% }" > %(trace)s 2>&1
      kill -KILL $victims
      sleep 10
  changed_when: true
"""


def read_only(pg_cluster, db):
    return pg_cluster.psql("SHOW default_transaction_read_only", dbname=db).strip()


def item_ids(pg_cluster, db):
    return pg_cluster.psql("SELECT string_agg(id::text, ',' ORDER BY id) FROM items", dbname=db).strip()


def flat(text):
    return " ".join(text.split())


def test_an_interrupted_remediate_is_reported_and_its_stopped_writes_resumed(playbook, pg_cluster, app_db, tmp_path):
    seed_chained_orphans(pg_cluster, app_db)
    hook = tmp_path / "kill_after_stop_writes.yml"
    hook.write_text(KILL_HOOK % {"stop": os.getpid(), "trace": tmp_path / "killed.txt"})
    marker = tmp_path / "state" / "data_integrity" / ("writes-stopped-%s.json" % app_db)
    variables = {"sre_db_name": app_db, "data_integrity_relations": RELATIONS,
                 "data_integrity_save_dir": str(tmp_path / "saved")}

    killed = dict(variables, sre_confirm="yes", data_integrity_after_stop_writes_tasks_file=str(hook))
    rc, dummy, out = playbook("data_integrity_remediate", killed)
    assert rc == -9 and "PLAY RECAP" not in out, out[-3000:]  # killed, nothing ran after the hook
    time.sleep(1)
    assert read_only(pg_cluster, app_db) == "on"  # the interrupted run left the database read-only
    assert item_ids(pg_cluster, app_db) == "1,2,3,4,5"  # and deleted nothing
    doc = json.loads(marker.read_text())
    assert doc["how"] == "readonly" and doc["database"] == app_db and doc["stopped_at"].endswith("Z"), doc

    rc, changed, out = playbook("data_integrity_diagnose", variables, check=True)
    text = flat(out)
    assert rc == 0 and changed == 0, out[-3000:]
    assert "writes_stopped_leftover" in text and "the run was interrupted" in text, out[-3000:]
    assert "the database is still read-only by default" in text and str(marker) in text, out[-3000:]

    rc, changed, out = playbook("data_integrity_remediate", variables)  # not confirmed: the plan, nothing else
    text = flat(out)
    assert rc == 0 and changed == 0 and "Not confirmed: nothing is changed." in text, out[-3000:]
    assert "resume writes left stopped (readonly) by an interrupted remediate at %s" % doc["stopped_at"] in text, out
    assert read_only(pg_cluster, app_db) == "on" and marker.exists()

    rc, changed, out = playbook("data_integrity_remediate", dict(variables, sre_confirm="yes"), check=True)
    assert rc == 0 and changed == 0 and "Check mode: would resume writes (readonly)" in flat(out), out[-3000:]
    assert read_only(pg_cluster, app_db) == "on" and marker.exists()

    rc, changed, out = playbook("data_integrity_remediate", dict(variables, sre_confirm="yes"))
    text = flat(out)
    assert rc == 0 and changed > 0, out[-3000:]
    assert "Resumed writes left stopped by an interrupted remediate: database %s accepts writes again" % app_db in text
    assert "Deleted 4 orphan rows" in text, out[-3000:]
    assert read_only(pg_cluster, app_db) == "off" and not marker.exists()
    assert item_ids(pg_cluster, app_db) == "1,2"

    rc, changed, out = playbook("data_integrity_diagnose", variables, check=True)
    assert rc == 0 and changed == 0 and "writes_stopped_leftover" not in out, out[-3000:]
    rc, changed, out = playbook("data_integrity_remediate", dict(variables, sre_confirm="yes"))
    assert rc == 0 and changed == 0 and "Resumed writes" not in out and "No orphan rows" in out, out[-3000:]


def test_a_completed_remediate_leaves_no_marker(playbook, pg_cluster, app_db, tmp_path):
    """The marker is written before writes stop and removed once they are back (also when the delete is refused)."""
    seed_chained_orphans(pg_cluster, app_db)
    marker_dir = tmp_path / "state" / "data_integrity"
    variables = {"sre_db_name": app_db, "data_integrity_save_dir": str(tmp_path / "saved"), "sre_confirm": "yes",
                 "data_integrity_relations": RELATIONS[:1]}  # item 3's foreign key refuses the delete
    rc, dummy, out = playbook("data_integrity_remediate", variables)
    assert rc != 0 and "NOT deleted" in out, out[-3000:]
    assert marker_dir.is_dir() and list(marker_dir.iterdir()) == []
    assert read_only(pg_cluster, app_db) == "off"
    rc, changed, out = playbook("data_integrity_remediate", dict(variables, data_integrity_relations=RELATIONS))
    assert rc == 0 and changed > 0 and "Resumed writes" not in out and list(marker_dir.iterdir()) == [], out[-3000:]
