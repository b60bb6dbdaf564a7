# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit tests for plugins/module_utils/_nginx.py: the rate limit lines of an nginx error log, the zones of an
``nginx -T`` dump, and the edits (a zone's rate, an allow-list block) with their way back."""

from __future__ import annotations

import sys
import time

import pytest

from conftest import ensure_collection_link

sys.path.insert(0, str(ensure_collection_link()))
from ansible_collections.sre.runbooks.plugins.module_utils import _nginx  # noqa: E402

LIMITING = ('2026/12/03 11:20:01 [error] 812#812: *5 limiting requests, excess: 10.520 by zone "api", client: '
            '172.18.0.1, server: cookcam-api, request: "GET /api/items?token=s3cr3t HTTP/1.1", host: "localhost"')
DELAYING = ('2026/12/03 11:20:02 [warn] 812#812: *9 delaying request, excess: 0.600, by zone "webhooks", client: '
            '10.0.0.9, server: cookcam-api, request: "POST /webhooks/stripe HTTP/1.1", host: "localhost"')

CONF = """limit_req_zone $binary_remote_addr zone=api:10m rate=10r/s;
limit_req_zone $binary_remote_addr zone=webhooks:1m rate=30r/s;  # webhooks
# limit_req_zone $binary_remote_addr zone=old:1m rate=1r/s;
server {
    location / {
        limit_req zone=api burst=10 nodelay;
    }
}
"""


def test_a_limiting_line_is_read_and_its_query_string_dropped():
    event = _nginx.parse_error_line(LIMITING)
    assert event["what"] == "limiting" and event["zone"] == "api" and event["client"] == "172.18.0.1"
    assert event["excess"] == 10.52 and event["server"] == "cookcam-api"
    assert event["request"] == "GET /api/items" and "s3cr3t" not in repr(event)
    assert event["time"] == time.mktime(time.strptime("2026/12/03 11:20:01", "%Y/%m/%d %H:%M:%S"))
    delayed = _nginx.parse_error_line(DELAYING)
    assert delayed["what"] == "delaying" and delayed["zone"] == "webhooks" and delayed["client"] == "10.0.0.9"
    assert _nginx.parse_error_line("2026/12/03 11:20:01 [error] 1#1: *1 connect() failed") is None


def test_events_in_the_window_and_their_summary():
    lines = [LIMITING] * 3 + [LIMITING.replace("172.18.0.1", "10.0.0.2")] + [DELAYING, "garbage by zone x"]
    cut = time.mktime(time.strptime("2026/12/03 11:20:02", "%Y/%m/%d %H:%M:%S"))
    assert [e["what"] for e in _nginx.rate_limit_events(lines, since=cut)] == ["delaying"]
    summary = _nginx.summarise(_nginx.rate_limit_events(lines), top=1)
    assert summary["rejected"] == 4 and summary["delayed"] == 1
    assert summary["zones"] == [{"zone": "api", "rejected": 4, "delayed": 0, "clients": 2},
                                {"zone": "webhooks", "rejected": 0, "delayed": 1, "clients": 1}]
    assert summary["top_clients"] == [{"client": "172.18.0.1", "rejected": 3, "zones": ["api"], "share_pct": 75.0}]
    assert summary["top_requests"] == [{"request": "GET /api/items", "rejected": 4}]


def test_the_zones_and_uses_of_a_dump_with_their_files():
    dump = "# configuration file /etc/nginx/nginx.conf:\nhttp { include x; }\n\n" \
           "# configuration file /etc/nginx/sites-enabled/cookcam.conf:\n" + CONF
    zones, uses = _nginx.parse_dump(dump)
    assert [(z["name"], z["key"], z["size"], z["rate"], z["file"], z["line"]) for z in zones] == [
        ("api", "$binary_remote_addr", "10m", "10r/s", "/etc/nginx/sites-enabled/cookcam.conf", 1),
        ("webhooks", "$binary_remote_addr", "1m", "30r/s", "/etc/nginx/sites-enabled/cookcam.conf", 2)]
    assert uses == [{"zone": "api", "burst": "10", "nodelay": True, "file": "/etc/nginx/sites-enabled/cookcam.conf",
                     "line": 6}]


def test_set_rate_changes_one_zone_only():
    out = _nginx.set_rate(CONF, "api", "20r/s")
    assert out.splitlines()[0] == "limit_req_zone $binary_remote_addr zone=api:10m rate=20r/s;"
    assert out.splitlines()[1:] == CONF.splitlines()[1:]
    with pytest.raises(ValueError, match="rate must look like"):
        _nginx.set_rate(CONF, "api", "fast")
    with pytest.raises(ValueError, match="zone old is defined 0 times"):
        _nginx.set_rate(CONF, "old", "5r/s")  # only in a comment


def test_allow_list_block_replaced_and_removed():
    once, name = _nginx.set_allow(CONF, "api", ["10.0.0.0/8", "203.0.113.7"])
    assert name == "api_sre_allow" and _nginx.base_zone(name) == "api"
    assert "limit_req_zone $sre_rl_key_api zone=api_sre_allow:10m rate=10r/s;" in once
    assert "    0 $binary_remote_addr;" in once and '    1 "";' in once and "    10.0.0.0/8 1;" in once
    assert _nginx.allowed(once, "api") == ["10.0.0.0/8", "203.0.113.7/32"]
    assert _nginx.parse_dump(once)[0][0]["key"] == "$sre_rl_key_api"
    twice, name = _nginx.set_allow(once, "api", ["192.168.0.0/16"])
    assert _nginx.allowed(twice, "api") == ["192.168.0.0/16"] and twice.count(_nginx.ALLOW_BEGIN % "api") == 1
    assert "    0 $binary_remote_addr;" in twice and name == "api_sre_allow"  # the zone's own key, not the map's
    back, name = _nginx.set_allow(twice, "api", [])
    assert back == CONF and name == "api"
    with pytest.raises(ValueError, match="not an address or network: 'ten'"):
        _nginx.set_allow(CONF, "api", ["ten"])
    damaged = once.replace(_nginx.ALLOW_END % "api", "")
    with pytest.raises(ValueError, match="damaged"):
        _nginx.set_allow(damaged, "api", ["10.0.0.0/8"])


def test_uses_follow_the_zone_to_its_new_name():
    text = "limit_req zone=api burst=10 nodelay;\n  limit_req zone=apiv2;\n# limit_req zone=api;\nlimit_req burst=1 zone=api;\n"
    assert _nginx.rename_uses(text, "api", "api_sre_allow") == (
        "limit_req zone=api_sre_allow burst=10 nodelay;\n  limit_req zone=apiv2;\n# limit_req zone=api;\n"
        "limit_req burst=1 zone=api_sre_allow;\n")
