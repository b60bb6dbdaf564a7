# -*- coding: utf-8 -*-
# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to the sre.runbooks collection: restoring a pg_dump into a database, the one implementation.

Used by backup_verify (the trial restore into a throwaway database) and by pg_restore_into (db_restore's
restore beside the live database). Every decision lives here:

* the tool, by format x compression (``restore_plan``): psql for plain SQL (``ON_ERROR_STOP``, one
  transaction), pg_restore for custom, directory and tar; ``-j`` only where pg_restore can run in parallel
  (a custom file it can seek in, a directory); a compressed file is decompressed by ``gzip/bzip2/xz -dc``
  into the tool's standard input, or by the module's own inflate when that program is not installed;
* how the tools log in: every connection option in one ``-d`` conninfo without the password, the password
  in a private 0600 PGPASSFILE, unlinked as soon as written and read through an inherited descriptor (never in
  argv or an environment);
* what the restored database holds: tables and rows counted, tables of the dump missing after the restore.

Not a public API: other collections must not import it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import subprocess
import tempfile
import threading
import time
import uuid

try:
    import psycopg2
    from psycopg2 import sql as pgsql
    HAS_PSYCOPG2 = True
    PG_ERRORS = (psycopg2.Error,)
except ImportError:  # the modules report missing_required_lib
    pgsql = None
    HAS_PSYCOPG2 = False
    PG_ERRORS = ()

from ansible_collections.sre.runbooks.plugins.module_utils._dump_stream import Decompressed, DumpError, RawReader
from ansible_collections.sre.runbooks.plugins.module_utils._dump_verify import trial_outcome
from ansible_collections.sre.runbooks.plugins.module_utils._postgres import PgConnectError, connect, connection_kwargs

RESTORE_FORMATS = ("plain", "custom", "directory", "tar")
DECOMPRESSORS = ("gzip", "bzip2", "xz")     # outer compressions a restore can read
PARALLEL_FORMATS = ("custom", "directory")  # pg_restore -j: not tar, not from standard input
APP_NAME = "sre.runbooks restore"
COUNT_TABLES_SQL = """
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%%' AND n.nspname NOT LIKE 'pg_temp%%'
ORDER BY 1, 2"""


class RestoreError(Exception):
    """The restore could not be done; the message says why (never holds the password)."""


# --------------------------------------------------------------------------- decisions

def restore_plan(path, fmt, compression, conninfo, jobs=1, no_owner=False, tools=None, inflate=False):
    """Which command restores this dump: a dict {tool, argv, decompress, decompress_argv, stdin, jobs}.

    fmt/compression as backup_verify reports them (for a directory dump the compression is that of its
    data files, which pg_restore reads itself). tools maps psql, pg_restore, gzip, bzip2, xz to programs.
    inflate=True: decompress in this process (decompress_argv None) instead of with the program.
    """
    tools = tools or {}
    compression = compression or "none"
    if fmt not in RESTORE_FORMATS:
        raise RestoreError("cannot restore a dump of format %r (one of %s)" % (fmt, ", ".join(RESTORE_FORMATS)))
    piped = fmt != "directory" and compression != "none"
    if piped and compression not in DECOMPRESSORS:
        raise RestoreError("cannot restore a %s-compressed %s dump (gzip, bzip2 and xz are read; decompress it first)"
                           % (compression, fmt))
    used_jobs = 1
    if fmt == "plain":
        tool = "psql"
        argv = [tools.get("psql") or "psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "--no-password",
                "-o", os.devnull, "-d", conninfo]
        if not piped:
            argv += ["-f", path]
    else:
        tool = "pg_restore"
        argv = [tools.get("pg_restore") or "pg_restore", "--exit-on-error", "--no-password"]
        if no_owner:
            argv += ["--no-owner", "--no-privileges"]
        argv += ["-d", conninfo]
        if fmt in PARALLEL_FORMATS and not piped and jobs and int(jobs) > 1:
            used_jobs = int(jobs)
            argv += ["-j", str(used_jobs)]
        argv += ["--format", fmt, "--"] if piped else [path]
    decompress_argv = None
    if piped and not inflate:
        decompress_argv = [tools.get(compression) or compression, "-dc", "--", path]
    return {"tool": tool, "argv": argv, "decompress": compression if piped else None,
            "decompress_argv": decompress_argv, "stdin": piped, "jobs": used_jobs}


def plan_summary(plan):
    """One line for messages: 'gzip -dc | psql', 'pg_restore -j 4', ..."""
    tool = plan["tool"] + (" -j %d" % plan["jobs"] if plan["jobs"] > 1 else "")
    if not plan["stdin"]:
        return tool
    source = "%s -dc" % plan["decompress"] if plan["decompress_argv"] else "own %s inflate" % plan["decompress"]
    return "%s | %s" % (source, tool)


def find_pg_tool(name, bindir=None):
    """pg_restore/psql: from bindir, the PATH, then the newest /usr/lib/postgresql/*/bin."""
    if bindir:
        return os.path.join(bindir, name)
    found = find_program(name)
    if found:
        return found
    base = "/usr/lib/postgresql"
    try:
        versions = sorted((v for v in os.listdir(base) if v.replace(".", "").isdigit()), key=float, reverse=True)
    except OSError:
        versions = []
    for version in versions:
        candidate = os.path.join(base, version, "bin", name)
        if os.access(candidate, os.X_OK):
            return candidate
    return name


def find_program(name):
    """A program on the PATH, or None."""
    for directory in os.environ.get("PATH", "").split(os.pathsep):
        candidate = os.path.join(directory, name)
        if directory and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def resolve_tools(bindir=None, pg_restore=None, psql=None):
    """The programs a restore may run. pg_restore/psql: a path as given, a bare name looked up."""
    tools = {}
    for name, given in (("pg_restore", pg_restore), ("psql", psql)):
        if given and "/" in given:
            tools[name] = given
        else:
            tools[name] = find_pg_tool(given or name, bindir)
    for name in DECOMPRESSORS:
        tools[name] = find_program(name)
    return tools


def _quote_conninfo(value):
    return "'%s'" % str(value).replace("\\", "\\\\").replace("'", "\\'")


def conninfo(params, dbname):
    """(conninfo for -d without the password, the password or None) from the connection options."""
    kwargs = connection_kwargs(params)
    password = kwargs.pop("password", None)
    kwargs["dbname"] = dbname
    kwargs.setdefault("application_name", APP_NAME)
    return " ".join("%s=%s" % (k, _quote_conninfo(v)) for k, v in sorted(kwargs.items())), password or None


class PgPassFile:
    """A private 0600 pgpass file holding one password for one call.

    The file is unlinked as soon as it is written and kept open: the tools read it as /dev/fd/N (inherited, see
    ``pass_fds``), so nothing with the password is left on disk even when the module is killed (SIGKILL cannot be
    caught, a removal on exit would not run).
    """

    def __init__(self, password):
        self.password = password
        self.fd = None

    def __enter__(self):
        if not self.password:
            return None
        if "\n" in self.password or "\r" in self.password:
            raise RestoreError("the password holds a line break, which a pgpass file cannot carry")
        fd, path = tempfile.mkstemp(prefix="sre-pgpass-")
        try:
            os.unlink(path)
            escaped = self.password.replace("\\", "\\\\").replace(":", "\\:")
            os.write(fd, ("*:*:*:*:%s\n" % escaped).encode("utf-8"))
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        return "/dev/fd/%d" % fd

    def __exit__(self, *exc):
        if self.fd is not None:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = None
        return False


def passfile_fds(passfile):
    """The file descriptors a tool must inherit to read the passfile (``pass_fds`` of subprocess.Popen)."""
    if passfile and passfile.startswith("/dev/fd/"):
        return (int(passfile[len("/dev/fd/"):]),)
    return ()


def tool_env(passfile):
    """The tools' environment: ours, with PGPASSFILE for the call (no PGPASSWORD, which would win over it)."""
    env = dict(os.environ)
    if passfile:
        env.pop("PGPASSWORD", None)
        env["PGPASSFILE"] = passfile
    return env


# --------------------------------------------------------------------------- running

def _tail(text, lines=3):
    found = [line for line in (text or "").strip().splitlines() if line.strip()]
    return " / ".join(found[-lines:])


def _exit_text(rc):
    return "was killed by signal %d" % -rc if rc < 0 else "exited with %d" % rc


def run_plan(plan, path, env):
    """Run the plan; raise RestoreError with the tool's last error lines when it (or the decompressor) fails."""
    feeder_error = []
    dec = None
    dec_err = tempfile.TemporaryFile() if plan["decompress_argv"] else None
    try:
        stdin = subprocess.DEVNULL
        if plan["stdin"] and plan["decompress_argv"]:
            dec = subprocess.Popen(plan["decompress_argv"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=dec_err, env=env)
            stdin = dec.stdout
        elif plan["stdin"]:
            stdin = subprocess.PIPE
        proc = subprocess.Popen(plan["argv"], stdin=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                                pass_fds=passfile_fds(env.get("PGPASSFILE")))
        if dec is not None:
            dec.stdout.close()  # the tool holds the read end: the decompressor sees a closed pipe if it stops
        feeder = None
        if stdin is subprocess.PIPE:
            feeder = threading.Thread(target=_inflate_into, args=(path, plan["decompress"], proc.stdin, feeder_error))
            feeder.daemon = True
            feeder.start()
        dummy, err = proc.communicate() if feeder is None else (None, proc.stderr.read())
        if feeder is not None:
            proc.wait()
            feeder.join()
        dec_rc = dec.wait() if dec is not None else 0
        err = (err or b"").decode("utf-8", "replace")
        if proc.returncode != 0:
            why = _tail(err) or "no error output"
            raise RestoreError("the restore (%s) %s: %s" % (plan_summary(plan), _exit_text(proc.returncode), why))
        if dec_rc != 0:
            dec_err.seek(0)
            why = _tail(dec_err.read().decode("utf-8", "replace")) or "no error output"
            raise RestoreError("decompressing the dump (%s) %s: %s" % (plan["decompress"], _exit_text(dec_rc), why))
        if feeder_error:
            raise RestoreError("decompressing the dump: %s" % feeder_error[0])
    except OSError as exc:
        raise RestoreError("cannot run %s: %s" % (exc.filename or plan["argv"][0], exc.strerror or exc))
    finally:
        if dec is not None and dec.poll() is None:  # the tool could not start: do not leave the decompressor behind
            dec.kill()
            dec.wait()
        if dec_err is not None:
            dec_err.close()


def _inflate_into(path, compression, sink, errors):
    reader = RawReader(path, hash_it=False)
    try:
        for chunk in Decompressed(reader.chunks(), compression):
            sink.write(chunk)
    except DumpError as exc:
        errors.append(exc.message)
    except (IOError, OSError) as exc:  # the tool stopped reading (its error says why) or the file is unreadable
        if not isinstance(exc, BrokenPipeError):
            errors.append(str(exc))
    finally:
        reader.close()
        try:
            sink.close()
        except (IOError, OSError):
            pass


def count_tables(conn, queries=None):
    """[(schema.table, rows)] of every user table, sorted."""
    out = []
    with conn.cursor() as cur:
        cur.execute(COUNT_TABLES_SQL)
        _record(queries, cur)
        for schema, table in cur.fetchall():
            cur.execute(pgsql.SQL("SELECT count(*) FROM {}.{}").format(pgsql.Identifier(schema), pgsql.Identifier(table)))
            _record(queries, cur)
            out.append(("%s.%s" % (schema, table), cur.fetchone()[0]))
    conn.rollback()
    return out


def _record(queries, cur):
    if queries is not None and cur.query is not None:
        queries.append(cur.query.decode("utf-8", "replace") if isinstance(cur.query, bytes) else cur.query)


def db_params(params, dbname):
    """The connection options, aimed at dbname."""
    out = dict(params)
    out["login_db"] = dbname
    out["db"] = dbname
    return out


def admin_params(params):
    """The connection options for the maintenance connection (login_db, never the restore target)."""
    out = dict(params)
    out["db"] = None
    return out


def restore_into(params, dbname, path, fmt, compression, dump_tables, jobs=1, no_owner=False, tools=None, queries=None):
    """Restore the dump into the existing (empty) database dbname and look at what it holds.

    Returns {tables, rows, missing, seconds, table_rows, command}; raises RestoreError or PgConnectError.
    """
    start = time.time()
    tools = tools if tools is not None else resolve_tools()
    info, password = conninfo(params, dbname)
    decompress = compression if fmt != "directory" else "none"
    plan = restore_plan(path, fmt, compression, info, jobs=jobs, no_owner=no_owner, tools=tools,
                        inflate=decompress in DECOMPRESSORS and not tools.get(decompress))
    skipped = []
    with PgPassFile(password) as passfile:
        env = tool_env(passfile)
        with tempfile.NamedTemporaryFile("w", prefix="sre-toc-", suffix=".list") as toc:
            if plan["tool"] == "pg_restore" and not plan["stdin"]:
                skipped = _leave_out_extensions(params, dbname, plan, path, env, toc, queries)
            run_plan(plan, path, env)
    conn = connect(db_params(params, dbname), application_name=APP_NAME)
    try:
        counted = count_tables(conn, queries)
    finally:
        conn.close()
    names = set(name for name, dummy in counted)
    missing = [t for t in (dump_tables or []) if t not in names]
    return {"tables": len(counted), "rows": sum(rows for dummy, rows in counted), "missing": missing,
            "seconds": round(time.time() - start, 3), "table_rows": [{"name": n, "rows": r} for n, r in counted],
            "command": plan_summary(plan), "skipped_extensions": skipped}


_TOC_EXTENSION = re.compile(r"^\d+; \d+ \d+ (?:EXTENSION - |COMMENT - EXTENSION )(?P<name>\S+)")


def extensions_to_leave_out(toc_lines, is_superuser, creatable):
    """The extensions of a dump's TOC (``pg_restore -l``) that this login cannot create: none for a superuser;
    otherwise every extension that is not trusted (``pg_available_extension_versions.trusted``), as
    pg_stat_statements on a hosted server (Supabase), where the provider installs it, not the app's role."""
    if is_superuser:
        return []
    found = []
    for line in toc_lines:
        match = _TOC_EXTENSION.match(line)
        if match and match.group("name") not in creatable and match.group("name") not in found:
            found.append(match.group("name"))
    return found


def _leave_out_extensions(params, dbname, plan, path, env, toc, queries):
    """For a login that is not a superuser: restore with a TOC list (pg_restore -L) that leaves out the EXTENSION
    entries (and their comments) it may not create, so the restore of the data does not stop at the first one.
    Returns the names left out (the restored copy lacks them: the result and the plan say so)."""
    conn = connect(db_params(params, dbname), application_name=APP_NAME)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            _record(queries, cur)
            row = cur.fetchone()
            superuser = bool(row and row[0])
            creatable = set()
            if not superuser:
                cur.execute("SELECT DISTINCT name FROM pg_available_extension_versions WHERE trusted")
                _record(queries, cur)
                creatable = set(r[0] for r in cur.fetchall())
    finally:
        conn.close()
    if superuser:
        return []
    listing = subprocess.run([plan["argv"][0], "-l", "--", path], capture_output=True, text=True, env=env, check=False)
    if listing.returncode != 0:
        raise RestoreError("cannot list the dump's contents (pg_restore -l): %s" % _tail(listing.stderr))
    lines = listing.stdout.splitlines()
    leave_out = extensions_to_leave_out(lines, superuser, creatable)
    if not leave_out:
        return []
    for line in lines:
        match = _TOC_EXTENSION.match(line)
        toc.write((";" + line if match and match.group("name") in leave_out else line) + "\n")
    toc.flush()
    plan["argv"][-1:-1] = ["-L", toc.name]
    return leave_out


# --------------------------------------------------------------------------- databases

def server_version(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT current_setting('server_version_num')::int")
        return cur.fetchone()[0]


def create_database(conn, name, owner=None, queries=None):
    query = pgsql.SQL("CREATE DATABASE {}").format(pgsql.Identifier(name))
    if owner:
        query += pgsql.SQL(" OWNER {}").format(pgsql.Identifier(owner))
    with conn.cursor() as cur:
        cur.execute(query + pgsql.SQL(" TEMPLATE template0"))
        _record(queries, cur)


def drop_database(conn, name, queries=None):
    """DROP DATABASE, ending its sessions first (WITH (FORCE) from PostgreSQL 13)."""
    with conn.cursor() as cur:
        if server_version(conn) < 130000:
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
            _record(queries, cur)
            cur.execute(pgsql.SQL("DROP DATABASE IF EXISTS {}").format(pgsql.Identifier(name)))
        else:
            cur.execute(pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(pgsql.Identifier(name)))
        _record(queries, cur)


def database_exists(conn, name, queries=None):
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        _record(queries, cur)
        return cur.fetchone() is not None


# --------------------------------------------------------------------------- trial restore (backup_verify)

def trial_restore(params, dump, jobs=1, bindir=None, check_mode=False):
    """Restore the verified dump (backup_verify's result so far) into a throwaway database, count its tables
    and rows, always drop it. Returns the trial outcome (a plain dict); the verifier records it."""
    if check_mode:
        return trial_outcome(skipped="check mode: the trial restore creates a temporary database")
    start = time.time()
    name = "sre_trial_restore_%s" % uuid.uuid4().hex[:12]

    def failed(message, **extra):
        return trial_outcome(ok=False, error=message, database=name, duration_s=round(time.time() - start, 3), **extra)

    try:
        admin = connect(admin_params(params), application_name=APP_NAME, autocommit=True)
    except PgConnectError as exc:
        return failed("cannot connect to the server for the trial restore: %s" % exc)
    created = False
    outcome = None
    try:
        create_database(admin, name)
        created = True
        got = restore_into(params, name, dump["path"], dump["format"], dump["compression"], dump["tables"], jobs=jobs,
                           no_owner=True, tools=resolve_tools(bindir))
        outcome = trial_outcome(ok=not got["missing"], tables=got["tables"], rows=got["rows"], missing=got["missing"],
                                duration_s=round(time.time() - start, 3), database=name)
        if got["missing"]:
            outcome["error"] = "tables of the backup missing after the restore: %s" % ", ".join(got["missing"][:10])
    except (RestoreError, PgConnectError) as exc:
        outcome = failed("trial restore: %s" % exc if isinstance(exc, PgConnectError) else str(exc))
    except (OSError, ValueError) as exc:
        outcome = failed("trial restore: %s" % exc)
    except PG_ERRORS as exc:
        outcome = failed("trial restore: %s" % str(exc).strip())
    finally:
        if created:
            try:
                drop_database(admin, name)
            except PG_ERRORS as exc:
                if outcome is not None:
                    outcome["cleanup_error"] = "could not drop the throwaway database %s: %s" % (name, str(exc).strip())
        admin.close()
    return outcome
