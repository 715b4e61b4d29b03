// A receiver for the flat format: the "Node.js Example" of ConnectGain's webhook documentation,
// run as written there. Only the framework is swapped: Express isn't installed, so ./harness.js
// provides `express.json()` (JSON.parse of the body into req.body) and `res.status().send()` on
// Node's http module. The route's body below is ConnectGain's, line for line (with its
// `express`/`express.json` typos fixed by the harness). Note that it verifies the signature over
// JSON.stringify(req.body), not the raw body: that only works because Hookline's bodies are exactly
// what JSON.stringify writes.
'use strict';
const crypto = require('crypto');
const { serve, isIso } = require('./harness');

// app.post('/webhooks', (req, res) => { ... })
function webhooks(req, res) {
  console.log('Received webhook:', req.method, req.headers);

  const signature = req.headers['x-webhook-signature'];
  const secret = 'your-secret-here';

  // Verify signature
  const hmac = crypto.createHmac('sha256', secret);
  hmac.update(JSON.stringify(req.body));
  const computedSignature = hmac.digest('hex');

  if (signature !== computedSignature) {
    return res.status(401).send('Invalid signature');
  }

  const { event, data } = req.body;

  // Handle the event
  switch (event) {
    case 'contact.created':
      console.log('New contact:', data);
      break;
    case 'deal.stage.changed':
      console.log('Deal stage changed:', data);
      break;
  }

  res.status(200).send('OK');
}

// What the flat format promises about a delivery: headers and the {event, timestamp, data}
// payload.
function check(req, report, expect) {
  const { event, timestamp, data } = req.body;
  report.event = event;
  expect(req.method === 'POST', 'method is POST');
  expect(req.url === '/webhooks', 'path is /webhooks');
  expect(String(req.headers['content-type']).startsWith('application/json'), 'Content-Type: application/json');
  expect(req.headers['x-webhook-event'] === event, 'X-Webhook-Event equals event');
  expect(isIso(req.headers['x-webhook-timestamp']), 'X-Webhook-Timestamp is an ISO timestamp');
  expect(isIso(timestamp), 'timestamp is an ISO timestamp');
  expect(typeof event === 'string' && /^[a-z]+(\.[a-z]+)+$/.test(event), 'event is entity.action');
  expect(data !== null && typeof data === 'object' && !Array.isArray(data), 'data is an object');
  expect(typeof data.id === 'string', 'data.id is a string');
  expect(typeof data.organization_id === 'string', 'data.organization_id is a string');
  if (event.startsWith('contact.')) {
    expect(typeof data.first_name === 'string', 'data.first_name is a string');
    expect(typeof data.last_name === 'string', 'data.last_name is a string');
  }
  if (event === 'deal.stage.changed') {
    expect(typeof data.stage === 'string', 'data.stage is a string');
  }
  // JSON.stringify(req.body) is byte for byte the raw body.
  expect(JSON.stringify(req.body) === req.rawBody.toString('utf8'), 'JSON.stringify(req.body) equals the raw body');
  report.id = data.id;
  report.organization_id = data.organization_id;
  report.first_name = data.first_name;
  report.notes = data.notes;
  report.stage = data.stage;
  report.lifetime_value = data.lifetime_value;
  report.changes = req.body.changes;
}

serve(webhooks, check);
