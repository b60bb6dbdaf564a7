# -*- coding: utf-8 -*-
# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""PRIVATE to the sre.runbooks collection: cron expressions and crontab lines, for the backup schedule.

What a backup runbook needs from cron: the longest time between two runs of an expression (so a log that says
nothing for longer means a missed run) and which crontab lines run a given script.

Supported: the five fields ``minute hour day-of-month month day-of-week`` with ``*``, numbers, ranges ``a-b``,
lists ``a,b``, steps ``*/N``, ``a-b/N`` and ``a/N`` (a to the end of the field), month and day names
(``jan``, ``mon``), day-of-week 0-7 (0 and 7 are Sunday), cron's rule that a day matches either field when
both day fields are restricted; and the shortcuts ``@yearly``, ``@annually``, ``@monthly``, ``@weekly``,
``@daily``, ``@midnight``, ``@hourly``.
Not supported (CronError says so): ``@reboot`` (no interval), a seconds or year field, the non-standard
``L``, ``W``, ``#`` and ``?`` of other schedulers, ``CRON_TZ``/``TZ`` (times are the host's; a DST change moves
a run by an hour, which the caller's slack absorbs), systemd timers and anacron's ``/etc/cron.daily``.

Not a public API: other collections must not import it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import re

SHORTCUTS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}
_FIELDS = (  # name, low, high, names
    ("minute", 0, 59, None),
    ("hour", 0, 23, None),
    ("day of month", 1, 31, None),
    ("month", 1, 12, ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")),
    ("day of week", 0, 7, ("sun", "mon", "tue", "wed", "thu", "fri", "sat")),
)
# Eight years from a Monday: every leap-year and weekday combination, so the longest gap is exact.
_WINDOW_START = datetime.date(2024, 1, 1)
_WINDOW_DAYS = 366 * 8
_ENV_LINE = re.compile(r"^\s*[A-Za-z_][A-Za-z0-9_]*\s*=")
# cron (Debian, cronie) skips files in /etc/cron.d whose names are not made of letters, digits, _ and -
# (run-parts naming): backup.cron, backup.sh and backup~ are never read.
_CRON_D_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


class CronError(ValueError):
    """A cron expression this module cannot read, with the reason in plain words."""


def _value(text, field):
    name, low, high, names = field
    if text.isdigit():
        number = int(text)
    elif names and text.lower() in names:
        number = names.index(text.lower()) + (1 if name == "month" else 0)
    else:
        raise CronError("%s: %r is not a number%s" % (name, text, " or a name" if names else ""))
    if not low <= number <= high:
        raise CronError("%s: %d is outside %d-%d" % (name, number, low, high))
    return number


def expand_field(text, field):
    """The set of values a cron field matches (day-of-week 7 becomes 0)."""
    name, low, high, dummy = field
    values = set()
    for part in text.split(","):
        if not part:
            raise CronError("%s: empty list item in %r" % (name, text))
        if re.search(r"[LW#?]", part):
            raise CronError("%s: %r uses L, W, # or ? (other schedulers' syntax, not cron's)" % (name, part))
        base, step = part, 1
        if "/" in part:
            base, step_text = part.split("/", 1)
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError("%s: step %r must be a positive number" % (name, step_text))
            step = int(step_text)
        if base == "*":
            first, last = low, high
        elif "-" in base:
            start, end = base.split("-", 1)
            first, last = _value(start, field), _value(end, field)
            if first > last:
                raise CronError("%s: range %r runs backwards" % (name, base))
        else:
            first = _value(base, field)
            last = high if "/" in part else first
        values.update(range(first, last + 1, step))
    if name == "day of week" and 7 in values:
        values.discard(7)
        values.add(0)
    return values


def parse_expression(expression):
    """Parse a cron expression or shortcut into {expression, minutes, hours, days, months, weekdays, ...}."""
    text = " ".join(str(expression or "").split())
    if not text:
        raise CronError("empty cron expression")
    if text.startswith("@"):
        if text.lower() == "@reboot":
            raise CronError("@reboot runs once at boot: it has no interval to judge a log by")
        if text.lower() not in SHORTCUTS:
            raise CronError("unknown shortcut %r (known: %s)" % (text, ", ".join(sorted(SHORTCUTS) + ["@reboot"])))
        fields = SHORTCUTS[text.lower()].split()
    else:
        fields = text.split(" ")
        if len(fields) != 5:
            raise CronError("%r has %d fields, cron has 5 (minute hour day-of-month month day-of-week); "
                            "a seconds or year field is not supported" % (text, len(fields)))
    minutes, hours, days, months, weekdays = (expand_field(f, spec) for f, spec in zip(fields, _FIELDS))
    return {"expression": text, "minutes": sorted(minutes), "hours": sorted(hours), "days": days, "months": months,
            "weekdays": weekdays, "day_star": fields[2].startswith("*"), "weekday_star": fields[4].startswith("*")}


def _day_matches(parsed, day):
    if day.month not in parsed["months"]:
        return False
    by_day = day.day in parsed["days"]
    by_weekday = (day.isoweekday() % 7) in parsed["weekdays"]
    if parsed["day_star"] or parsed["weekday_star"]:  # cron: with one day field '*', the other one decides
        return by_day and by_weekday
    return by_day or by_weekday  # both restricted: either matches


def interval_seconds(expression):
    """The longest time, in seconds, between two consecutive runs of a cron expression.

    ``15 3 * * *`` -> 86400, ``*/10 * * * *`` -> 600, ``0 9,17 * * *`` -> 57600, ``0 3 * * 1-5`` -> 259200.
    Raises CronError for what is not supported or never runs.
    """
    parsed = parse_expression(expression)
    times = [h * 60 + m for h in parsed["hours"] for m in parsed["minutes"]]
    days = [n for n in range(_WINDOW_DAYS) if _day_matches(parsed, _WINDOW_START + datetime.timedelta(days=n))]
    if len(days) < 2:
        raise CronError("%r never runs (no day matches in eight years)" % parsed["expression"])
    longest = max([b - a for a, b in zip(times, times[1:])] or [0])
    for previous, following in zip(days, days[1:]):
        longest = max(longest, (following - previous) * 1440 - times[-1] + times[0])
    return longest * 60


def parse_crontab(text, system):
    """Entries of a crontab: [{line, schedule, user, command}] (comments, blank and VAR=value lines skipped).

    ``system`` (/etc/crontab, /etc/cron.d/*) lines have a user field after the schedule; users' crontabs
    (``crontab -l``) do not. Lines commented out are returned apart, with ``commented: true``, so a caller can
    say a script was scheduled once.
    """
    entries = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        commented = False
        if line.startswith("#"):
            line = line.lstrip("#").strip()
            commented = True
        if not line or _ENV_LINE.match(line):
            continue
        words = line.split()
        count = 1 if words[0].startswith("@") else 5
        if len(words) < count + 1:
            continue
        schedule = " ".join(words[:count])
        if not commented and not words[0].startswith("@") and not re.match(r"^[\d*/,A-Za-z-]+$", words[0]):
            continue
        user = words[count] if system else None
        command = " ".join(words[count + (1 if system else 0):])
        entries.append({"line": number, "schedule": schedule, "user": user, "command": command,
                        "commented": commented, "raw": raw.strip()})
    return entries


def runs_script(command, script):
    """How a crontab command runs the script: 'path' (its full path is in it), 'name' (only its file name, as
    in ``cd /root/app && ./infra/backups/backup_db.sh``) or None."""
    if not script:
        return None
    edge = r"(?:^|[\s;&|'\"(=])"
    end = r"(?=$|[\s;&|'\")<>])"
    if re.search(edge + re.escape(script) + end, command):
        return "path"
    name = script.rstrip("/").rsplit("/", 1)[-1]
    if name and re.search(r"(?:^|[\s;&|'\"(=/])" + re.escape(name) + end, command):
        return "name"
    return None


def through_interpreter(command, script):
    """True when the command runs the script through a shell (``bash script``), so its mode does not matter."""
    name = re.escape(script.rstrip("/").rsplit("/", 1)[-1])
    return bool(re.search(r"(?:^|[\s;&|(])(?:/\S*/)?(?:ba|da|k|z)?sh\s+(?:-\w+\s+)*\S*" + name, command))


def cron_d_name_ignored(name):
    """True when cron never reads a file of this name in /etc/cron.d (a dot, ~ or other characters)."""
    return not _CRON_D_NAME.match(name)
