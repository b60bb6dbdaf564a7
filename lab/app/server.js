// SPDX-License-Identifier: GPL-3.0-or-later
// The lab's demo app (SaaSResto / CookCam / Ferreteria stand-in): a real Node HTTP service on
// PostgreSQL. GET /health runs a query and answers 200 or 503 with the reason (never hangs: the
// pool has a connection timeout); GET /version gives the release; POST /login checks a bcrypt hash.
'use strict';
const http = require('http');
const fs = require('fs');
const path = require('path');
const crypto = require('crypto');
const { Pool } = require('pg');
const bcrypt = require('bcryptjs');

const port = parseInt(process.env.PORT || '3000', 10);
const revisionFile = path.join(__dirname, 'REVISION');
const release = process.env.RELEASE ||
  (fs.existsSync(revisionFile) ? fs.readFileSync(revisionFile, 'utf8').trim() : 'dev');

if (process.env.APP_BAD === '1' || fs.existsSync(path.join(__dirname, 'BAD'))) {
  console.error('Error: release ' + release + ' is broken: migration 0042_add_orders is missing, refusing to start');
  process.exit(1);
}

const pool = new Pool({
  connectionString: process.env.DATABASE_URL,
  max: parseInt(process.env.PGPOOL_MAX || '5', 10),
  connectionTimeoutMillis: parseInt(process.env.PG_CONNECT_TIMEOUT_MS || '2000', 10),
  idleTimeoutMillis: 10000,
  application_name: process.env.APP_NAME || 'lab-app',
});
pool.on('error', (err) => console.error('Error: idle client error: ' + err.message));

function send(res, code, body) {
  res.writeHead(code, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(body) + '\n');
}

async function health(res) {
  const started = Date.now();
  try {
    const r = await pool.query('SELECT count(*)::int AS users FROM users');
    send(res, 200, { status: 'ok', db: 'ok', users: r.rows[0].users, release, ms: Date.now() - started });
  } catch (err) {
    console.error('Error: health check failed: ' + err.message);
    send(res, 503, { status: 'error', db: 'error', reason: err.message, release, ms: Date.now() - started });
  }
}

function readBody(req) {
  return new Promise((resolve) => {
    let data = '';
    req.on('data', (c) => { data += c; if (data.length > 65536) req.destroy(); });
    req.on('end', () => resolve(data));
  });
}

async function login(req, res) {
  let body;
  try { body = JSON.parse(await readBody(req) || '{}'); } catch (e) { return send(res, 400, { error: 'bad json' }); }
  try {
    const r = await pool.query('SELECT id, password_hash FROM users WHERE email = $1', [String(body.email || '')]);
    if (r.rowCount === 0 || !bcrypt.compareSync(String(body.password || ''), r.rows[0].password_hash)) {
      console.error('Error: auth failed for ' + String(body.email || '').replace(/[^\w@.+-]/g, '?'));
      return send(res, 401, { error: 'invalid credentials' });
    }
    const token = crypto.randomBytes(24).toString('hex');
    const hash = crypto.createHash('sha256').update(token).digest('hex');
    await pool.query("INSERT INTO sessions (user_id, token_hash, expires_at) VALUES ($1, $2, now() + interval '1 day')", [r.rows[0].id, hash]);
    await pool.query('UPDATE users SET last_login_at = now() WHERE id = $1', [r.rows[0].id]);
    return send(res, 200, { token });
  } catch (err) {
    console.error('Error: login failed: ' + err.message);
    return send(res, 503, { error: 'database unavailable' });
  }
}

const server = http.createServer((req, res) => {
  if (req.url === '/health') return health(res);
  if (req.url === '/version') return send(res, 200, { release });
  if (req.url === '/login' && req.method === 'POST') return login(req, res);
  if (req.url === '/menu') {
    return pool.query('SELECT m.name AS menu, count(i.id)::int AS items FROM menus m JOIN categories c ON c.menu_id = m.id JOIN items i ON i.category_id = c.id GROUP BY m.name ORDER BY m.name')
      .then((r) => send(res, 200, r.rows)).catch((err) => send(res, 503, { error: err.message }));
  }
  res.writeHead(200, { 'Content-Type': 'text/plain' });
  res.end('sre.runbooks lab app, release ' + release + '\n');
});
server.listen(port, () => console.log('listening on ' + port + ', release ' + release));
function stop(sig) { console.log(sig + ', shutting down'); server.close(() => pool.end().then(() => process.exit(0))); setTimeout(() => process.exit(0), 3000).unref(); }
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));
