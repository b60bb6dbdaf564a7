# SPDX-License-Identifier: GPL-3.0-or-later
"""The env_file module run as Ansible runs it (conftest.run_module): new files 0600, an existing file's mode
and owner kept (never loosened), writes through a symlink to its target (the link stays a link), the previous
file kept as a 0600 backup named in backup_file, atomic (no temp file left), check mode honest (same
refusals, nothing written, no backup), a diff of names only; no value in any result."""

from __future__ import annotations

import os
import stat

import pytest

from conftest import run_module

SECRET = "s3cr3t-Env-Value 4711 'quoted'"
OLD_SECRET = "old-Secret-Value-0815"
EXISTING = "# app\nPORT=3000\nSESSION_SECRET=%s\n" % OLD_SECRET


def env_file(args, check_mode=False, diff=False):
    res = run_module("env_file", dict({"format": "shell"}, **args), check_mode=check_mode, diff=diff)
    assert "Traceback" not in res["raw"], res["raw"]
    for value in (SECRET, OLD_SECRET):
        assert value not in res["raw"], "a value shows in the result"
    return res


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def files(directory):
    return sorted(p.name for p in directory.iterdir())


def backups(directory, name):
    return sorted(p for p in directory.iterdir() if p.name.startswith(name + ".") and p.name.endswith("~"))


def test_new_file_is_0600_whatever_the_umask(tmp_path):
    path = tmp_path / "new.env"
    old = os.umask(0o022)
    try:
        res = env_file({"path": str(path), "create": True, "values": {"SESSION_SECRET": SECRET}})
    finally:
        os.umask(old)
    assert res["rc"] == 0 and res["changed"] is True, res
    assert mode(path) == 0o600
    assert res["backup_file"] is None and res["dest"] == str(path)
    assert files(tmp_path) == ["new.env"]  # no temp file, no backup of a file that did not exist


@pytest.mark.parametrize("old_mode", [0o600, 0o640, 0o644, 0o400])
def test_existing_mode_is_kept_and_a_0600_backup_named(tmp_path, old_mode):
    path = tmp_path / "app.env"
    path.write_text(EXISTING)
    path.chmod(old_mode)
    res = env_file({"path": str(path), "values": {"SESSION_SECRET": SECRET, "NEW_ONE": "new-value-9f"}})
    assert res["rc"] == 0 and res["changed"] is True, res
    assert res["changed_names"] == ["SESSION_SECRET", "NEW_ONE"]
    assert mode(path) == old_mode
    backup = res["backup_file"]
    assert backup and os.path.dirname(backup) == str(tmp_path) and backup.startswith(str(path) + ".")
    assert mode(backup) == 0o600
    with open(backup) as handle:
        assert handle.read() == EXISTING
    assert "SESSION_SECRET='%s'" % SECRET.replace("'", "'\\''") in path.read_text()
    assert files(tmp_path) == sorted(["app.env", os.path.basename(backup)])


def test_owner_and_group_are_kept(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("changing a file's owner needs root")
    path = tmp_path / "app.env"
    path.write_text(EXISTING)
    os.chown(path, 65534, 65534)
    path.chmod(0o640)
    res = env_file({"path": str(path), "values": {"SESSION_SECRET": SECRET}})
    assert res["rc"] == 0 and res["changed"] is True, res
    st = os.stat(path)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (65534, 65534, 0o640)
    bst = os.stat(res["backup_file"])
    assert (bst.st_uid, bst.st_gid, stat.S_IMODE(bst.st_mode)) == (65534, 65534, 0o600)


def test_writes_through_a_symlink_to_its_target(tmp_path):
    shared = tmp_path / "shared"
    release = tmp_path / "releases" / "r2"
    shared.mkdir()
    release.mkdir(parents=True)
    target = shared / ".env"
    target.write_text(EXISTING)
    target.chmod(0o640)
    link = release / ".env"
    link.symlink_to(os.path.relpath(target, release))
    res = env_file({"path": str(link), "values": {"SESSION_SECRET": SECRET}})
    assert res["rc"] == 0 and res["changed"] is True, res
    assert link.is_symlink() and os.readlink(link) == os.path.relpath(target, release)
    assert res["dest"] == str(target)
    assert "SESSION_SECRET='s3cr3t" in target.read_text() and mode(target) == 0o640
    # the backup is next to the target, not next to the link
    assert os.path.dirname(res["backup_file"]) == str(shared) and mode(res["backup_file"]) == 0o600
    assert files(release) == [".env"]
    again = env_file({"path": str(link), "values": {"SESSION_SECRET": SECRET}})
    assert again["changed"] is False and again["backup_file"] is None and link.is_symlink()


def test_a_dangling_symlink_creates_its_target_0600(tmp_path):
    target = tmp_path / "shared.env"
    link = tmp_path / "app.env"
    link.symlink_to(target.name)
    res = env_file({"path": str(link), "create": True, "values": {"SESSION_SECRET": SECRET}})
    assert res["rc"] == 0 and res["changed"] is True, res
    assert link.is_symlink() and target.is_file() and mode(target) == 0o600


def test_check_mode_is_honest(tmp_path):
    path = tmp_path / "app.env"
    path.write_text(EXISTING)
    path.chmod(0o640)
    res = env_file({"path": str(path), "values": {"SESSION_SECRET": SECRET}}, check_mode=True)
    assert res["rc"] == 0 and res["changed"] is True and res["changed_names"] == ["SESSION_SECRET"], res
    assert res["backup_file"] is None and path.read_text() == EXISTING and files(tmp_path) == ["app.env"]

    # what a real run would refuse, check mode refuses too
    missing_dir = tmp_path / "nowhere" / "app.env"
    for check in (True, False):
        res = env_file({"path": str(missing_dir), "create": True, "values": {"A": "value-b1"}}, check_mode=check)
        assert res["rc"] == 1 and res["failed"] is True and "directory" in res["msg"], res
    for check in (True, False):
        res = env_file({"path": str(tmp_path / "absent.env"), "values": {"A": "value-b1"}}, check_mode=check)
        assert res["rc"] == 1 and "create is false" in res["msg"], res
    assert files(tmp_path) == ["app.env"]


def test_diff_names_only(tmp_path):
    path = tmp_path / "app.env"
    path.write_text(EXISTING + "EMPTY=\n")
    res = env_file({"path": str(path), "values": {"SESSION_SECRET": SECRET, "API_TOKEN": "tok-abcdef"}},
                   check_mode=True, diff=True)
    assert res["rc"] == 0 and res["changed"] is True, res
    assert res["diff"]["before"] == "PORT=<hidden>\nSESSION_SECRET=<hidden>\nEMPTY=\n"
    assert res["diff"]["after"] == "PORT=<hidden>\nSESSION_SECRET=<hidden, changed>\nEMPTY=\nAPI_TOKEN=<hidden>\n"
    assert "3000" not in repr(res["diff"]) and "tok-abcdef" not in res["raw"]
    unchanged = env_file({"path": str(path), "values": {"PORT": "3000"}}, diff=True)
    assert unchanged["changed"] is False and "diff" not in unchanged


def test_backup_false_and_every_return_key(tmp_path):
    path = tmp_path / "app.env"
    path.write_text(EXISTING)
    res = env_file({"path": str(path), "values": {"SESSION_SECRET": SECRET}, "backup": False})
    assert res["rc"] == 0 and res["changed"] is True, res
    assert res["backup_file"] is None and files(tmp_path) == ["app.env"]
    assert {"exists", "readable", "names", "empty", "changed_names", "format", "dest", "backup_file"} <= set(res)
    assert res["names"] == ["PORT", "SESSION_SECRET"] and res["exists"] is True and res["readable"] is True


def test_two_changes_in_one_second_keep_two_backups(tmp_path):
    path = tmp_path / "app.env"
    path.write_text(EXISTING)
    first = env_file({"path": str(path), "values": {"SESSION_SECRET": SECRET}})
    second = env_file({"path": str(path), "values": {"SESSION_SECRET": SECRET + "-2"}})
    assert first["backup_file"] and second["backup_file"] and first["backup_file"] != second["backup_file"]
    assert len(backups(tmp_path, "app.env")) == 2
    with open(first["backup_file"]) as handle:
        assert handle.read() == EXISTING
