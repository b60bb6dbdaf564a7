# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark sre.runbooks.backup_verify against the tools people use to check dumps.

1. Full verification of a gzip plain dump (>= 1 GiB uncompressed; 256 MiB with --quick, any size with
   --plain-mib) against the gzip checkers on the same file, each printed as its own ratio:
   ``igzip -t`` (ISA-L, only checks CRCs: the fastest)                       goal: ratio <= 1.5
   ``pigz -t``                                                               (reported)
   ``gzip -t``                                                               goal: ratio <= 1.0
2. Full verification of a custom-format dump (real ``pg_dump -Fc``) against
   ``pg_restore -f /dev/null`` on the same file.                             goal: ratio <= 0.7
3. Peak RSS of the module process on the gzip dump.                          goal: < 100 MiB

The module runs the way Ansible runs it (a separate Python process reading an args file); times are
the median of --runs runs, baselines measured in the same run, interleaved with ours (one run of each
tool in turn) so that load from elsewhere on the machine falls on all of them alike. Inputs are generated once and cached in
/var/cache/sre-runbooks/bench/ (BENCH_CACHE overrides): the plain dump is a synthesised pg_dump stream
(real header, CREATE TABLE, COPY blocks of realistic rows, footer) compressed by ``gzip -6`` as
``pg_dump | gzip`` does; the custom dump is ``pg_dump -Fc`` of a generated table on a throwaway cluster.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COLLECTIONS = REPO / "build" / "collections"
CACHE = Path(os.environ.get("BENCH_CACHE", "/var/cache/sre-runbooks/bench"))
PG_BIN = Path(os.environ.get("PG_BINDIR", sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1]))
MIB = 1 << 20

HEADER = b"""--
-- PostgreSQL database dump
--

\\restrict BenchRestrictKey00000000000000000000000000000000000000000000000

-- Dumped from database version 15.18 (Debian 15.18-0+deb12u1)
-- Dumped by pg_dump version 15.18 (Debian 15.18-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

SET default_tablespace = '';

SET default_table_access_method = heap;

"""
FOOTER = b"""--
-- PostgreSQL database dump complete
--

\\unrestrict BenchRestrictKey00000000000000000000000000000000000000000000000

"""
WORDS = [w.encode() for w in (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa "
    "quebec romeo sierra tango uniform victor whiskey xray yankee zulu hammer nail screw bolt washer "
    "drill saw paint brush tape glue rope chain hinge lock key bucket ladder").split()]


def log(msg):
    print(msg, flush=True)


def synth_plain(out_path, target_bytes):
    """Write a realistic plain pg_dump stream of about target_bytes, through gzip -6."""
    rnd = random.Random(42)
    tmp = out_path.with_suffix(".tmp")
    with open(tmp, "wb") as sink:
        gz = subprocess.Popen(["gzip", "-6", "-c"], stdin=subprocess.PIPE, stdout=sink)
        w = gz.stdin
        w.write(HEADER)
        written = len(HEADER)
        tables = 8
        per_table = target_bytes // tables
        row_id = 0
        for t in range(tables):
            name = b"public.bench_%d" % t
            ddl = (b"--\n-- Name: bench_%d; Type: TABLE; Schema: public; Owner: postgres\n--\n\n"
                   b"CREATE TABLE %s (\n    id bigint NOT NULL,\n    sku text,\n    name text,\n    qty integer,\n"
                   b"    price numeric(12,2),\n    created timestamp with time zone,\n    note text\n);\n\n\n"
                   b"ALTER TABLE %s OWNER TO postgres;\n\n" % (t, name, name))
            w.write(ddl)
            written += len(ddl)
        for t in range(tables):
            head = (b"--\n-- Data for Name: bench_%d; Type: TABLE DATA; Schema: public; Owner: postgres\n--\n\n"
                    b"COPY public.bench_%d (id, sku, name, qty, price, created, note) FROM stdin;\n" % (t, t))
            w.write(head)
            written += len(head)
            done = 0
            while done < per_table:
                rows = []
                for dummy in range(2000):
                    row_id += 1
                    note = b"\\N" if row_id % 7 else b" ".join(rnd.choice(WORDS) for dummy in range(rnd.randint(2, 9)))
                    rows.append(b"%d\tSKU-%06d\t%s %s\t%d\t%d.%02d\t2024-%02d-%02d %02d:%02d:%02d+00\t%s\n" % (
                        row_id, rnd.randint(0, 999999), rnd.choice(WORDS), rnd.choice(WORDS), rnd.randint(0, 500),
                        rnd.randint(0, 9999), rnd.randint(0, 99), rnd.randint(1, 12), rnd.randint(1, 28),
                        rnd.randint(0, 23), rnd.randint(0, 59), rnd.randint(0, 59), note))
                block = b"".join(rows)
                w.write(block)
                done += len(block)
            w.write(b"\\.\n\n\n")
            written += done + 5
        w.write(FOOTER)
        written += len(FOOTER)
        w.close()
        if gz.wait() != 0:
            raise SystemExit("gzip failed while generating %s" % out_path)
    os.replace(tmp, out_path)
    return written


def make_custom(out_path, rows):
    """pg_dump -Fc of a generated table on a throwaway cluster (as the postgres user)."""
    base = Path(tempfile.mkdtemp(prefix="bench-pg-", dir="/tmp"))
    os.chmod(base, 0o777)
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    os.chmod(sock, 0o777)
    port = str(20000 + os.getpid() % 20000)

    def as_pg(argv, **kw):
        return subprocess.run(["runuser", "-u", "postgres", "--"] + argv, check=True, capture_output=True, **kw)

    try:
        as_pg([str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync"])
        as_pg([str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(base / "log"), "-w", "-o",
               "-p %s -k %s -c listen_addresses='' -c fsync=off -c synchronous_commit=off" % (port, sock), "start"])
        psql = [str(PG_BIN / "psql"), "-h", str(sock), "-p", port, "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-q"]
        subprocess.run(psql + ["-c", "CREATE DATABASE bench"], check=True)
        subprocess.run(psql + ["-d", "bench", "-c",
                               "CREATE TABLE items (id bigint PRIMARY KEY, sku text, name text, qty int, price numeric(12,2), "
                               "created timestamptz, note text); "
                               "INSERT INTO items SELECT g, 'SKU-' || lpad((g * 7919 %% 1000000)::text, 6, '0'), "
                               "'item ' || (g %% 5000), g %% 500, (g %% 10000) / 100.0, "
                               "'2024-01-01'::timestamptz + g * interval '1 second', "
                               "CASE WHEN g %% 7 = 0 THEN md5(g::text) END FROM generate_series(1::bigint, %d) g; "
                               "CREATE TABLE customers AS SELECT g AS id, 'customer ' || g AS name FROM generate_series(1, %d) g;"
                               % (rows, rows // 10)], check=True)
        tmp = out_path.with_suffix(".tmp")
        subprocess.run([str(PG_BIN / "pg_dump"), "-h", str(sock), "-p", port, "-U", "postgres", "-Fc", "-f", str(tmp), "bench"],
                       check=True)
        os.replace(tmp, out_path)
    finally:
        subprocess.run(["runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate",
                        "-w", "stop"], capture_output=True, check=False)
        shutil.rmtree(base, ignore_errors=True)


LAST_CPU = [0.0]  # CPU seconds (user + sys) of the last process timed() ran: printed beside the wall times


def timed(argv, env=None, stdout=subprocess.DEVNULL):
    """Run argv, return (seconds, max RSS in MiB of that process, rc, output); its CPU time goes to LAST_CPU."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE if stdout is None else stdout, stderr=subprocess.PIPE, env=env)
    out = proc.stdout.read() if proc.stdout else b""
    err = proc.stderr.read()
    dummy_pid, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    LAST_CPU[0] = usage.ru_utime + usage.ru_stime
    return elapsed, usage.ru_maxrss / 1024.0, proc.returncode, out + err


def module_cmd(args):
    handle = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
    json.dump({"ANSIBLE_MODULE_ARGS": args}, handle)
    handle.close()
    env = dict(os.environ)
    env["PYTHONPATH"] = str(COLLECTIONS) + os.pathsep + env.get("PYTHONPATH", "")
    return [sys.executable, "-m", "ansible_collections.sre.runbooks.plugins.modules.backup_verify", handle.name], env, handle.name


def median(values):
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2.0


def run_module_once(argv, env):
    elapsed, rss, rc, out = timed(argv, env=env, stdout=None)
    text = out.decode("utf-8", "replace")
    try:
        result = json.loads(text[text.index("{"):text.rindex("}") + 1])
    except ValueError:
        raise SystemExit("the module did not return JSON (rc %s):\n%s" % (rc, text[-2000:]))
    if not result.get("valid"):
        raise SystemExit("the module says the benchmark file is invalid: %s" % result.get("findings"))
    return elapsed, rss, result


def run_tool_once(argv):
    elapsed, dummy_rss, rc, out = timed(argv)
    if rc != 0:
        raise SystemExit("%s failed (rc %s): %s" % (" ".join(argv), rc, out[-500:]))
    return elapsed


def compare(path, baselines, runs):
    """Run the module and every baseline argv in turn, runs times; return the median seconds of each,
    the module's peak RSS and its last result (the CPU seconds of every run go to CPU_TIMES)."""
    argv, env, argfile = module_cmd({"path": str(path), "depth": "full"})
    times = {"ours": []}
    times.update((name, []) for name in baselines)
    CPU_TIMES.clear()
    peak, result = 0.0, None
    try:
        for dummy in range(runs):
            for name, tool in baselines.items():
                times[name].append(run_tool_once(tool))
                CPU_TIMES.setdefault(name, []).append(LAST_CPU[0])
            elapsed, rss, result = run_module_once(argv, env)
            CPU_TIMES.setdefault("ours", []).append(LAST_CPU[0])
            times["ours"].append(elapsed)
            peak = max(peak, rss)
    finally:
        os.unlink(argfile)
    return dict((name, median(values)) for name, values in times.items()), times, peak, result


CPU_TIMES = {}  # name -> CPU seconds of each run in the last compare()


def cpu_note(name):
    """'; CPU 0.61s' (median user+sys of the runs): the wall time above it includes waiting for other load."""
    return "; CPU %.2fs" % median(CPU_TIMES[name]) if CPU_TIMES.get(name) else ""


def ensure_link():
    target = COLLECTIONS / "ansible_collections" / "sre" / "runbooks"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(REPO, target_is_directory=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller inputs (256 MiB plain, 80 MiB custom) for CI")
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement (the median is kept)")
    parser.add_argument("--plain-mib", type=int, help="uncompressed size of the plain dump in MiB (600 gives ~200 MiB gzip)")
    parser.add_argument("--custom-rows", type=int, help="rows of the custom dump's main table")
    parser.add_argument("--skip-custom", action="store_true", help="only the plain gzip dump")
    opts = parser.parse_args()
    ensure_link()
    CACHE.mkdir(parents=True, exist_ok=True)
    size = 256 * MIB if opts.quick else 1024 * MIB + 16 * MIB
    if opts.plain_mib:
        size = opts.plain_mib * MIB
    plain = CACHE / ("plain_%dm.sql.gz" % (size // MIB))
    custom_rows = opts.custom_rows or (4000000 if opts.quick else 16000000)
    custom = CACHE / ("custom_%dk.dump" % (custom_rows // 1000))
    if not plain.exists():
        log("generating %s (%d MiB uncompressed, gzip -6; once, cached)" % (plain, size // MIB))
        synth_plain(plain, size)
    if not custom.exists():
        log("generating %s (pg_dump -Fc of %d rows; once, cached)" % (custom, custom_rows))
        make_custom(custom, custom_rows)

    fails = []
    # the module uses two cores (inflating beside reading+sha256 and the checks), the gzip checkers one: when
    # other work holds a core the ratio rises, so the load is printed beside the figures
    log("load average before: %.2f %.2f %.2f (%d cores)" % (os.getloadavg() + (os.cpu_count() or 0,)))
    # 1. gzip plain, against every gzip checker installed
    tools = {"igzip -t": ["igzip", "-t"], "pigz -t": ["pigz", "-t"], "gzip -t": ["gzip", "-t"]}
    goals = {"igzip -t": 1.5, "gzip -t": 1.0}
    baselines = {}
    for name, tool in tools.items():
        if shutil.which(tool[0]):
            baselines[name] = tool + [str(plain)]
        else:
            log("  (%s is not installed: scripts/bootstrap.sh installs it; no %s ratio)" % (tool[0], name))
    med, times, peak, res = compare(plain, baselines, opts.runs)
    log("plain gzip dump: %s, %.0f MiB compressed, %.0f MiB uncompressed, %d COPY blocks, median of %d run(s)"
        % (plain.name, plain.stat().st_size / MIB, res["uncompressed_bytes"] / MIB, res["data_blocks"], opts.runs))
    log("  backup_verify depth=full (+sha256, COPY/footer checks): %.2fs  (runs: %s%s)"
        % (med["ours"], " ".join("%.2f" % t for t in times["ours"]), cpu_note("ours")))
    for name in baselines:
        ratio = med["ours"] / med[name]
        goal = goals.get(name)
        log("  baseline %s: %.2fs  (runs: %s%s)" % (name, med[name], " ".join("%.2f" % t for t in times[name]), cpu_note(name)))
        log("  ratio = ours / %s = %.2f (%s); best run / best run = %.2f (the least disturbed by other load)"
            % (name, ratio, "goal <= %.1f" % goal if goal else "reported", min(times["ours"]) / min(times[name])))
        if goal and ratio > goal:
            fails.append("plain ratio vs %s %.2f" % (name, ratio))
    log("  peak RSS of the module process = %.1f MiB (goal < 100 MiB)" % peak)
    if peak >= 100:
        fails.append("peak RSS %.1f MiB" % peak)
    # 2. custom
    if opts.skip_custom:
        log("custom dump: skipped (--skip-custom)")
    else:
        med, times, peak_c, res = compare(custom, {"pg_restore": [str(PG_BIN / "pg_restore"), "-f", "/dev/null", str(custom)]},
                                          opts.runs)
        ratio = med["ours"] / med["pg_restore"]
        log("custom dump: %s, %.0f MiB, %.0f MiB of data, %d data blocks"
            % (custom.name, custom.stat().st_size / MIB, res["uncompressed_bytes"] / MIB, res["data_blocks"]))
        log("  baseline pg_restore -f /dev/null: %.2fs (runs: %s%s)   backup_verify depth=full: %.2fs (runs: %s%s)"
            % (med["pg_restore"], " ".join("%.2f" % t for t in times["pg_restore"]), cpu_note("pg_restore"), med["ours"],
               " ".join("%.2f" % t for t in times["ours"]), cpu_note("ours")))
        log("  ratio = ours / pg_restore = %.2f (goal <= 0.7)" % ratio)
        log("  peak RSS of the module process = %.1f MiB" % peak_c)
        if ratio > 0.7:
            fails.append("custom ratio %.2f" % ratio)
    log("load average after: %.2f %.2f %.2f" % os.getloadavg())
    if fails:
        log("GOALS MISSED: " + ", ".join(fails))
        return 1
    log("all goals met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
