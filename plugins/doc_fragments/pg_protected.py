# -*- coding: utf-8 -*-
# Copyright (c) sre.runbooks contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The sessions pg_triage and pg_slow_queries never end nor cancel, in lockstep with protected_argument_spec()
    # and the PROTECTED_APPLICATIONS / PROTECTED_QUERIES defaults in plugins/module_utils/_pgmodule.py.
    DOCUMENTATION = r"""
options:
  protected_applications:
    description:
      - Sessions whose C(application_name) matches one of these shell patterns (case-insensitive) are never
        cancelled nor terminated, such as backups (C(pg_dump), C(pg_basebackup), pgBackRest, Barman, WAL-G),
        migrations (any name with C(migrat), Alembic, Flyway, Liquibase, Sqitch, dbmate, goose) and replication
        clients. They are listed, with the pattern that spared them, in the finding C(protected).
      - V([]) protects no application name.
    type: list
    elements: str
    default: ["pg_dump*", "pg_dumpall*", "pg_restore*", "pg_basebackup*", "pgbackrest*", "barman*", "wal-g*",
              "pg_probackup*", "*migrat*", "alembic*", "flyway*", "liquibase*", "sqitch*", "dbmate*", "goose*",
              "*walsender*", "walreceiver*", "pg_receivewal*", "pg_recvlogical*", "*replication*"]
  protected_queries:
    description:
      - Sessions whose query (the running one, or the last one of an idle session) matches one of these shell
        patterns (case-insensitive) are never cancelled nor terminated, such as the history tables and locks of
        migration tools (Prisma, Knex, Alembic, Flyway, Rails/golang-migrate, Liquibase, Django, Sequelize, goose),
        base backups, replication and C(pg_dump)'s C(COPY ... TO stdout).
      - The patterns match the query text as the server has it (C(pg_stat_activity.query), white space collapsed),
        literals included, so a pattern may name a literal (the key of a migration tool's advisory lock, a
        backup's C(COPY ... TO) target, a marker string) even though the returned query texts have their literals
        redacted. The finding C(protected) names the pattern, never the text.
      - V([]) protects no query.
    type: list
    elements: str
    default: ["*_prisma_migrations*", "*knex_migrations*", "*alembic_version*", "*flyway_schema_history*",
              "*schema_migrations*", "*databasechangelog*", "*django_migrations*", "*sequelizemeta*",
              "*goose_db_version*", "*pg_advisory_lock(72707369)*", "*pg_backup_start*", "*pg_start_backup*",
              "*base_backup*", "*start_replication*", "copy * to stdout*"]
"""
