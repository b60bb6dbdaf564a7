# SPDX-License-Identifier: GPL-3.0-or-later
# sre-lane: local (a FAKE docker, pm2 and flyctl on PATH, state under tmp_path: no engine, no lab)
"""Rollback from the app's own history (issue 12, "Rollback refuses every app"), on localhost without docker or
systemd: when no release record of ours exists, sre.runbooks.target finds the release that ran before, says where it
found it, and rolls back to it.

- a git checkout (pm2 kind with a fake pm2, the same task file as systemd): after two pulls, HEAD@{1} from the reflog;
  a fresh clone has no earlier reflog entry: HEAD~1; the build commands run after the checkout;
- release dirs (ansistrano layout): the directory before the one current points to, by name (timestamps) or mtime;
- Fly (the FAKE flyctl, lab/fake-flyctl): the newest complete release before the current one, deployed by image;
- nothing before the current release: one clear refusal, nothing changed;
- a record of ours: the record wins over the history;
- a second rollback changes nothing (the history moved, our rollback is remembered).

The public entry point previous_release (target_previous_release {id, source, from, release, reason}) is read-only:
it runs in --check with changed=0.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from playbook_runner import run_playbook

REPO = Path(__file__).resolve().parents[3]
FLYCTL = REPO / "lab" / "fake-flyctl" / "flyctl"
FLY_APP = "hotdash-production"
TOKEN = "FlyV1 fm2_HISTORY-3b7e1f-not-a-real-token"
APP = "cookcam-api"

ENTRY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Run the target entry point
      ansible.builtin.include_role:
        name: sre.runbooks.target
        tasks_from: "{{ entry }}"
    - name: Keep what the target found
      ansible.builtin.copy:
        dest: "{{ out_file }}"
        content: "{{ {'previous': target_previous_release | default(none), 'rollback': target_rollback | default(none),
                      'status': target_status | default(none)} | to_json }}"
        mode: "0600"
      changed_when: false
      check_mode: false
"""

FAKE_PM2 = """#!%s
# FAKE pm2 for the tests: one online app (cwd = the app dir); every other call is logged.
import json, os, sys, time
if sys.argv[1:] == ["jlist"]:
    name = os.environ["FAKE_PM2_APP"]
    print(json.dumps([{"name": name, "pm_id": 0, "pid": 4242, "monit": {"memory": 1048576, "cpu": 0},
                       "pm2_env": {"name": name, "status": "online", "pm_uptime": int(time.time() * 1000),
                                   "restart_time": 0, "pm_cwd": os.environ["FAKE_PM2_CWD"]}}]))
else:
    with open(os.environ["FAKE_PM2_LOG"], "a") as log:
        log.write(" ".join(sys.argv[1:]) + "\\n")
""" % sys.executable


def git(cwd, *args):
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.invalid", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.invalid", GIT_CONFIG_GLOBAL="/dev/null", GIT_CONFIG_NOSYSTEM="1")
    return subprocess.run(["git", "-C", str(cwd), *args], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


def commit(repo, text):
    (repo / "server.js").write_text("// release %s\n" % text)
    git(repo, "add", "server.js")
    git(repo, "commit", "-q", "-m", text)
    return git(repo, "rev-parse", "HEAD")


def origin_with(tmp_path, count):
    origin = tmp_path / "origin"
    origin.mkdir()
    git(origin, "init", "-q", "-b", "main")
    return origin, [commit(origin, "c%d" % n) for n in range(1, count + 1)]


def clone(tmp_path, origin):
    app = tmp_path / "app"
    git(tmp_path, "clone", "-q", str(origin), str(app))
    return app


@pytest.fixture
def target(tmp_path, collections_path):
    """run(entry, variables, check=False) -> (rc, changed, output, found) on localhost: kind pm2 through a fake pm2
    (the app dir is read by the same task file as systemd), or any kind given in variables."""
    book = tmp_path / "entry.yml"
    book.write_text(ENTRY)
    pm2 = tmp_path / "bin" / "pm2"
    pm2.parent.mkdir()
    pm2.write_text(FAKE_PM2)
    pm2.chmod(0o755)
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()

    def run(entry, variables=None, check=False):
        out_file = tmp_path / "found.json"
        if out_file.exists():
            out_file.unlink()
        merged = {"sre_target_kind": "pm2", "sre_app_name": APP, "sre_app_dir": str(tmp_path / "app"),
                  "sre_pm2_bin": str(pm2), "sre_proxy_kind": "none", "sre_confirm": "yes",
                  "target_state_dir": str(tmp_path / "state"), "target_health_retries": 1, "target_health_delay": 0,
                  "entry": entry, "out_file": str(out_file)}
        merged.update(variables or {})
        r = run_playbook(book, tmp_path=tmp_path, target="localhost", extra_vars=merged, check=check, verbosity=1,
                         timeout=600, secrets=[TOKEN],
                         env={"FAKE_PM2_APP": APP, "FAKE_PM2_CWD": str(tmp_path / "app"),
                              "FAKE_PM2_LOG": str(tmp_path / "pm2.log"), "TMPDIR": str(tmpdir),
                              "FAKE_FLY_STATE": str(tmp_path / "fly" / "state.json"),
                              "FAKE_FLY_REQUIRE_TOKEN_SHA256": hashlib.sha256(TOKEN.encode()).hexdigest(),
                              "FLY_API_TOKEN": None, "FLY_ACCESS_TOKEN": None, "FLY_CONFIG_DIR": None,
                              "FAKE_FLY_FAULT": None})
        found = json.loads(out_file.read_text()) if out_file.exists() else None
        return r.rc, r.changed(), " ".join(r.output.split()), found

    return run


# ---------------------------------------------------------------- git checkout


def test_git_reflog_after_two_pulls_gives_the_commit_before_and_rollback_returns_to_it(target, tmp_path):
    origin, (c1,) = origin_with(tmp_path, 1)
    app = clone(tmp_path, origin)
    c2 = commit(origin, "c2")
    git(app, "pull", "-q", "--ff-only")
    c3 = commit(origin, "c3 (bad)")
    git(app, "pull", "-q", "--ff-only")
    assert git(app, "rev-parse", "HEAD") == c3

    rc, changed, out, found = target("previous_release", check=True)
    assert rc == 0 and changed == 0, out[-4000:]
    prev = found["previous"]
    assert prev["id"] == c2 and prev["source"] == "git_reflog", prev
    assert prev["from"].startswith("from git reflog (HEAD@{1}: pull") and prev["release"]["strategy"] == "git", prev
    assert c1 != c2

    build = {"target_git_build_commands": ["touch built-by-rollback"]}
    rc, changed, out, found = target("rollback", build)
    assert rc == 0 and changed >= 1, out[-4000:]
    assert "Rolling back pm2 %s from %s to %s (from git reflog (HEAD@{1}: pull" % (APP, c3, c2) in out, out[-4000:]
    assert git(app, "rev-parse", "HEAD") == c2
    assert (app / "built-by-rollback").exists()  # the app's own build steps ran after the checkout
    assert found["rollback"] == {"from": c3, "to": c2, "healthy": True}
    # the stand-in pm2 reports the app online: a reload (no downtime), not a stop and restart
    pm2_calls = (tmp_path / "pm2.log").read_text()
    assert "reload %s --update-env" % APP in pm2_calls and "stop %s" % APP not in pm2_calls, pm2_calls

    # The reflog now says HEAD@{1} = the bad commit: a second rollback must not go back to it.
    rc, changed, out, found = target("rollback", build)
    assert rc == 0 and changed == 0, out[-4000:]
    assert "nothing to roll back" in out and git(app, "rev-parse", "HEAD") == c2, out[-4000:]
    rc, changed, out, found = target("previous_release", check=True)
    assert found["previous"]["source"] == "rolled_back" and found["previous"]["id"] == c2, found["previous"]

    # The app deploys its own way again (a new pull): the history decides again.
    git(app, "checkout", "-q", "main")
    c4 = commit(origin, "c4")
    git(app, "pull", "-q", "--ff-only")
    rc, changed, out, found = target("previous_release", check=True)
    assert found["previous"]["source"] == "git_reflog" and found["previous"]["id"] == c3, (c4, found["previous"])


def test_a_fresh_clone_falls_back_to_head_1(target, tmp_path):
    origin, (dummy, c2) = origin_with(tmp_path, 2)
    app = clone(tmp_path, origin)
    assert len(git(app, "reflog").splitlines()) == 1  # only the clone
    rc, changed, out, found = target("previous_release", check=True)
    assert rc == 0 and changed == 0, out[-4000:]
    prev = found["previous"]
    c1 = git(app, "rev-parse", "HEAD~1")
    assert prev["id"] == c1 and prev["source"] == "git_parent" and "from git HEAD~1" in prev["from"], prev
    rc, changed, out, found = target("rollback")
    assert rc == 0 and git(app, "rev-parse", "HEAD") == c1, out[-4000:]
    assert "to %s (from git HEAD~1" % c1 in out and c2 in out


def test_a_single_commit_is_refused_with_one_clear_message(target, tmp_path):
    origin, (c1,) = origin_with(tmp_path, 1)
    app = clone(tmp_path, origin)
    rc, changed, out, found = target("previous_release", check=True)
    assert rc == 0 and found["previous"]["id"] == "" and "has nothing before %s" % c1 in found["previous"]["reason"]
    rc, changed, out, found = target("rollback")
    assert rc != 0 and changed == 0, out[-4000:]
    assert "Nothing safe to roll back to for pm2 %s" % APP in out and "has nothing before %s" % c1 in out, out[-4000:]
    assert git(app, "rev-parse", "HEAD") == c1 and not (tmp_path / "pm2.log").exists()


# ---------------------------------------------------------------- release dirs


def release_dirs(tmp_path, names, current, mtimes=None):
    app = tmp_path / "app"
    for n, name in enumerate(names):
        path = app / "releases" / name
        path.mkdir(parents=True)
        (path / "server.js").write_text("// %s\n" % name)
        stamp = (mtimes or {}).get(name, time.time() - 1000 + n)
        os.utime(path, (stamp, stamp))
    (app / "current").symlink_to(app / "releases" / current)
    return app


def test_release_dirs_give_the_one_before_current(target, tmp_path):
    app = release_dirs(tmp_path, ["20240101120000Z", "20240102120000Z", "20240103120000Z", "20240104120000Z"],
                       current="20240103120000Z")  # a newer dir that does not run is not "before"
    rc, changed, out, found = target("previous_release", check=True)
    assert rc == 0 and changed == 0, out[-4000:]
    prev = found["previous"]
    assert prev["id"] == "20240102120000Z" and prev["source"] == "release_dirs", prev
    assert prev["from"].startswith("from the release dirs") and prev["release"]["strategy"] == "symlink"

    rc, changed, out, found = target("rollback", check=True)
    assert rc == 0 and changed == 0 and "Check mode: would roll back" in out, out[-4000:]
    assert os.readlink(app / "current").endswith("20240103120000Z")

    rc, changed, out, found = target("rollback")
    assert rc == 0 and changed >= 1, out[-4000:]
    assert "to 20240102120000Z (from the release dirs" in out
    assert os.path.realpath(app / "current") == str(app / "releases" / "20240102120000Z")
    rc, changed, out, found = target("rollback")
    assert rc == 0 and changed == 0 and "nothing to roll back" in out, out[-4000:]
    assert os.path.realpath(app / "current") == str(app / "releases" / "20240102120000Z")


def test_release_dirs_without_timestamp_names_go_by_mtime(target, tmp_path):
    now = time.time()
    release_dirs(tmp_path, ["blue", "alpha", "green"], current="alpha",
                 mtimes={"green": now - 300, "blue": now - 200, "alpha": now - 100})
    rc, changed, out, found = target("previous_release", check=True)
    assert rc == 0 and found["previous"]["id"] == "blue" and found["previous"]["source"] == "release_dirs", out[-4000:]


def test_one_release_dir_is_refused(target, tmp_path):
    app = release_dirs(tmp_path, ["20240101120000Z"], current="20240101120000Z")
    rc, changed, out, found = target("rollback")
    assert rc != 0 and changed == 0, out[-4000:]
    assert "Nothing safe to roll back to" in out and "have nothing before 20240101120000Z" in out, out[-4000:]
    assert os.readlink(app / "current").endswith("20240101120000Z")


def test_history_off_refuses_as_before(target, tmp_path):
    release_dirs(tmp_path, ["20240101120000Z", "20240102120000Z"], current="20240102120000Z")
    rc, changed, out, found = target("rollback", {"target_rollback_from_history": False})
    assert rc != 0 and "target_rollback_from_history is off" in out, out[-4000:]


# ---------------------------------------------------------------- our record wins


def test_the_record_wins_over_the_history(target, tmp_path):
    app = release_dirs(tmp_path, ["20240101120000Z", "20240102120000Z", "20240103120000Z"], current="20240101120000Z")
    rc, changed, out, found = target("record_release")
    assert rc == 0, out[-4000:]
    (app / "current").unlink()
    (app / "current").symlink_to(app / "releases" / "20240103120000Z")  # deployed its own way since

    rc, changed, out, found = target("previous_release", check=True)
    prev = found["previous"]
    assert prev["id"] == "20240101120000Z" and prev["source"] == "record" and prev["from"] == "from our record", prev
    rc, changed, out, found = target("rollback")
    assert rc == 0 and "to the recorded 20240101120000Z" in out, out[-4000:]
    assert os.path.realpath(app / "current") == str(app / "releases" / "20240101120000Z")
    assert not (tmp_path / "state" / "releases" / ("%s.rollback.json" % APP)).exists()  # the record path as before

    rc, changed, out, found = target("previous_release", {"target_rollback_to": "20240102120000Z"}, check=True)
    assert found["previous"]["id"] == "20240102120000Z" and found["previous"]["source"] == "rollback_to"


# ---------------------------------------------------------------- fly


def flyctl(tmp_path, *args):
    env = dict(os.environ, FAKE_FLY_STATE=str(tmp_path / "fly" / "state.json"))
    for name in ("FAKE_FLY_REQUIRE_TOKEN_SHA256", "FAKE_FLY_FAULT"):
        env.pop(name, None)
    return subprocess.run([str(FLYCTL), *args, "-a", FLY_APP], env=env, capture_output=True, text=True, check=True)


def fly_releases(tmp_path):
    return json.loads(flyctl(tmp_path, "releases", "--json", "--image").stdout)


FLY = {"sre_target_kind": "fly", "sre_app_name": FLY_APP, "sre_fly_app": FLY_APP, "sre_flyctl": str(FLYCTL),
       "sre_fly_api_token": TOKEN}


def test_fly_releases_give_the_newest_complete_release_before_the_current_one(target, tmp_path):
    good = "registry.fly.io/%s:deployment-01HISTORYGOOD4" % FLY_APP
    flyctl(tmp_path, "deploy", "--image", good, "--strategy", "immediate")  # v4, complete
    flyctl(tmp_path, "deploy", "--image", "registry.fly.io/%s:deployment-bad-5" % FLY_APP,
           "--strategy", "immediate")  # v5 failed
    flyctl(tmp_path, "deploy", "--image", "registry.fly.io/%s:deployment-bad-6" % FLY_APP,
           "--strategy", "immediate")  # v6 failed, runs now
    rc, changed, out, found = target("previous_release", FLY, check=True)
    assert rc == 0 and changed == 0, out[-4000:]
    prev = found["previous"]
    assert prev["id"] == good and prev["source"] == "fly_releases" and prev["release"]["image_ref"] == good, prev
    assert prev["from"] == "from fly releases (v4, complete, before v6)", prev

    rc, changed, out, found = target("rollback", FLY)
    assert rc == 0 and changed >= 1, out[-4000:]
    assert "to %s (from fly releases (v4, complete, before v6))" % good in out, out[-4000:]
    rows = fly_releases(tmp_path)
    assert rows[0]["Version"] == 7 and rows[0]["ImageRef"] == good and rows[0]["Status"] == "complete"
    state = json.loads((tmp_path / "fly" / "state.json").read_text())
    assert {m["image_ref"]["tag"] for m in state["apps"][FLY_APP]["machines"]} == {"deployment-01HISTORYGOOD4"}

    # v7 (ours) now runs v4's image: the history's "before" would be v3; a second rollback changes nothing.
    rc, changed, out, found = target("rollback", FLY)
    assert rc == 0 and changed == 0 and "nothing to roll back" in out, out[-4000:]
    assert len(fly_releases(tmp_path)) == 7
    assert list((tmp_path / "tmp").glob("*sre-flyctl*")) == []  # the private flyctl config is gone


def test_fly_with_no_complete_release_on_another_image_is_refused(target, tmp_path):
    flyctl(tmp_path, "status")  # the fake's app: v1..v3 complete on three images
    rc, changed, out, found = target("previous_release", dict(FLY, target_fly_release_statuses=["succeeded"]),
                                     check=True)
    assert rc == 0 and found["previous"]["id"] == "", out[-4000:]
    rc, changed, out, found = target("rollback", dict(FLY, target_fly_release_statuses=["succeeded"]))
    assert rc != 0 and changed == 0, out[-4000:]
    assert "Nothing safe to roll back to for fly %s" % FLY_APP in out and "have no succeeded release" in out, out[-4000:]
    assert len(fly_releases(tmp_path)) == 3


# ---------------------------------------------------------------- compose (a fake docker, no engine)

FAKE_DOCKER = """#!%s
# FAKE docker for the tests: an image store and one compose service in a JSON state file ($FAKE_DOCKER_STATE).
import json, os, sys
path = os.environ["FAKE_DOCKER_STATE"]
state = json.load(open(path))
args = sys.argv[1:]
with open(os.environ["FAKE_DOCKER_LOG"], "a") as log:
    log.write(" ".join(args) + "\\n")

def resolve(ref):
    for image in state["images"]:
        if ref == image["id"] or ref in image["tags"]:
            return image
    return None

def save():
    json.dump(state, open(path, "w"))

if args[:2] == ["compose", "version"]:
    print("Docker Compose version v2.27.0")
elif args[0] == "compose" and "ps" in args:
    for service, image_id in state["running"].items():
        print(json.dumps({"ID": "c0ffee" + service, "Name": "shop-%%s-1" %% service, "Service": service,
                          "State": "running", "Image": state["service_images"][service],
                          "Labels": "com.docker.compose.project=shop,com.docker.compose.service=%%s,"
                                    "com.docker.compose.image=%%s" %% (service, image_id)}))
elif args[0] == "compose" and "up" in args:
    for service in args[args.index("--no-deps") + 1:]:
        state["running"][service] = resolve(state["service_images"][service])["id"]
    save()
elif args[:2] == ["image", "inspect"]:
    fmt, refs = args[3], args[4:]
    found = [resolve(ref) for ref in refs]
    if None in found:
        sys.stderr.write("Error: No such image: %%s\\n" %% refs[found.index(None)])
        sys.exit(1)
    for image in found:
        print(fmt.replace("{{.Id}}", image["id"]).replace("{{.Created}}", image["created"]))
elif args[:2] == ["image", "ls"]:
    repo = None if args[-1].startswith("{{") else args[-1]
    for image in state["images"]:
        if repo is None or any(tag.rsplit(":", 1)[0] == repo for tag in image["tags"]):
            print(image["id"])
elif args[0] == "tag":
    for image in state["images"]:
        image["tags"] = [t for t in image["tags"] if t != args[2]]
    resolve(args[1])["tags"].append(args[2])
    save()
else:
    sys.stderr.write("fake docker: unknown call %%s\\n" %% args)
    sys.exit(2)
""" % sys.executable


def image_id(n):
    return "sha256:" + ("%d" % n) * 64


@pytest.fixture
def compose(tmp_path, monkeypatch):
    """variables for the compose kind on a fake docker; state(): the fake's state."""
    bindir = tmp_path / "dockerbin"
    bindir.mkdir()
    (bindir / "docker").write_text(FAKE_DOCKER)
    (bindir / "docker").chmod(0o755)
    state_file = tmp_path / "docker.json"
    state_file.write_text(json.dumps({
        "images": [{"id": image_id(n), "tags": ["shop/web:%d" % n], "created": "2026-11-0%dT10:00:00.00000000Z" % n}
                   for n in (1, 2, 3)] + [{"id": image_id(9), "tags": ["shop/db:15"], "created": "2026-11-05T10:00:00Z"}],
        "running": {"web": image_id(3)}, "service_images": {"web": "shop/web:3"}}))
    monkeypatch.setenv("FAKE_DOCKER_STATE", str(state_file))  # the runs' environment starts from os.environ
    monkeypatch.setenv("FAKE_DOCKER_LOG", str(tmp_path / "docker.log"))
    monkeypatch.setenv("PATH", "%s:%s" % (bindir, os.environ["PATH"]))
    variables = {"sre_target_kind": "compose", "sre_app_name": "web", "sre_compose_project": "shop",
                 "sre_compose_project_dir": str(tmp_path), "target_docker_host": "unix://%s/no-docker.sock" % tmp_path,
                 "target_compose_command": ["docker", "compose"]}
    yield variables, lambda: json.loads(state_file.read_text())


def test_compose_image_history_gives_the_image_before_the_running_one(target, compose):
    variables, state = compose
    rc, changed, out, found = target("previous_release", variables, check=True)
    assert rc == 0 and changed == 0, out[-4000:]
    prev = found["previous"]
    assert prev["id"] == image_id(2) and prev["source"] == "image_history", prev
    assert prev["from"].startswith("from the image history (shop/web,"), prev
    assert prev["release"]["images"] == {"web": {"image": "shop/web:3", "image_id": image_id(2)}}

    rc, changed, out, found = target("rollback", variables)
    assert rc == 0 and changed >= 1, out[-4000:]
    assert "to %s (from the image history" % image_id(2) in out
    assert state()["running"]["web"] == image_id(2)
    rc, changed, out, found = target("rollback", variables)
    assert rc == 0 and changed == 0 and "nothing to roll back" in out, out[-4000:]
    assert state()["running"]["web"] == image_id(2)


def test_compose_previous_tag_wins_over_the_image_history(target, compose, tmp_path):
    variables, state = compose
    doc = state()
    doc["images"][0]["tags"].append("shop/web:previous")
    (tmp_path / "docker.json").write_text(json.dumps(doc))
    rc, changed, out, found = target("previous_release", variables, check=True)
    prev = found["previous"]
    assert rc == 0 and prev["id"] == image_id(1) and prev["source"] == "previous_tag", (prev, out[-3000:])
    assert prev["from"] == "from the previous tag (shop/web:previous)"


def test_compose_with_one_image_is_refused(target, compose, tmp_path):
    variables, state = compose
    doc = state()
    doc["images"] = [i for i in doc["images"] if i["id"] in (image_id(3), image_id(9))]
    (tmp_path / "docker.json").write_text(json.dumps(doc))
    rc, changed, out, found = target("rollback", variables)
    assert rc != 0 and changed == 0, out[-4000:]
    assert "Nothing safe to roll back to for compose web" in out and "has nothing before the running image" in out
