# SPDX-License-Identifier: GPL-3.0-or-later
"""After converge: the recorded good release is current again, the unit runs, the disk has room."""

import json


def test_current_points_at_the_recorded_good_release(host):
    assert host.file("/srv/saasresto/current").is_symlink
    assert host.file("/srv/saasresto/current").linked_to == "/srv/saasresto/releases/20240101000000Z"


def test_bad_release_is_kept_for_analysis(host):
    assert host.file("/srv/saasresto/releases/20240102000000Z/BAD").exists


def test_unit_runs_and_listens(host):
    assert host.service("saasresto").is_running
    assert host.socket("tcp://0.0.0.0:3000").is_listening or host.socket("tcp://:::3000").is_listening


def test_health_answers_with_the_good_release(host):
    out = host.check_output("curl -fsS http://127.0.0.1:3000/health")
    assert json.loads(out)["release"] == "20240101000000Z"


def test_release_record_is_on_the_host(host):
    record = json.loads(host.file("/var/lib/sre-runbooks/releases/saasresto.json").content_string)
    assert record["release"]["id"] == "20240101000000Z"


def test_disk_was_freed(host):
    assert not host.file("/srv/saasresto/shared/log/app.log.1").exists
