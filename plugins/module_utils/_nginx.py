# -*- coding: utf-8 -*-
# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to the sre.runbooks collection: the pure helpers of nginx_rate_limit (no nginx needed).

- ``parse_error_line`` / ``rate_limit_events``: the ``limiting requests`` and ``delaying request`` lines of an nginx
  error log (runbook 001 section 5: ``grep "limiting requests" error.log``), with their time, zone and client.
- ``summarise``: counts per zone, the top clients and the top request paths (never a query string: it can carry a
  token).
- ``parse_dump``: the ``limit_req_zone`` definitions and ``limit_req`` uses of an ``nginx -T`` dump, with the file each
  is in.
- ``set_rate`` / ``set_allow``: the text of a configuration file with a zone's rate changed, or with addresses exempt
  from a zone (a ``geo`` + ``map`` block before the zone's definition, the zone keyed by the map: an empty key is
  not limited).

Not a public API: other collections must not import it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import re
import time

_EVENT_RE = re.compile(
    r'^(?P<ts>\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}) \[(?P<level>\w+)\] \d+#\d+: (?:\*\d+ )?'
    r'(?P<what>limiting requests|delaying request), excess: (?P<excess>[\d.]+),? by zone "(?P<zone>[^"]+)", '
    r'client: (?P<client>[^,\s]+)(?:, server: (?P<server>[^,]*))?(?:, request: "(?P<request>[^"]*)")?')
_ZONE_RE = re.compile(r'(?:^|[;{}\s])limit_req_zone\s+(?P<key>\S+)\s+(?P<args>[^;]*);')
_USE_RE = re.compile(r'(?:^|[;{}\s])limit_req\s+(?P<args>[^;]*\bzone=[^;]*);')
_FILE_RE = re.compile(r"^# configuration file (?P<path>.+):$")
RATE_RE = re.compile(r"^[1-9][0-9]{0,6}r/[sm]$")
ALLOW_BEGIN = "# BEGIN sre.runbooks rate_limit allow-list for zone %s"
ALLOW_END = "# END sre.runbooks rate_limit allow-list for zone %s"


def parse_error_line(line):
    """{time, what (limiting|delaying), excess, zone, client, server, request} of a rate limit line, else None."""
    match = _EVENT_RE.match(line)
    if not match:
        return None
    try:
        stamp = time.mktime(time.strptime(match.group("ts"), "%Y/%m/%d %H:%M:%S"))  # nginx logs local time
    except ValueError:
        return None
    return dict(time=stamp, what="limiting" if match.group("what").startswith("limiting") else "delaying",
                excess=float(match.group("excess")), zone=match.group("zone"), client=match.group("client"),
                server=(match.group("server") or "").strip(), request=request_path(match.group("request") or ""))


def request_path(request):
    """'GET /api/items' of 'GET /api/items?token=x HTTP/1.1': the method and path, never the query string."""
    parts = request.split()
    if len(parts) < 2:
        return ""
    return "%s %s" % (parts[0], parts[1].split("?", 1)[0].split("#", 1)[0])


def rate_limit_events(lines, since=None):
    """The rate limit events of the lines, at or after the epoch since (all when None)."""
    events = []
    for line in lines:
        if "by zone" not in line:
            continue
        event = parse_error_line(line.rstrip("\n"))
        if event and (since is None or event["time"] >= since):
            events.append(event)
    return events


def _top(counter, top):
    return sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:top]


def summarise(events, top=10):
    """Counts of the events per zone (rejected = limiting, delayed), the top clients and request paths."""
    zones, clients, client_zones, requests = {}, {}, {}, {}
    for event in events:
        zone = zones.setdefault(event["zone"], dict(zone=event["zone"], rejected=0, delayed=0, clients=set()))
        zone["rejected" if event["what"] == "limiting" else "delayed"] += 1
        zone["clients"].add(event["client"])
        if event["what"] == "limiting":
            clients[event["client"]] = clients.get(event["client"], 0) + 1
            client_zones.setdefault(event["client"], set()).add(event["zone"])
            if event["request"]:
                requests[event["request"]] = requests.get(event["request"], 0) + 1
    zone_list = []
    for name in sorted(zones):
        item = zones[name]
        zone_list.append(dict(zone=name, rejected=item["rejected"], delayed=item["delayed"],
                              clients=len(item["clients"])))
    rejected = sum(z["rejected"] for z in zone_list)
    top_clients = [dict(client=client, rejected=count, zones=sorted(client_zones[client]),
                        share_pct=round(100.0 * count / rejected, 1) if rejected else 0.0)
                   for client, count in _top(clients, top)]
    top_requests = [dict(request=request, rejected=count) for request, count in _top(requests, top)]
    times = [e["time"] for e in events]
    return dict(zones=zone_list, rejected=rejected, delayed=sum(z["delayed"] for z in zone_list),
                top_clients=top_clients, top_requests=top_requests,
                first=min(times) if times else None, last=max(times) if times else None)


def _strip_comment(line):
    """The line without its comment (a # outside quotes)."""
    out, quote = [], None
    for char in line:
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#":
            break
        out.append(char)
    return "".join(out)


def _zone_args(args):
    zone = dict(name=None, size=None, rate=None)
    for word in args.split():
        if word.startswith("zone="):
            name, sep, size = word[5:].partition(":")
            zone.update(name=name, size=size if sep else None)
        elif word.startswith("rate="):
            zone["rate"] = word[5:]
    return zone


def parse_dump(text):
    """The limit_req_zone definitions ({name, key, size, rate, file, line}) and the limit_req uses ({zone, file,
    line, burst, nodelay}) of an ``nginx -T`` dump (or of one file's text, file None)."""
    zones, uses, path, line_no = [], [], None, 0
    for raw in text.splitlines():
        marker = _FILE_RE.match(raw.strip())
        if marker:
            path, line_no = marker.group("path"), 0
            continue
        line_no += 1
        line = _strip_comment(raw)
        for match in _ZONE_RE.finditer(line):
            zone = _zone_args(match.group("args"))
            if zone["name"]:
                zones.append(dict(zone, key=match.group("key"), file=path, line=line_no))
        for match in _USE_RE.finditer(line):
            use = dict(zone=None, burst=None, nodelay=False, file=path, line=line_no)
            for word in match.group("args").split():
                if word.startswith("zone="):
                    use["zone"] = word[5:]
                elif word.startswith("burst="):
                    use["burst"] = word[6:]
                elif word == "nodelay":
                    use["nodelay"] = True
            uses.append(use)
    return zones, uses


def _zone_line(text, zone):
    """(index of the line that defines zone, that line) in text; ValueError when not exactly one."""
    lines = text.splitlines(True)
    found = [i for i, line in enumerate(lines)
             for match in _ZONE_RE.finditer(_strip_comment(line)) if _zone_args(match.group("args"))["name"] == zone]
    if len(found) != 1:
        raise ValueError("zone %s is defined %d times in the file (expected once)" % (zone, len(found)))
    return lines, found[0]


def set_rate(text, zone, rate):
    """text with the rate of zone's limit_req_zone set to rate (e.g. 20r/s)."""
    if not RATE_RE.match(rate or ""):
        raise ValueError("rate must look like 20r/s or 600r/m (got %r)" % (rate,))
    lines, index = _zone_line(text, zone)
    line = lines[index]
    if re.search(r"\brate=\S+?(?=[\s;])", line):
        lines[index] = re.sub(r"\brate=\S+?(?=[\s;])", "rate=%s" % rate, line, count=1)
    else:
        lines[index] = line.replace(";", " rate=%s;" % rate, 1)
    return "".join(lines)


def valid_cidrs(cidrs):
    """The addresses or networks, normalised (10.0.0.0/8, 2001:db8::/32); ValueError naming a bad one."""
    out = []
    for item in cidrs:
        try:
            out.append(str(ipaddress.ip_network(str(item).strip(), strict=False)))
        except ValueError:
            raise ValueError("not an address or network: %r" % (item,))
    return out


ALLOW_SUFFIX = "_sre_allow"


def base_zone(name):
    """The zone's own name: api for api_sre_allow (the name it has while an allow-list is in place)."""
    return name[:-len(ALLOW_SUFFIX)] if name.endswith(ALLOW_SUFFIX) else name


def _names(zone):
    safe = re.sub(r"[^A-Za-z0-9_]", "_", zone)
    return "$sre_rl_exempt_%s" % safe, "$sre_rl_key_%s" % safe


def allow_block(text, zone):
    """(begin, end) line indexes of the allow-list block of zone in text, or None."""
    lines = text.splitlines()
    begin, end = ALLOW_BEGIN % zone, ALLOW_END % zone
    starts = [i for i, line in enumerate(lines) if line.strip() == begin]
    ends = [i for i, line in enumerate(lines) if line.strip() == end]
    if not starts:
        return None
    if len(starts) != 1 or len(ends) != 1 or ends[0] < starts[0]:
        raise ValueError("the allow-list block of zone %s is damaged (edit it by hand)" % zone)
    return starts[0], ends[0]


def rename_uses(text, old, new):
    """text with every limit_req zone=old use naming zone new instead."""
    pattern = re.compile(r"(\blimit_req\s+(?:[^;]*\s)?zone=)%s(?=[\s;])" % re.escape(old))
    return "".join(pattern.sub(lambda m: m.group(1) + new, line) if not line.lstrip().startswith("#") else line
                   for line in text.splitlines(True))


def set_allow(text, zone, cidrs):
    """(text, zone name) with the addresses cidrs exempt from zone: a geo (address -> 1) and a map (1 -> empty key,
    else the zone's own key) before the zone's definition, which is keyed by the map and renamed <zone>_sre_allow
    (nginx refuses to reload a zone whose key changed: the renamed one is a new zone; rename_uses() points the
    limit_req uses at it). An empty list removes the exemption: the zone's own name and key back. A second call
    replaces the block. zone is the zone's own name (base_zone)."""
    cidrs = valid_cidrs(cidrs)
    exempt, key = _names(zone)
    renamed = zone + ALLOW_SUFFIX
    block = allow_block(text, zone)
    lines, index = _zone_line(text, renamed if block is not None else zone)
    current = re.search(r"limit_req_zone\s+(\S+)", lines[index]).group(1)
    original = current
    if block is not None:
        mapped = [line.split(None, 1)[1].rstrip(";\n ").strip() for line in lines[block[0]:block[1] + 1]
                  if line.strip().startswith("0 ")]
        if not mapped:
            raise ValueError("the allow-list block of zone %s is damaged (edit it by hand)" % zone)
        original = mapped[0]
        del lines[block[0]:block[1] + 1]
        lines, index = _zone_line("".join(lines), renamed)
    indent = re.match(r"\s*", lines[index]).group(0)
    line = lines[index]
    if not cidrs:
        line = line.replace(current, original, 1)
        lines[index] = re.sub(r"\bzone=%s(?=:)" % re.escape(renamed), "zone=" + zone, line, count=1)
        return "".join(lines), zone
    line = line.replace(current, key, 1) if current != key else line
    lines[index] = re.sub(r"\bzone=%s(?=:)" % re.escape(zone), "zone=" + renamed, line, count=1)
    new = [indent + ALLOW_BEGIN % zone + "\n",
           indent + "# (written by the rate_limit runbook; rate_limit rollback puts the file back as it was)\n",
           indent + "geo %s {\n" % exempt, indent + "    default 0;\n"]
    new += [indent + "    %s 1;\n" % cidr for cidr in cidrs]
    new += [indent + "}\n", indent + "map %s %s {\n" % (exempt, key), indent + "    0 %s;\n" % original,
            indent + '    1 "";\n', indent + "}\n", indent + ALLOW_END % zone + "\n"]
    lines[index:index] = new
    return "".join(lines), renamed


def allowed(text, zone):
    """The addresses exempt from zone by its allow-list block (empty when none)."""
    block = allow_block(text, zone)
    if block is None:
        return []
    lines = text.splitlines()[block[0]:block[1] + 1]
    out, in_geo = [], False
    for line in lines:
        word = line.strip()
        if word.startswith("geo "):
            in_geo = True
        elif word == "}":
            in_geo = False
        elif in_geo and word.endswith(" 1;"):
            out.append(word.split()[0])
    return out
