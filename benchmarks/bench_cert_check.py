# SPDX-License-Identifier: GPL-3.0-or-later
"""cert_check vs a shell loop of openssl s_client | openssl x509 -enddate, same endpoints, same run.

200 TLS endpoints on loopback (one thread per port in this process), checked in ONE module call (the way Ansible
runs it: a separate Python process), against the classic loop over the same endpoints:

    openssl s_client -connect 127.0.0.1:PORT -servername localhost </dev/null | openssl x509 -noout -enddate

Prints ``ratio = ours / baseline (goal <= 0.1)``. ``--quick``: 40 endpoints.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "tests" / "integration" / "tls"))

from conftest import run_module  # noqa: E402
from tls_support import Pki, TlsServer, write_chain  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="40 endpoints instead of 200")
    parser.add_argument("--endpoints", type=int, default=None)
    args = parser.parse_args()
    count = args.endpoints or (40 if args.quick else 200)

    pki = Pki()
    with tempfile.TemporaryDirectory(prefix="bench-cert-") as tmp:
        base = Path(tmp)
        certfile, keyfile = write_chain(base, "server", pki.leaf(60), pki.intermediate)
        ca = base / "ca.pem"
        ca.write_bytes(pki.root.pem)
        servers = [TlsServer(certfile, keyfile) for dummy in range(count)]
        ports = [s.port for s in servers]
        try:
            endpoints = [{"host": "127.0.0.1", "port": p, "server_name": "localhost"} for p in ports]
            start = time.perf_counter()
            result = run_module("cert_check", {"endpoints": endpoints, "ca_cert": str(ca), "timeout": 10})
            ours = time.perf_counter() - start
            ok = sum(1 for e in result.get("certificates", []) if e.get("status") == "ok")
            if result.get("rc") != 0 or ok != count:
                print(result.get("raw", "")[-2000:])
                raise SystemExit("cert_check: %d/%d endpoints ok" % (ok, count))

            start = time.perf_counter()
            dates = 0
            for port in ports:
                proc = subprocess.run(
                    "openssl s_client -connect 127.0.0.1:%d -servername localhost </dev/null 2>/dev/null"
                    " | openssl x509 -noout -enddate" % port,
                    shell=True, capture_output=True, text=True, check=False)
                dates += proc.stdout.startswith("notAfter=")
            baseline = time.perf_counter() - start
            if dates != count:
                raise SystemExit("openssl loop: %d/%d end dates read" % (dates, count))
        finally:
            for server in servers:
                server.close()

    print("endpoints = %d" % count)
    print("cert_check (one module call, full validation) = %.2f s" % ours)
    print("baseline (openssl s_client | openssl x509 -enddate loop) = %.2f s" % baseline)
    print("ratio = %.3f (goal <= 0.1)" % (ours / baseline))


if __name__ == "__main__":
    main()
