# SPDX-License-Identifier: GPL-3.0-or-later
"""flyctl logs --json --no-tail (render.JSON of logs.LogEntry: indented objects one after another) -> lines in
a time window: plugins/module_utils/_targets.py parse_fly_logs/fly_log_lines and the fly_log_lines filter."""

from __future__ import annotations

import json
import sys

import pytest

from conftest import ensure_collection_link

sys.path.insert(0, str(ensure_collection_link()))
from ansible_collections.sre.runbooks.plugins.filter.fly_log_lines import FilterModule  # noqa: E402
from ansible_collections.sre.runbooks.plugins.module_utils import _targets as t  # noqa: E402


def entry(ts, message, instance="148ed193b95e89", level="info"):
    return {"level": level, "instance": instance, "message": message, "region": "iad", "timestamp": ts,
            "meta": {"Instance": instance, "Region": "iad", "Event": {"Provider": "app"}}}


def flyctl_json(*entries):
    return "".join(json.dumps(e, indent=4) + "\n" for e in entries)


STREAM = flyctl_json(
    entry("2024-05-02T09:59:59.999Z", "before"),
    entry("2024-05-02T10:00:00Z", "at the start"),
    entry("2024-05-02T12:00:00.5+02:00", "same instant, offset"),
    entry("2024-05-02T10:00:01.123456789Z", "line one\nline two", level="error"),
    entry("", "no timestamp"),
)
START = 1714644000  # 2024-05-02T10:00:00Z


def test_parse_reads_indented_objects_one_after_another():
    parsed = t.parse_fly_logs("Update available: flyctl v9 (a notice)\n" + STREAM + "trailing noise {")
    assert [p["message"] for p in parsed] == ["before", "at the start", "same instant, offset", "line one\nline two",
                                              "no timestamp"]
    assert parsed[1]["epoch"] == START and parsed[2]["epoch"] == START + 0.5 and parsed[4]["epoch"] is None
    assert parsed[0]["epoch"] == pytest.approx(START - 0.001)


@pytest.mark.parametrize("since, messages", [
    (None, ["before", "at the start", "same instant, offset", "line one line two", "no timestamp"]),
    (START, ["at the start", "same instant, offset", "line one line two"]),
    (START + 1, ["line one line two"]),
    (START + 2, []),
])
def test_window(since, messages):
    lines = t.fly_log_lines(t.parse_fly_logs(STREAM), since)
    assert [line.split("] ", 1)[1] for line in lines] == messages


def test_line_form_and_the_filter():
    fly_log_lines = FilterModule().filters()["fly_log_lines"]
    assert fly_log_lines(STREAM, str(START + 1)) == [
        "2024-05-02T10:00:01.123456789Z 148ed193b95e89 iad [error] line one line two"]
    assert fly_log_lines("", START) == [] and len(fly_log_lines(STREAM)) == 5
    with pytest.raises(Exception) as err:
        fly_log_lines(STREAM, "yesterday")
    assert "epoch seconds" in str(err.value)
