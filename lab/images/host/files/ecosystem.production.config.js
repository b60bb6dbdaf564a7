// pm2 ecosystem of the lab twin of cookcam-api (runbook 001): `pm2 reload ecosystem.production.config.js`.
const fs = require('fs');
const path = require('path');
const env = {};
for (const line of fs.readFileSync(path.join(__dirname, '.env'), 'utf8').split('\n')) {
  const m = line.match(/^([A-Z_][A-Z0-9_]*)=(.*)$/);
  if (m) env[m[1]] = m[2];
}
module.exports = {
  apps: [{
    name: 'cookcam-api',
    cwd: __dirname,
    script: path.join(__dirname, 'server.js'),
    exec_mode: 'fork',
    instances: 1,
    max_memory_restart: '300M',
    exp_backoff_restart_delay: 200,
    out_file: '/var/log/cookcam-api/out.log',
    error_file: '/var/log/cookcam-api/error.log',
    env,
  }],
};
