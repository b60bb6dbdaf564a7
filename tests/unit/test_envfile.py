# SPDX-License-Identifier: GPL-3.0-or-later
"""plugins/module_utils/_envfile.py: quoting for sh/systemd and python-dotenv, parsing, updating in place.
(The real readers, sh and python-dotenv, read the written files in tests/integration/apprunbooks/test_secrets_local.py.)"""

from __future__ import annotations

import os
import stat
import sys

import pytest

from conftest import ensure_collection_link

sys.path.insert(0, str(ensure_collection_link()))
from ansible_collections.sre.runbooks.plugins.module_utils import _envfile as e  # noqa: E402

TRICKY = {
    "plain": "postgresql://app:pw@127.0.0.1:5432/app",
    "space": "two words",
    "hash": "a #not-a-comment",
    "hash_glued": "a#b",
    "single": "it's",
    "double": 'say "hi"',
    "both": "it's \"both\"",
    "dollar": "$HOME ${PATH} $(id) `id`",
    "backslash": "C:\\temp\\new",
    "ends_backslash": "trailing\\",
    "escaped_quote": "\\'",
    "newline": "line one\nline two\n",
    "tab": "a\tb",
    "leading_space": "  padded  ",
    "equals": "=a=b=",
    "tilde": "~/x",
    "unicode": "ünïcödé ✓",
    "shell_ops": "a;b&c|d>e<f(g)",
    "empty": "",
    "only_quote": "'",
}


@pytest.mark.parametrize("fmt", e.FORMATS)
@pytest.mark.parametrize("key", sorted(TRICKY))
def test_encode_then_parse_gives_the_value_back(fmt, key):
    value = TRICKY[key]
    if fmt == "dotenv" and "${" in value:
        value = value.replace("${PATH}", "$PATH")  # refused in dotenv: see below
    text = "NAME=%s\n" % e.encode(value, fmt)
    entries = e.parse(text, fmt)
    assert [(x.name, x.value) for x in entries] == [("NAME", value)]
    assert (entries[0].start, entries[0].end) == (0, len(text))


@pytest.mark.parametrize("value, shell, dotenv", [
    ("abc", "abc", "abc"),
    ("", "", ""),
    ("a b", "'a b'", "'a b'"),
    ("it's", "'it'\\''s'", "'it\\'s'"),
    ("a\\b", "'a\\b'", "'a\\\\b'"),
    ("$X", "'$X'", "'$X'"),
])
def test_encodings(value, shell, dotenv):
    assert e.encode(value, "shell") == shell and e.encode(value, "dotenv") == dotenv


def test_dotenv_refuses_what_python_dotenv_would_expand():
    for value in ("${HOME}", "a${X:-d}b", "'${Y}'"):
        with pytest.raises(ValueError) as err:
            e.encode(value, "dotenv")
        assert "expands ${...}" in str(err.value) and value not in str(err.value)
    assert e.encode("$HOME ${", "dotenv") == "'$HOME ${'" and e.encode("${HOME}", "shell") == "'${HOME}'"
    assert [x.value for x in e.parse("A='${HOME}'\nB='$HOME'\n", "dotenv")] == [None, "$HOME"]


def test_nul_and_unknown_format_are_refused():
    with pytest.raises(ValueError):
        e.encode("a\0b", "shell")
    with pytest.raises(ValueError):
        e.encode("a", "yaml")


FILE = """# comment
PORT=3000
export DATABASE_URL='postgresql://x'
MULTI='first
FAKE_NAME=inside the value
last'
EMPTY=
SHELLY=$HOME/x
PORT=3001 # a later one wins
"""


def test_parse_names_skip_comments_and_lines_inside_quoted_values():
    entries = e.parse(FILE, "shell")
    assert [x.name for x in entries] == ["PORT", "DATABASE_URL", "MULTI", "EMPTY", "SHELLY", "PORT"]
    assert e.names(entries) == (["PORT", "DATABASE_URL", "MULTI", "EMPTY", "SHELLY"], ["EMPTY"])
    by = {x.name: x for x in entries}
    assert by["MULTI"].value == "first\nFAKE_NAME=inside the value\nlast"
    assert by["SHELLY"].value is None  # depends on the shell: cannot be compared
    assert by["PORT"].value == "3001" and by["DATABASE_URL"].export


def test_dotenv_parse_rules():
    text = "A=x # comment\nB=\"l1\\nl2 ${X}\"\nC=\"tab\\t\"\nD='it\\'s'\nE=a#b\n"
    values = {x.name: x.value for x in e.parse(text, "dotenv")}
    assert values == {"A": "x", "B": None, "C": "tab\t", "D": "it's", "E": "a#b"}


def test_update_replaces_the_last_statement_keeps_export_and_appends():
    text, changed = e.update(FILE, {"DATABASE_URL": "postgresql://y", "MULTI": "one line", "NEW": "n e w",
                                    "PORT": "3001", "SHELLY": "/root/x"}, "shell")
    assert changed == ["DATABASE_URL", "MULTI", "NEW", "SHELLY"]
    assert "export DATABASE_URL=postgresql://y\n" in text and "FAKE_NAME" not in text
    assert text.startswith("# comment\nPORT=3000\n") and text.endswith("PORT=3001 # a later one wins\nNEW='n e w'\n")
    values = {x.name: x.value for x in e.parse(text, "shell")}
    assert values["MULTI"] == "one line" and values["SHELLY"] == "/root/x" and values["NEW"] == "n e w"
    again, changed = e.update(text, {"DATABASE_URL": "postgresql://y", "MULTI": "one line", "NEW": "n e w"}, "shell")
    assert again == text and changed == []


def test_update_appends_after_a_missing_final_newline_and_refuses_bad_names():
    assert e.update("A=1", {"B": "2"}, "dotenv") == ("A=1\nB=2\n", ["B"])
    with pytest.raises(ValueError):
        e.update("", {"1BAD": "x"}, "dotenv")


@pytest.mark.parametrize("fmt, text", [("shell", "A='open\nB=2\n"), ("dotenv", 'A="open\n'), ("shell", 'A="x\n')])
def test_unterminated_quote_is_an_error_without_the_value(fmt, text):
    with pytest.raises(e.EnvFileError) as err:
        e.parse(text, fmt)
    assert "line 1" in str(err.value) and "open" not in str(err.value) and "of A" in str(err.value)


# ---- writing: write_through (through a symlink, atomic, 0600 for new files and backups), the names-only diff


def _mode(path):
    return stat.S_IMODE(os.lstat(str(path)).st_mode)


def test_write_through_new_file_is_0600_and_has_no_backup(tmp_path):
    old = os.umask(0)
    try:
        target, backup = e.write_through(str(tmp_path / "new.env"), b"A=1\n")
    finally:
        os.umask(old)
    assert target == str(tmp_path / "new.env") and backup is None
    assert _mode(target) == 0o600 and sorted(p.name for p in tmp_path.iterdir()) == ["new.env"]


@pytest.mark.parametrize("old_mode", [0o600, 0o640, 0o604])
def test_write_through_keeps_the_mode_and_backs_up_0600(tmp_path, old_mode):
    path = tmp_path / "app.env"
    path.write_bytes(b"A=old\n")
    path.chmod(old_mode)
    target, backup = e.write_through(str(path), b"A=new\n", now=0)
    assert path.read_bytes() == b"A=new\n" and _mode(path) == old_mode
    assert backup == str(path) + ".19700101T000000Z~" and _mode(backup) == 0o600
    assert open(backup, "rb").read() == b"A=old\n"
    # a second backup in the same second gets its own name
    dummy, second = e.write_through(str(path), b"A=newer\n", now=0)
    assert second == str(path) + ".19700101T000000Z.1~" and open(second, "rb").read() == b"A=new\n"
    assert e.write_through(str(path), b"A=last\n", backup=False)[1] is None


def test_write_through_follows_a_symlink(tmp_path):
    target = tmp_path / "shared" / "app.env"
    target.parent.mkdir()
    target.write_bytes(b"A=old\n")
    link = tmp_path / "app.env"
    link.symlink_to(target)
    written, backup = e.write_through(str(link), b"A=new\n")
    assert written == str(target) and link.is_symlink() and os.readlink(str(link)) == str(target)
    assert target.read_bytes() == b"A=new\n" and os.path.dirname(backup) == str(target.parent)


def test_file_mode_never_loosens():
    class St:
        st_mode = 0o100640

    assert e.file_mode(None) == 0o600
    assert e.file_mode(St()) == 0o640
    assert e.file_mode(St(), group_kept=False) == 0o600  # the new file's group is not the old one's: no group access
    assert os.path.basename(e.backup_name("/x/app.env", now=86400)) == "app.env.19700102T000000Z~"


def test_skeleton_shows_names_never_values():
    text = "# secret comment s3cr3t\nA=s3cr3t-a\nexport B='two words'\nEMPTY=\nA=s3cr3t-a2\n"
    assert e.skeleton(text, "shell") == "A=<hidden>\nB=<hidden>\nEMPTY=\n"
    assert e.skeleton(text, "shell", changed=["B"]) == "A=<hidden>\nB=<hidden, changed>\nEMPTY=\n"
    assert "s3cr3t" not in e.skeleton(text, "shell") and e.skeleton("", "dotenv") == ""


def test_backups_newest_first_with_tagged_ones_marked(tmp_path):
    target = tmp_path / ".env"
    target.write_text("A=1\n")
    for name in (".env.20260101T000000Z~", ".env.20260301T000000Z~", ".env.20260301T000000Z.1~",
                 ".env.20260401T000000Z.before-restore~", ".env.20260401T000000Z.before-restore.2~",
                 ".env.bak", ".env.20260101T000000Z", "other.20260501T000000Z~", ".envx.20260501T000000Z~"):
        (tmp_path / name).write_text("A=0\n")
    found = [(os.path.basename(p), tagged) for p, tagged in e.backups(str(target))]
    assert found == [(".env.20260401T000000Z.before-restore.2~", True), (".env.20260401T000000Z.before-restore~", True),
                     (".env.20260301T000000Z.1~", False), (".env.20260301T000000Z~", False),
                     (".env.20260101T000000Z~", False)]
    assert e.backups(str(tmp_path / "missing" / ".env")) == []


def test_write_through_with_a_tag_names_the_backup_so(tmp_path):
    target = tmp_path / ".env"
    target.write_text("A=1\n")
    dummy, saved = e.write_through(str(target), b"A=2\n", tag="before-restore", now=0)
    assert os.path.basename(saved) == ".env.19700101T000000Z.before-restore~"
    dummy, again = e.write_through(str(target), b"A=3\n", tag="before-restore", now=0)
    assert os.path.basename(again) == ".env.19700101T000000Z.before-restore.1~"
    assert [tagged for dummy, tagged in e.backups(str(target))] == [True, True]


@pytest.mark.parametrize("fmt", ["shell", "dotenv"])
def test_differing_names_compares_values_by_name(fmt):
    before = "A=1\nB='two words'\nC=3\n# D=4\nE=\n"
    after = "A=1\nB=\"two words\"\nC=30\nF=6\nE=\n"
    assert e.differing_names(before, after, fmt) == ["C", "F"]
    assert e.differing_names(before, before, fmt) == []
    assert e.differing_names("A=1\nA=2\n", "A=2\n", fmt) == []  # the last statement of a name counts
