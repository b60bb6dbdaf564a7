# -*- coding: utf-8 -*-
# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Connection options, in lockstep with postgres_argument_spec() in plugins/module_utils/_postgres.py.
    DOCUMENTATION = r"""
options:
  login_host:
    description:
      - Host name or IP address of the PostgreSQL server.
      - When neither O(login_host) nor O(login_unix_socket) nor a host in O(dsn) is given, libpq's default
        (the local Unix socket) is used.
    type: str
  login_port:
    description:
      - Port of the PostgreSQL server.
      - Overrides the port of O(dsn) only when it is not the default.
    type: int
    default: 5432
  login_user:
    description:
      - User to connect as.
      - Overrides the user of O(dsn) only when it is not the default.
    type: str
    default: postgres
  login_password:
    description:
      - Password of O(login_user). Never returned nor logged.
    type: str
  login_db:
    description:
      - Database to connect to. By default the one of O(dsn), else libpq's default (the user name).
    type: str
  login_unix_socket:
    description:
      - Directory of the server's Unix socket, used when O(login_host) is not set.
    type: str
  ssl_mode:
    description:
      - libpq C(sslmode). Overrides the C(sslmode) of O(dsn) only when it is not the default.
    type: str
    choices: [disable, allow, prefer, require, verify-ca, verify-full]
    default: prefer
  ca_cert:
    description:
      - File of the certificate authorities that signed the server certificate (libpq C(sslrootcert)).
    type: path
  connect_timeout:
    description:
      - Seconds to wait for the connection.
    type: int
    default: 10
  dsn:
    description:
      - A libpq connection string, as a URL (V(postgresql://user:pass@host:5432/db?sslmode=require), a
        C(DATABASE_URL)) or as C(key=value) pairs.
      - Explicit O(login_host), O(login_password), O(login_db), O(login_unix_socket) and O(ca_cert) override
        its parts. Never returned nor logged, and the password it holds never appears in errors.
    type: str
requirements:
  - psycopg2 on the managed host
"""
