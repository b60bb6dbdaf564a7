# -*- coding: utf-8 -*-
# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to the sre.runbooks collection: reading and writing env files (NAME=value) for env_file.

Two formats, because the readers disagree on quoting:

``shell``
    POSIX sh (``set -a; . file``) and systemd ``EnvironmentFile=``: single quotes are literal and may span
    lines, a single quote is written ``'\\''``, backslash escapes outside quotes, ``"..."`` escapes
    ``$ ` " \\``. Every value is written exactly.
``dotenv``
    python-dotenv: ``'...'`` is literal except ``\\\\`` and ``\\'``, ``"..."`` knows the C escapes, unquoted
    values end at `` #``, and ``${VAR}`` is expanded in every value (no quoting or escape prevents it, so such
    values are refused). Every other value is written exactly for python-dotenv; values without ``'`` or ``\\``
    are written in a form docker compose and node's dotenv read the same way.

Values are written unquoted when they are plain (``[A-Za-z0-9_@%+=:,./-]``), else in single quotes. Values
never leave this module in messages: errors name the variable and the line only.

Writing (``write_through``): a symlink is followed to its target, which is replaced atomically (a temp file in
the target's directory, fsync, rename, fsync of the directory); an existing file keeps its mode and owner, a new
one is 0600, and the previous content is first kept in a 0600 backup next to the target.
Not a public API: other collections must not import it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import re
import stat
import tempfile
import time

FORMATS = ("shell", "dotenv")
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
PLAIN_RE = re.compile(r"^[A-Za-z0-9_@%+=:,./-]+$")
_STATEMENT_RE = re.compile(r"[ \t]*(export[ \t]+)?([A-Za-z_][A-Za-z0-9_.]*)[ \t]*=")
_DOTENV_DQ_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r",
                      "t": "\t", "v": "\v"}
_SHELL_DQ_ESCAPES = "$`\"\\"
# python-dotenv expands ${NAME} and ${NAME:-default} in every value, quoted or not, with no escape
DOTENV_INTERPOLATION_RE = re.compile(r"\$\{[^}:]*(?::-[^}]*)?\}")


class EnvFileError(Exception):
    """The file cannot be read as an env file (an unterminated quote); the message holds no value."""


class Entry(object):
    """One NAME=value statement: where it is in the text, and its value (None when it cannot be known
    without a shell: a $VAR, a command substitution, an interpolation)."""

    def __init__(self, name, start, end, value, export):
        self.name = name
        self.start = start
        self.end = end
        self.value = value
        self.export = export


def encode(value, fmt):
    """The text after ``NAME=`` that the readers of ``fmt`` turn back into exactly ``value``."""
    if fmt not in FORMATS:
        raise ValueError("unknown env file format %r (one of %s)" % (fmt, ", ".join(FORMATS)))
    value = "%s" % (value,)
    if "\0" in value:
        raise ValueError("a NUL character cannot be stored in an env file")
    if fmt == "dotenv" and DOTENV_INTERPOLATION_RE.search(value):
        raise ValueError("python-dotenv expands ${...} in every value and has no escape for it: it cannot be "
                         "written exactly in a dotenv file (use format shell)")
    if value == "":
        return ""
    if PLAIN_RE.match(value):
        return value
    if "'" not in value and "\\" not in value:
        return "'%s'" % value
    if fmt == "shell":
        return "'%s'" % value.replace("'", "'\\''")
    return "'%s'" % value.replace("\\", "\\\\").replace("'", "\\'")


def portable(value):
    """Whether encode(value, 'dotenv') reads the same in python-dotenv, docker compose and node dotenv."""
    value = "%s" % (value,)
    return "'" not in value and "\\" not in value


def _line_end(text, pos):
    end = text.find("\n", pos)
    return len(text) if end < 0 else end + 1


def _line_no(text, pos):
    return text.count("\n", 0, pos) + 1


def _shell_value(text, pos, name):
    """Parse a sh word from pos; return (value or None, position after the word)."""
    out = []
    known = True
    n = len(text)
    while pos < n:
        c = text[pos]
        if c in " \t\n;&|<>()":
            break
        if c == "\\":
            if pos + 1 < n and text[pos + 1] == "\n":
                pos += 2
                continue
            if pos + 1 < n:
                out.append(text[pos + 1])
            pos += 2
            continue
        if c == "'":
            close = text.find("'", pos + 1)
            if close < 0:
                raise EnvFileError("line %d: unterminated single quote in the value of %s" % (_line_no(text, pos), name))
            out.append(text[pos + 1:close])
            pos = close + 1
            continue
        if c == '"':
            opened = pos
            pos += 1
            while True:
                if pos >= n:
                    raise EnvFileError("line %d: unterminated double quote in the value of %s" % (
                        _line_no(text, opened), name))
                c = text[pos]
                if c == '"':
                    pos += 1
                    break
                if c == "\\" and pos + 1 < n and text[pos + 1] in _SHELL_DQ_ESCAPES + "\n":
                    if text[pos + 1] != "\n":
                        out.append(text[pos + 1])
                    pos += 2
                    continue
                if c in "$`":
                    known = False
                out.append(c)
                pos += 1
            continue
        if c in "$`" or (c == "~" and not out):
            known = False
        out.append(c)
        pos += 1
    return ("".join(out) if known else None), pos


def _dotenv_value(text, pos, name):
    """Parse a python-dotenv value from pos; return (value or None, position after the value)."""
    n = len(text)
    while pos < n and text[pos] in " \t":
        pos += 1
    if pos < n and text[pos] in "'\"":
        quote = text[pos]
        i = pos + 1
        out = []
        while True:
            if i >= n:
                raise EnvFileError("line %d: unterminated %s quote in the value of %s" % (
                    _line_no(text, pos), "single" if quote == "'" else "double", name))
            c = text[i]
            if c == quote:
                i += 1
                break
            if c == "\\" and i + 1 < n:
                nxt = text[i + 1]
                if quote == "'" and nxt in "\\'":
                    out.append(nxt)
                    i += 2
                    continue
                if quote == '"' and nxt in _DOTENV_DQ_ESCAPES:
                    out.append(_DOTENV_DQ_ESCAPES[nxt])
                    i += 2
                    continue
            out.append(c)
            i += 1
        value = "".join(out)
        return (None if DOTENV_INTERPOLATION_RE.search(value) else value), i
    end = text.find("\n", pos)
    end = n if end < 0 else end
    raw = re.sub(r"\s+#.*", "", text[pos:end]).strip()
    return (None if DOTENV_INTERPOLATION_RE.search(raw) else raw), end


def parse(text, fmt):
    """All NAME=value statements of an env file, in order (a name may repeat: the last one counts)."""
    entries = []
    pos = 0
    n = len(text)
    while pos < n:
        line_end = _line_end(text, pos)
        match = _STATEMENT_RE.match(text, pos, line_end)
        stripped = text[pos:line_end].strip()
        if not match or stripped.startswith("#"):
            pos = line_end
            continue
        name = match.group(2)
        start_value = match.end()
        if fmt == "shell":
            value, after = _shell_value(text, start_value, name)
        else:
            value, after = _dotenv_value(text, start_value, name)
        # the statement runs to the end of the line its value ends on (a trailing comment included)
        end = _line_end(text, after) if after < n else n
        entries.append(Entry(name, pos, end, value, bool(match.group(1))))
        pos = end
    return entries


def names(entries):
    """Names in order of first appearance, and the names whose (last) value is empty."""
    seen = []
    last = {}
    for entry in entries:
        if entry.name not in last:
            seen.append(entry.name)
        last[entry.name] = entry
    return seen, [name for name in seen if last[name].value == ""]


def update(text, values, fmt):
    """Set values (name -> value) in the env file text: the last statement of a name is replaced when its
    value differs (an ``export`` prefix is kept), missing names are appended in the given order.
    Returns (new text, names changed)."""
    entries = parse(text, fmt)
    last = {}
    for entry in entries:
        last[entry.name] = entry
    replace = []
    append = []
    changed = []
    for name, value in values.items():
        if not NAME_RE.match(name):
            raise ValueError("invalid variable name %r: letters, digits and _, not starting with a digit" % name)
        value = "%s" % (value,)
        line = "%s=%s\n" % (name, encode(value, fmt))
        entry = last.get(name)
        if entry is None:
            append.append(line)
            changed.append(name)
        elif entry.value != value:
            replace.append((entry.start, entry.end, ("export " if entry.export else "") + line))
            changed.append(name)
    for start, end, line in sorted(replace, reverse=True):
        text = text[:start] + line + text[end:]
    if append:
        if text and not text.endswith("\n"):
            text += "\n"
        text += "".join(append)
    return text, changed


# ---- writing ---------------------------------------------------------------------------------------------

NEW_FILE_MODE = 0o600
BACKUP_MODE = 0o600
HIDDEN = "<hidden>"
HIDDEN_CHANGED = "<hidden, changed>"


def resolve(path):
    """The file that is read and written for path: the target of a symlink (through every link), else path."""
    return os.path.realpath(path)


def backup_name(target, now=None, tag=""):
    """<target>.<UTC stamp>~ next to the target (the suffix Ansible's backups use); with a tag
    <target>.<UTC stamp>.<tag>~ (a backup that restore_latest never picks)."""
    return "%s.%s%s~" % (target, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now)), ("." + tag) if tag else "")


_BACKUP_RE = re.compile(r"\.(\d{8}T\d{6}Z)(\.[a-z][a-z-]*)?(\.\d+)?~$")


def backups(target):
    """The backups of target next to it, newest first, as (path, tagged): tagged ones were taken before a
    restore (write_through with a tag). Stamps sort as time; a collision number breaks ties."""
    directory, base = os.path.split(target)
    found = []
    try:
        entries = os.listdir(directory or ".")
    except OSError:
        return []
    for entry in entries:
        if not entry.startswith(base + "."):
            continue
        match = _BACKUP_RE.match(entry[len(base):])
        if not match or not os.path.isfile(os.path.join(directory, entry)):
            continue
        found.append(((match.group(1), int((match.group(3) or ".0")[1:])), os.path.join(directory, entry),
                      bool(match.group(2))))
    found.sort(reverse=True)
    return [(path, tagged) for dummy, path, tagged in found]


def differing_names(before_text, after_text, fmt):
    """Names whose value differs between two env file texts, or that only one sets, sorted (values compared
    here, never returned)."""
    def last(text):
        values = {}
        for entry in parse(text, fmt):
            values[entry.name] = entry.value
        return values
    before, after = last(before_text), last(after_text)
    return sorted(name for name in set(before) | set(after) if before.get(name) != after.get(name))


def _keep_owner(fd, st):
    """Give the open file the owner and group of st where allowed; return whether its group is st's group."""
    current = os.fstat(fd)
    if (current.st_uid, current.st_gid) != (st.st_uid, st.st_gid):
        try:
            os.fchown(fd, st.st_uid, st.st_gid)
        except OSError as exc:
            if exc.errno != errno.EPERM:
                raise
            try:  # not root: the group can still be kept when the user is a member of it
                os.fchown(fd, -1, st.st_gid)
            except OSError as exc2:
                if exc2.errno != errno.EPERM:
                    raise
    return os.fstat(fd).st_gid == st.st_gid


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
    os.fsync(fd)


def _fsync_dir(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot sync a directory
        pass
    finally:
        os.close(fd)


def write_backup(target, data, st, now=None, tag=""):
    """Keep data (the current content of target) in a new 0600 file next to target, owned like target where
    allowed; return its path."""
    base = backup_name(target, now, tag)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    for attempt in range(1000):
        name = base if attempt == 0 else "%s.%d~" % (base[:-1], attempt)
        try:
            fd = os.open(name, flags, BACKUP_MODE)
        except OSError as exc:
            if exc.errno == errno.EEXIST:
                continue
            raise
        try:
            os.fchmod(fd, BACKUP_MODE)
            _keep_owner(fd, st)
            _write_all(fd, data)
        except BaseException:
            os.close(fd)
            os.unlink(name)
            raise
        os.close(fd)
        return name
    raise OSError(errno.EEXIST, "no free backup name next to %s" % target)


def file_mode(st, group_kept=True):
    """The mode of the rewritten file: NEW_FILE_MODE for a new file, else the mode of the old one; without the
    group bits when the old file's group could not be kept (its group members could otherwise read it)."""
    if st is None:
        return NEW_FILE_MODE
    mode = stat.S_IMODE(st.st_mode)
    return mode if group_kept else mode & ~0o070


def write_atomic(target, data, st=None):
    """Replace target with data: a temp file in target's directory, fsync, rename over target, fsync of the
    directory. st is os.stat of the existing target (its mode and owner are kept) or None (a new 0600 file).
    The temp file is 0600 from its creation on: the data is never readable by others, not even for a moment."""
    directory = os.path.dirname(target)
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(target), suffix=".tmp", dir=directory)
    try:
        try:
            group_kept = _keep_owner(fd, st) if st is not None else True
            _write_all(fd, data)
            os.fchmod(fd, file_mode(st, group_kept))
        finally:
            os.close(fd)
        os.rename(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)


def write_through(path, data, backup=True, now=None, tag=""):
    """Write data to the file path names (through a symlink), keeping the old content in a backup.

    Returns (target, backup path or None)."""
    target = resolve(path)
    try:
        st = os.stat(target)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise
        st = None
    saved = None
    if st is not None and backup:
        with open(target, "rb") as handle:
            saved = write_backup(target, handle.read(), st, now, tag)
    write_atomic(target, data, st)
    return target, saved


def skeleton(text, fmt, changed=()):
    """The names of an env file as NAME=<hidden> lines (NAME= when empty), for a diff that shows no value:
    a name in changed is NAME=<hidden, changed>."""
    seen, empty = names(parse(text, fmt))
    lines = []
    for name in seen:
        if name in changed:
            lines.append("%s=%s" % (name, HIDDEN_CHANGED))
        elif name in empty:
            lines.append("%s=" % name)
        else:
            lines.append("%s=%s" % (name, HIDDEN))
    return "".join(line + "\n" for line in lines)
