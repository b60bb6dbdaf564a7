// Tiny app for the target tests: /health answers 200 with the release; a "bad" release crashes at start.
'use strict';
const http = require('http');
const fs = require('fs');
const path = require('path');
const port = parseInt(process.env.PORT || '3000', 10);
const release = process.env.RELEASE || (fs.existsSync(path.join(__dirname, 'REVISION'))
  ? fs.readFileSync(path.join(__dirname, 'REVISION'), 'utf8').trim() : 'dev');
if (process.env.APP_BAD === '1' || fs.existsSync(path.join(__dirname, 'BAD'))) {
  console.error('Error: bad release ' + release + ': migration 0042 missing, refusing to start');
  process.exit(1);
}
http.createServer((req, res) => {
  if (req.url === '/health') {
    res.writeHead(200, {'Content-Type': 'application/json'});
    res.end(JSON.stringify({status: 'ok', release}));
    return;
  }
  res.writeHead(200);
  res.end('hello from ' + release + '\n');
}).listen(port, () => console.log('listening on ' + port + ' release ' + release));
process.on('SIGTERM', () => { console.log('SIGTERM, bye'); process.exit(0); });
