// pm2 ecosystem for the lab's cookcam-api (source runbook 001's app).
const fs = require('fs');
const env = {};
for (const line of fs.readFileSync('/srv/cookcam-api/shared/.env', 'utf8').split('\n')) {
  const m = line.match(/^([A-Z_]+)=(.*)$/);
  if (m) env[m[1]] = m[2];
}
module.exports = {
  apps: [{
    name: 'cookcam-api',
    cwd: '/srv/cookcam-api/current',
    script: '/srv/cookcam-api/current/server.js',
    exec_mode: 'fork',
    instances: 1,
    max_memory_restart: '300M',
    exp_backoff_restart_delay: 200,
    out_file: '/srv/cookcam-api/shared/log/out.log',
    error_file: '/srv/cookcam-api/shared/log/error.log',
    env,
  }],
};
