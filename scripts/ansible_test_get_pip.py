# SPDX-License-Identifier: GPL-3.0-or-later
# Offline stand-in for ansible-test's pip bootstrap script (get-pip-<version>.py), whose download
# host is not reachable from our machines. ansible-test runs it with the new virtualenv's python and
# the pinned packages (pip==X, setuptools==Y ...) as arguments: bootstrap pip with ensurepip, then
# install exactly those pins from PyPI. scripts/sanity.sh places it in ansible-test's cache.
import subprocess
import sys

subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"])
ARGS = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "-q"] + ARGS))
