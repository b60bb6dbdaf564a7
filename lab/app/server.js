// SPDX-License-Identifier: GPL-3.0-or-later
// The lab twins of the Node apps of ../shared/source-runbooks (one program, one profile per app,
// chosen by APP_PROFILE):
//   saasresto    (000) GET /health, POST /login on Prisma's "User"/"Session", GET /menu
//   sme-booking  (002) GET /api/health {status, totalRequests, totalErrors, slowRequests, memory, database},
//                      JSON logs under LOG_DIR (level, error, endpoint, duration), calendar/SMS/mail
//                      providers with the mock flags GOOGLE_CALENDAR_MOCK, TWILIO_MOCK, SENDGRID_MOCK
//   cookcam      (001) GET /health, POST /webhooks/stripe into stripe_webhook_events
// Every profile: GET /version, GET /metrics (Prometheus text from prom-client: http_requests_total,
// http_request_duration_seconds, app_errors_total, process metrics). /health never hangs: the pool has
// a connection timeout. A release with a BAD file (or APP_BAD=1) exits 1 at start, like a broken deploy. GET /
// leaks (a page cache by full URL, see pageCache).
'use strict';
const http = require('http');
const fs = require('fs');
const path = require('path');
const crypto = require('crypto');
const { Pool } = require('pg');
const bcrypt = require('bcryptjs');
const prom = require('prom-client');

const profile = process.env.APP_PROFILE || 'saasresto';
const appName = process.env.APP_NAME || profile;
const port = parseInt(process.env.PORT || '3000', 10);
const revisionFile = path.join(__dirname, 'REVISION');
const release = process.env.RELEASE ||
  (fs.existsSync(revisionFile) ? fs.readFileSync(revisionFile, 'utf8').trim() : 'dev');
const slowMs = parseInt(process.env.SLOW_REQUEST_MS || '1000', 10);
const logDir = process.env.LOG_DIR || '';

if (process.env.APP_BAD === '1' || fs.existsSync(path.join(__dirname, 'BAD'))) {
  console.error('Error: release ' + release + ' is broken: migration 0042_add_orders is missing, refusing to start');
  process.exit(1);
}
for (const name of (process.env.REQUIRED_SECRETS || '').split(',').filter(Boolean)) {
  if (!process.env[name]) {
    console.error('Error: required secret ' + name + ' is not set, refusing to start');
    process.exit(1);
  }
}

const pool = new Pool({
  connectionString: process.env.DATABASE_URL,
  max: parseInt(process.env.PGPOOL_MAX || '5', 10),
  connectionTimeoutMillis: parseInt(process.env.PG_CONNECT_TIMEOUT_MS || '2000', 10),
  idleTimeoutMillis: 10000,
  application_name: appName,
});
pool.on('error', (err) => logError('db', 'idle client error: ' + err.message));

// ---- metrics and counters -------------------------------------------------------------------
const registry = new prom.Registry();
registry.setDefaultLabels({ app: appName });
prom.collectDefaultMetrics({ register: registry });
const requests = new prom.Counter({ name: 'http_requests_total', help: 'HTTP requests', labelNames: ['route', 'method', 'status'], registers: [registry] });
const latency = new prom.Histogram({ name: 'http_request_duration_seconds', help: 'HTTP request latency', labelNames: ['route'], buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10], registers: [registry] });
const errors = new prom.Counter({ name: 'app_errors_total', help: 'Application errors by type', labelNames: ['type'], registers: [registry] });
const totals = { totalRequests: 0, totalErrors: 0, slowRequests: 0 };

function logLine(level, fields) {
  const line = JSON.stringify(Object.assign({ timestamp: new Date().toISOString(), level, app: appName, release }, fields));
  if (logDir) {
    try { fs.appendFileSync(path.join(logDir, (level === 'error' ? 'error' : 'app') + '.json'), line + '\n'); } catch (e) { /* log dir gone: stderr still has it */ }
  }
  (level === 'error' ? console.error : console.log)(level === 'error' ? 'Error: ' + (fields.error || '') + ' ' + line : line);
}
function logError(type, message, endpoint) {
  errors.inc({ type });
  logLine('error', { error: message, type, endpoint: endpoint || '' });
}

function send(res, code, body) {
  res.writeHead(code, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(body) + '\n');
}

function readBody(req) {
  return new Promise((resolve) => {
    let data = '';
    req.on('data', (c) => { data += c; if (data.length > 65536) req.destroy(); });
    req.on('end', () => resolve(data));
  });
}

// ---- profiles --------------------------------------------------------------------------------
const PROFILES = {
  saasresto: { health: '/health', sql: 'SELECT count(*)::int AS n FROM "User"', key: 'users' },
  'sme-booking': { health: '/api/health', sql: 'SELECT count(*)::int AS n FROM booking', key: 'bookings' },
  cookcam: { health: '/health', sql: 'SELECT count(*)::int AS n FROM stripe_webhook_events', key: 'events' },
};
const prof = PROFILES[profile];
if (!prof) { console.error('Error: unknown APP_PROFILE ' + profile); process.exit(2); }

async function dbHealthy() {
  const started = Date.now();
  try {
    const r = await pool.query(prof.sql);
    return { healthy: true, n: r.rows[0].n, ms: Date.now() - started };
  } catch (err) {
    logError('db', 'health check failed: ' + err.message, prof.health);
    return { healthy: false, reason: err.message, ms: Date.now() - started };
  }
}

async function health(res) {
  const db = await dbHealthy();
  if (profile === 'sme-booking') {
    const mem = process.memoryUsage();
    return send(res, db.healthy ? 200 : 503, Object.assign({ status: db.healthy ? 'healthy' : 'unhealthy', release }, totals, {
      memory: { heapUsed: mem.heapUsed, heapTotal: mem.heapTotal, external: mem.external },
      database: { healthy: db.healthy, latencyMs: db.ms },
      mocks: { GOOGLE_CALENDAR_MOCK: process.env.GOOGLE_CALENDAR_MOCK === 'true', TWILIO_MOCK: process.env.TWILIO_MOCK === 'true', SENDGRID_MOCK: process.env.SENDGRID_MOCK === 'true' },
    }));
  }
  if (db.healthy) return send(res, 200, { status: 'ok', db: 'ok', [prof.key]: db.n, release, ms: db.ms });
  return send(res, 503, { status: 'error', db: 'error', reason: db.reason, release, ms: db.ms });
}

async function login(req, res) {
  let body;
  try { body = JSON.parse(await readBody(req) || '{}'); } catch (e) { return send(res, 400, { error: 'bad json' }); }
  try {
    const r = await pool.query('SELECT id, "passwordHash" FROM "User" WHERE email = $1', [String(body.email || '')]);
    if (r.rowCount === 0 || !bcrypt.compareSync(String(body.password || ''), r.rows[0].passwordHash)) {
      logError('auth', 'auth failed for ' + String(body.email || '').replace(/[^\w@.+-]/g, '?'), '/login');
      return send(res, 401, { error: 'invalid credentials' });
    }
    const token = crypto.randomBytes(24).toString('hex');
    const hash = crypto.createHash('sha256').update(token).digest('hex');
    await pool.query('INSERT INTO "Session" ("userId", "tokenHash", "expiresAt") VALUES ($1, $2, now() + interval \'1 day\')', [r.rows[0].id, hash]);
    await pool.query('UPDATE "User" SET "lastLoginAt" = now() WHERE id = $1', [r.rows[0].id]);
    return send(res, 200, { token });
  } catch (err) {
    logError('db', 'login failed: ' + err.message, '/login');
    return send(res, 503, { error: 'database unavailable' });
  }
}

// sme-booking: a booking calls the calendar provider unless its mock flag is on.
function callProvider(name, urlVar) {
  return new Promise((resolve, reject) => {
    if (process.env[name + '_MOCK'] === 'true') return resolve('mock');
    const url = process.env[urlVar];
    if (!url) return reject(new Error(name + ' API error: no ' + urlVar + ' configured'));
    const req = http.get(url, { timeout: 2000 }, (r) => { r.resume(); return r.statusCode < 500 ? resolve('ok') : reject(new Error(name + ' API error: HTTP ' + r.statusCode)); });
    req.on('timeout', () => req.destroy(new Error(name + ' API error: timeout')));
    req.on('error', (e) => reject(new Error(name + ' API error: ' + e.message)));
  });
}

async function bookings(req, res) {
  try {
    await callProvider('GOOGLE_CALENDAR', 'GOOGLE_CALENDAR_API_URL');
    const r = await pool.query('SELECT count(*)::int AS n FROM booking');
    await pool.query('INSERT INTO "CalendarSyncLog" ("bookingId", status) VALUES (NULL, $1)', ['ok']);
    return send(res, 200, { bookings: r.rows[0].n });
  } catch (err) {
    logError(/API error/.test(err.message) ? 'dependency' : 'db', err.message, '/api/bookings');
    return send(res, 502, { error: err.message });
  }
}

async function stripeWebhook(req, res) {
  let body;
  try { body = JSON.parse(await readBody(req) || '{}'); } catch (e) { return send(res, 400, { error: 'bad json' }); }
  const ok = body.fail !== true;
  try {
    await pool.query('INSERT INTO stripe_webhook_events (stripe_event_id, event_type, status, error_message) VALUES ($1, $2, $3, $4)',
      [String(body.id || crypto.randomBytes(8).toString('hex')), String(body.type || 'payment_intent.succeeded'), ok ? 'processed' : 'failed', ok ? null : 'handler error: ' + String(body.reason || 'unknown')]);
    if (!ok) logError('webhook', 'stripe webhook failed: ' + String(body.reason || 'unknown'), '/webhooks/stripe');
    return send(res, ok ? 200 : 500, { received: true });
  } catch (err) {
    logError('db', 'webhook insert failed: ' + err.message, '/webhooks/stripe');
    return send(res, 503, { error: 'database unavailable' });
  }
}

// The twin's memory leak (the High-memory runbooks: 000 "High Memory Usage", 002 "memory leak"): a rendered-page
// cache keyed by the full URL, query string included, never evicted, so every distinct link (?utm_source=... of a
// campaign) keeps a page in memory for good.
const pageCache = new Map();

function route(req, res) {
  const url = req.url.split('?')[0];
  if (url === '/' && !pageCache.has(req.url)) pageCache.set(req.url, Buffer.alloc(1 << 20, ' '));
  if (url === prof.health || url === '/health') return health(res);
  if (url === '/version') return send(res, 200, { release, app: appName });
  if (url === '/metrics') {
    return registry.metrics().then((text) => { res.writeHead(200, { 'Content-Type': registry.contentType }); res.end(text); });
  }
  if (profile === 'saasresto' && url === '/login' && req.method === 'POST') return login(req, res);
  if (profile === 'saasresto' && url === '/menu') {
    return pool.query('SELECT m.name AS menu, count(i.id)::int AS items FROM "Menu" m JOIN "Category" c ON c."menuId" = m.id JOIN "Item" i ON i."categoryId" = c.id GROUP BY m.name ORDER BY m.name')
      .then((r) => send(res, 200, r.rows)).catch((err) => { logError('db', err.message, '/menu'); send(res, 503, { error: err.message }); });
  }
  if (profile === 'sme-booking' && url === '/api/bookings') return bookings(req, res);
  if (profile === 'cookcam' && url === '/webhooks/stripe' && req.method === 'POST') return stripeWebhook(req, res);
  res.writeHead(url === '/' ? 200 : 404, { 'Content-Type': 'text/plain' });
  return res.end(url === '/' ? appName + ' (sre.runbooks lab twin), release ' + release + '\n' : 'not found\n');
}

const server = http.createServer((req, res) => {
  const started = process.hrtime.bigint();
  const url = req.url.split('?')[0];
  res.on('finish', () => {
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const known = ['/health', '/api/health', '/metrics', '/version', '/login', '/menu', '/api/bookings', '/webhooks/stripe', '/'];
    const r = known.includes(url) ? url : 'other';
    requests.inc({ route: r, method: req.method, status: String(res.statusCode) });
    latency.observe({ route: r }, seconds);
    if (url === '/metrics' || url === prof.health) return;
    totals.totalRequests += 1;
    if (res.statusCode >= 500) totals.totalErrors += 1;
    if (seconds * 1000 > slowMs) totals.slowRequests += 1;
    if (logDir) logLine(res.statusCode >= 500 ? 'warn' : 'info', { endpoint: url, status: res.statusCode, duration: Math.round(seconds * 1000) });
  });
  Promise.resolve(route(req, res)).catch((err) => { logError('internal', err.message, url); if (!res.headersSent) send(res, 500, { error: 'internal' }); });
});
server.listen(port, () => console.log('listening on ' + port + ', app ' + appName + ', release ' + release));
function stop(sig) { console.log(sig + ', shutting down'); server.close(() => pool.end().then(() => process.exit(0))); setTimeout(() => process.exit(0), 3000).unref(); }
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));
