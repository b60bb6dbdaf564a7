#!/usr/bin/env node
// SPDX-License-Identifier: GPL-3.0-or-later
// A STAND-IN for the Prisma CLI's `migrate deploy` and `migrate status` (the real CLI downloads its
// engines from binaries.prisma.sh, which cannot be reached from here). It keeps Prisma's own
// bookkeeping table `_prisma_migrations` (same columns) and prints the real CLI's messages, so what the
// runbooks read (`npx prisma migrate status`, the table) has the shape a Prisma app has.
'use strict';
const fs = require('fs');
const path = require('path');
const crypto = require('crypto');
const { Client } = require('pg');

const [cmd, sub] = process.argv.slice(2);
const dir = path.join(process.cwd(), 'prisma', 'migrations');
const local = fs.existsSync(dir) ? fs.readdirSync(dir).filter((d) => fs.existsSync(path.join(dir, d, 'migration.sql'))).sort() : [];

async function main() {
  if (cmd !== 'migrate' || !['deploy', 'status'].includes(sub)) {
    console.error('prisma (lab stand-in): only `migrate deploy` and `migrate status` exist here');
    return 2;
  }
  process.stderr.write('prisma (lab stand-in for the Prisma CLI)\n');
  // as Prisma does: DATABASE_URL from ./.env when the environment has none
  if (!process.env.DATABASE_URL && fs.existsSync('.env')) {
    const m = fs.readFileSync('.env', 'utf8').match(/^DATABASE_URL=(.*)$/m);
    if (m) process.env.DATABASE_URL = m[1].replace(/^["']|["']$/g, '');
  }
  const db = new Client({ connectionString: process.env.DATABASE_URL });
  await db.connect();
  await db.query(`CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
      "id" VARCHAR(36) PRIMARY KEY, "checksum" VARCHAR(64) NOT NULL, "finished_at" TIMESTAMPTZ,
      "migration_name" VARCHAR(255) NOT NULL, "logs" TEXT, "rolled_back_at" TIMESTAMPTZ,
      "started_at" TIMESTAMPTZ NOT NULL DEFAULT now(), "applied_steps_count" INTEGER NOT NULL DEFAULT 0)`);
  const applied = (await db.query('SELECT migration_name FROM "_prisma_migrations" WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL ORDER BY migration_name')).rows.map((r) => r.migration_name);
  const pending = local.filter((m) => !applied.includes(m));
  const unknown = applied.filter((m) => !local.includes(m));
  console.log(local.length + ' migrations found in prisma/migrations');
  if (sub === 'status') {
    await db.end();
    if (unknown.length) {
      console.log('\nThe migrations from the database are not found locally in prisma/migrations:\n' + unknown.join('\n'));
      return 1;
    }
    if (pending.length) {
      console.log('\nFollowing migration' + (pending.length > 1 ? 's have' : ' have') + ' not yet been applied:\n' + pending.join('\n'));
      return 1;
    }
    console.log('\nDatabase schema is up to date!');
    return 0;
  }
  for (const m of pending) {
    const sql = fs.readFileSync(path.join(dir, m, 'migration.sql'), 'utf8');
    const sum = crypto.createHash('sha256').update(sql).digest('hex');
    await db.query('BEGIN');
    await db.query(sql);
    await db.query('INSERT INTO "_prisma_migrations" (id, checksum, finished_at, migration_name, applied_steps_count) VALUES ($1, $2, now(), $3, 1)', [crypto.randomUUID(), sum, m]);
    await db.query('COMMIT');
    console.log('Applying migration `' + m + '`');
  }
  console.log(pending.length ? '\nAll migrations have been successfully applied.' : '\nNo pending migrations to apply.');
  await db.end();
  return 0;
}
main().then((rc) => process.exit(rc)).catch((err) => { console.error('Error: ' + err.message); process.exit(1); });
