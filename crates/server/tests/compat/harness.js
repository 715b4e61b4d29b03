// Shared by the Node receivers in this directory. It supplies the few parts of Express that the
// products' documented examples use (`express.json()` → `req.body`, `res.status(..).send(..)`) on
// top of Node's own `http` module, since no npm packages are installed, plus what the Rust test
// reads.
//
// Usage: node <script> <port, 0 = any> <requests>. Listens on 127.0.0.1, prints `LISTENING <port>`,
// then one `RESULT <json>` line per request (its status and what was checked), `DONE` after
// <requests> requests, and exits. Gives up with exit code 3 after 60 seconds.
'use strict';
const http = require('http');

function serve(handler, check) {
  const port = Number(process.argv[2] || 0);
  const expected = Number(process.argv[3] || 1);
  let handled = 0;
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      req.rawBody = Buffer.concat(chunks);
      const report = { method: req.method, path: req.url, event_header: req.headers['x-webhook-event'], checks: [] };
      const out = { code: 200, text: '' };
      const reply = {
        status(code) { out.code = code; return reply; },
        send(text) { out.text = String(text); return reply; },
      };
      try {
        // What `app.use(express.json())` does before the route runs.
        req.body = JSON.parse(req.rawBody.toString('utf8'));
        handler(req, reply);
        // The documented handler accepted the request: now check the payload its format promises.
        if (out.code === 200 && check) {
          const failed = [];
          check(req, report, (ok, what) => {
            report.checks.push(what);
            if (!ok) failed.push(what);
          });
          if (failed.length) {
            out.code = 400;
            out.text = 'payload check failed: ' + failed.join('; ');
            report.failed = failed;
          }
        }
      } catch (e) {
        // An exception in an Express route answers 500.
        out.code = 500;
        out.text = 'error';
        report.error = String(e);
      }
      report.status = out.code;
      process.stdout.write('RESULT ' + JSON.stringify(report) + '\n');
      handled += 1;
      const last = handled >= expected;
      res.on('finish', () => {
        if (last) {
          process.stdout.write('DONE\n');
          server.close();
          server.closeAllConnections();
        }
      });
      res.writeHead(out.code, { 'content-type': 'text/plain' });
      res.end(out.text);
    });
  });
  server.listen(port, '127.0.0.1', () => {
    process.stdout.write(`LISTENING ${server.address().port}\n`);
  });
  setTimeout(() => {
    process.stdout.write('TIMEOUT\n');
    process.exit(3);
  }, 60000).unref();
}

// True for an ISO-8601 timestamp string.
function isIso(s) {
  return typeof s === 'string' && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/.test(s) && !isNaN(Date.parse(s));
}

module.exports = { serve, isIso };
