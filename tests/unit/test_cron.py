# SPDX-License-Identifier: GPL-3.0-or-later
"""The cron helper of the backup schedule (plugins/module_utils/_cron.py): the longest time between two runs of
an expression, crontab lines, which lines run a script, and what is refused with a reason."""

from __future__ import annotations

import sys

import pytest

from conftest import ensure_collection_link

sys.path.insert(0, str(ensure_collection_link()))
from ansible_collections.sre.runbooks.plugins.module_utils import _cron as cron  # noqa: E402

H, D = 3600, 86400

INTERVALS = [
    ("15 3 * * *", D),  # Ferreteria's nightly backup
    ("0 0 * * *", D),
    ("@daily", D),
    ("@midnight", D),
    ("@DAILY", D),
    ("@hourly", H),
    ("0 * * * *", H),
    ("*/10 * * * *", 600),
    ("*/7 * * * *", 7 * 60),  # 56 -> next hour's 00 is shorter than the step
    ("0,50 * * * *", 50 * 60),  # the longest gap, not the shortest
    ("* * * * *", 60),
    ("0 */6 * * *", 6 * H),
    ("30 1-5 * * *", 20 * H),  # 05:30 to the next 01:30
    ("0 9,17 * * *", 16 * H),
    ("0 3 * * 1-5", 3 * D),  # Friday 03:00 to Monday 03:00
    ("0 3 * * mon-fri", 3 * D),
    ("0 3 * * 0", 7 * D),
    ("0 3 * * 7", 7 * D),  # 7 is Sunday too
    ("@weekly", 7 * D),
    ("0 3 1 * *", 31 * D),
    ("@monthly", 31 * D),
    ("0 0 1 jan *", 366 * D),  # over a leap year
    ("@yearly", 366 * D),
    ("0 0 1,15 * 1", 7 * D),  # both day fields restricted: either matches (every Monday and the 1st, 15th)
    ("5/20 * * * *", 20 * 60),  # 5, 25, 45, then the next hour's 5
    ("40/30 */2 * * *", 2 * H),  # 40 only (a/N runs to the end of the field), every other hour
    ("  15   3 * * *  ", D),
]


@pytest.mark.parametrize("expression, seconds", INTERVALS)
def test_interval_is_the_longest_gap_between_runs(expression, seconds):
    assert cron.interval_seconds(expression) == seconds


REFUSED = [
    ("@reboot", "no interval"),
    ("@sometimes", "unknown shortcut"),
    ("", "empty"),
    ("0 3 * *", "has 4 fields"),
    ("0 0 3 * * *", "seconds or year field is not supported"),
    ("60 3 * * *", "minute: 60 is outside 0-59"),
    ("0 24 * * *", "hour: 24 is outside 0-23"),
    ("0 3 * 13 *", "month: 13 is outside 1-12"),
    ("0 3 L * *", "L, W, # or ?"),
    ("0 3 ? * MON", "L, W, # or ?"),
    ("0 3 * * 1#2", "L, W, # or ?"),
    ("*/0 * * * *", "step '0' must be a positive number"),
    ("0 5-1 * * *", "runs backwards"),
    ("0 3 * * xyz", "day of week: 'xyz' is not a number or a name"),
    ("0 3 1,,2 * *", "empty list item"),
    ("0 0 30 2 *", "never runs"),
]


@pytest.mark.parametrize("expression, reason", REFUSED)
def test_unsupported_or_wrong_expressions_say_why(expression, reason):
    with pytest.raises(cron.CronError) as caught:
        cron.interval_seconds(expression)
    assert reason in str(caught.value)


SYSTEM_CRONTAB = """\
SHELL=/bin/sh
PATH=/usr/local/sbin:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin
# m h dom mon dow user  command
17 *    * * *   root    cd / && run-parts --report /etc/cron.hourly
15 3 * * * root /root/ferreteria/infra/backups/backup_db.sh >> /var/log/ferreteria_backup.log 2>&1
#30 2 * * * root /root/old/backup_db.sh
@daily postgres /usr/local/bin/vacuum.sh

"""


def test_system_crontab_lines_have_a_user_field():
    entries = cron.parse_crontab(SYSTEM_CRONTAB, system=True)
    live = [(e["line"], e["schedule"], e["user"], e["command"]) for e in entries if not e["commented"]]
    assert live == [
        (4, "17 * * * *", "root", "cd / && run-parts --report /etc/cron.hourly"),
        (5, "15 3 * * *", "root",
         "/root/ferreteria/infra/backups/backup_db.sh >> /var/log/ferreteria_backup.log 2>&1"),
        (7, "@daily", "postgres", "/usr/local/bin/vacuum.sh"),
    ]
    commented = [e for e in entries if e["commented"] and "backup_db" in e["command"]]
    assert [(e["line"], e["schedule"], e["user"]) for e in commented] == [(6, "30 2 * * *", "root")]


def test_user_crontab_lines_have_no_user_field():
    entries = cron.parse_crontab("MAILTO=ops@example.test\n15 3 * * * /root/backup.sh\n@hourly /bin/true\n",
                                 system=False)
    assert [(e["schedule"], e["user"], e["command"]) for e in entries] == [
        ("15 3 * * *", None, "/root/backup.sh"), ("@hourly", None, "/bin/true")]


SCRIPT = "/root/ferreteria/infra/backups/backup_db.sh"


@pytest.mark.parametrize("command, how", [
    (SCRIPT, "path"),
    (SCRIPT + " >> /var/log/ferreteria_backup.log 2>&1", "path"),
    ("/bin/bash " + SCRIPT, "path"),
    ("flock -n /tmp/b.lock " + SCRIPT + ";echo done", "path"),
    ("cd /root/ferreteria && ./infra/backups/backup_db.sh", "name"),
    ("backup_db.sh", "name"),
    (SCRIPT + ".bak", None),
    ("/root/ferreteria/infra/backups/backup_db.shx", None),
    ("/usr/local/bin/other_backup_db.sh", None),
    ("run-parts /etc/cron.daily", None),
])
def test_which_commands_run_the_script(command, how):
    assert cron.runs_script(command, SCRIPT) == how


@pytest.mark.parametrize("command, through", [
    ("/bin/bash " + SCRIPT, True),
    ("sh -e " + SCRIPT, True),
    ("cd /root/ferreteria && bash ./infra/backups/backup_db.sh", True),
    (SCRIPT, False),
    ("/root/bashful/" + "backup_db.sh", False),
])
def test_a_script_run_through_a_shell_needs_no_exec_bit(command, through):
    assert cron.through_interpreter(command, SCRIPT) is through


@pytest.mark.parametrize("name, ignored", [
    ("ferreteria-backup", False), ("ferreteria_backup", False), ("e2scrub_all", False),
    ("backup.cron", True), ("backup.sh", True), ("backup~", True), (".placeholder", True),
])
def test_cron_d_names_cron_skips(name, ignored):
    assert cron.cron_d_name_ignored(name) is ignored
