# -*- coding: utf-8 -*-
# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""sre.runbooks.alertmanager: receive Alertmanager webhook POSTs, one event per alert.

Arguments (the same as ansible.eda.alertmanager, which is not installable here):
    host: address to listen on (default 127.0.0.1)
    port: port (default 5000)
    data_alerts_path: dotted path of the alert list in the payload (default "alerts")
    data_host_path: dotted path of the host inside an alert (default "labels.instance"); the port is
        stripped and the host goes to event.meta.hosts, which limits the playbook run to it
    skip_original_data: do not put the whole payload into each event (default false)

Each event is {"alert": {...}, "meta": {"endpoint": ..., "hosts": [...]}}; the endpoint answers 202.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

DOCUMENTATION = r"""
---
short_description: Receive Alertmanager webhook alerts on loopback, one event per alert.
description:
  - Accepts POST /<endpoint> with an Alertmanager webhook payload and queues one event per alert.
options:
  host:
    description: Address to listen on.
    type: str
    default: 127.0.0.1
  port:
    description: Port to listen on.
    type: int
    default: 5000
  data_alerts_path:
    description: Dotted path of the alert list in the payload.
    type: str
    default: alerts
  data_host_path:
    description: Dotted path of the host inside an alert; the port is stripped.
    type: str
    default: labels.instance
  skip_original_data:
    description: Leave the whole payload out of each event.
    type: bool
    default: false
"""


def _dig(data: Any, path: str) -> Any:
    for part in [p for p in path.split(".") if p]:
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def _host(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    if value.startswith("["):  # [::1]:9100
        return value[1:].split("]", 1)[0]
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def events_from(payload: Any, endpoint: str, args: dict[str, Any]) -> list[dict[str, Any]]:
    """The events one webhook payload becomes."""
    alerts = _dig(payload, args.get("data_alerts_path", "alerts"))
    if not isinstance(alerts, list):
        return []
    events = []
    for alert in alerts:
        if not isinstance(alert, dict):
            continue
        host = _host(_dig(alert, args.get("data_host_path", "labels.instance")))
        event: dict[str, Any] = {"alert": alert, "meta": {"endpoint": endpoint, "hosts": [host] if host else []}}
        if not args.get("skip_original_data", False):
            event["payload"] = payload
        events.append(event)
    return events


async def main(queue: asyncio.Queue, args: dict[str, Any]) -> None:
    """Serve until cancelled."""

    async def receive(request: web.Request) -> web.Response:
        try:
            payload = await request.json()
        except ValueError:
            return web.Response(status=400, text="expected a JSON body")
        for event in events_from(payload, request.match_info.get("endpoint", ""), args):
            await queue.put(event)
        return web.Response(status=202, text="accepted")

    app = web.Application()
    app.router.add_post("/{endpoint:.*}", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, args.get("host", "127.0.0.1"), int(args.get("port", 5000)))
    await site.start()
    try:
        await asyncio.Future()
    finally:
        await runner.cleanup()


if __name__ == "__main__":

    class _PrintQueue(asyncio.Queue):
        async def put(self, item: Any) -> None:
            print(item, flush=True)

    asyncio.run(main(_PrintQueue(), {"port": 5000}))
