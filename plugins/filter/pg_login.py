# -*- coding: utf-8 -*-
# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
name: pg_login
short_description: The one database login of the roles, from the shared C(sre_db_*) contract
version_added: 0.2.0
description:
  - Resolves host, port, user, password, database, unix socket, DSN (a C(DATABASE_URL) or a key=value string,
    percent-encoded parts, C(sslmode)) and admin user into one login, the same way for every role.
  - The DSN is the base; explicitly set parts override it (port C(5432) and user C(postgres) count as unset).
  - With O(_input.admin_user) and a unix socket (peer authentication) or O(_input.admin_password), the login is the
    admin's. Over the socket without an admin password the database tasks C(become) the admin OS user and no
    password is used.
  - Returns the options for the collection's PostgreSQL modules (RV(_value.modules), for
    C(module_defaults) C(group/sre.runbooks.postgres)), for community.postgresql modules (RV(_value.community),
    for C(group/community.postgresql.all)), and for psql, pg_dump and pg_restore libpq environment variables
    (RV(_value.env)) and argv (RV(_value.argv)) that never hold the password, plus a passfile line
    (RV(_value.passfile)) for C(PGPASSFILE).
  - The result holds the password. Tasks that set it as a fact, or read RV(_value.password) or
    RV(_value.passfile), need C(no_log).
  - An unparsable DSN or a bad value is one error naming the problem, never the password.
author:
  - sre.runbooks contributors (@sre-runbooks)
options:
  _input:
    description: The contract, under these keys; a missing, null or empty value is unset.
    type: dict
    required: true
    suboptions:
      host:
        description: Database host as seen from the managed host (C(sre_db_host)).
        type: str
      port:
        description: Port (C(sre_db_port)).
        type: int
      user:
        description: The app's database user (C(sre_db_user)).
        type: str
      password:
        description: Its password (C(sre_db_password)).
        type: str
      name:
        description: Database to connect to (C(sre_db_name)); default the DSN's, else C(postgres).
        type: str
      unix_socket:
        description: Unix socket directory (C(sre_db_unix_socket)).
        type: str
      dsn:
        description: A C(DATABASE_URL) or key=value DSN (C(sre_db_dsn)).
        type: str
      admin_user:
        description: A superuser for the admin steps (C(sre_db_admin_user)).
        type: str
      admin_password:
        description: Its password; empty means peer authentication over the unix socket.
        type: str
      become:
        description: Run the database tasks as the admin OS user; default true for an admin login over the socket
          without an admin password.
        type: bool
      ssl_mode:
        description: libpq C(sslmode); overrides the DSN's.
        type: str
      ca_cert:
        description: CA certificate file (C(sslrootcert)).
        type: str
      connect_timeout:
        description: Connection timeout in seconds.
        type: int
"""

EXAMPLES = r"""
- name: Work out how to log in to the database
  ansible.builtin.set_fact:
    myrole_login: >-
      {{ {'host': sre_db_host | default(''), 'port': sre_db_port | default(''), 'user': sre_db_user | default(''),
          'password': sre_db_password | default(''), 'name': sre_db_name | default(''),
          'unix_socket': sre_db_unix_socket | default(''), 'dsn': sre_db_dsn | default(''),
          'admin_user': sre_db_admin_user | default('')} | sre.runbooks.pg_login }}
  no_log: true

- name: Every database task of the block logs in the same way
  module_defaults:
    group/sre.runbooks.postgres: "{{ myrole_login.modules }}"
    group/community.postgresql.all: "{{ myrole_login.community }}"
  become: "{{ myrole_login.become }}"
  become_user: "{{ myrole_login.become_user if myrole_login.become else omit }}"
  block:
    - name: Triage the connections
      sre.runbooks.pg_triage:
      register: triage
"""

RETURN = r"""
_value:
  description: The resolved login.
  type: dict
  contains:
    host:
      description: Host name, address or socket directory (empty for libpq's default).
      type: str
    port:
      description: Port.
      type: int
    user:
      description: User.
      type: str
    password:
      description: Password (empty when none is used). Secret.
      type: str
    dbname:
      description: Database.
      type: str
    sslmode:
      description: sslmode when one is set.
      type: str
    become:
      description: Whether the database tasks become RV(_value.become_user) (peer authentication).
      type: bool
    become_user:
      description: The OS user to become, or null.
      type: str
    admin:
      description: Whether the login is the admin user's.
      type: bool
    over_socket:
      description: Whether the login goes through the unix socket.
      type: bool
    modules:
      description: Options of the collection's PostgreSQL modules (login_host, login_port, login_user, login_password,
        login_db, ssl_mode, ca_cert, connect_timeout, and dsn for other libpq parameters). Holds the password.
      type: dict
    community:
      description: Options of community.postgresql modules (login_*, ssl_mode, ca_cert, connect_params). Holds the
        password.
      type: dict
    env:
      description: libpq environment variables (PGHOST, PGPORT, PGUSER, PGDATABASE, PGSSLMODE, ...), never the
        password.
      type: dict
    argv:
      description: C(-h HOST -p PORT -U USER) for psql, pg_dump and pg_restore, never the password.
      type: list
      elements: str
    passfile:
      description: A C(.pgpass) line (C(*:*:*:*:password)) for a private 0600 C(PGPASSFILE), empty without a
        password. Secret.
      type: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.sre.runbooks.plugins.module_utils._pglogin import PgLoginError
from ansible_collections.sre.runbooks.plugins.module_utils._pglogin import pg_login as _pg_login


def pg_login(spec):
    try:
        return _pg_login(dict(spec) if hasattr(spec, "items") else spec)
    except PgLoginError as exc:
        raise AnsibleFilterError("pg_login: %s" % exc)


class FilterModule(object):
    def filters(self):
        return {"pg_login": pg_login}
