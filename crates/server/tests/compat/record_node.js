// A receiver for the record-centred format, written from Customermates' webhook documentation:
// its Node.js `verify` function, translated from TypeScript to JavaScript (type annotations
// dropped, nothing else changed), called with the raw request body as the documentation says, and
// its envelope read as the documentation describes it:
// {event, data: {userId, companyId, entityId, payload: {<entity>, changes?} | {<entity>Id}}, timestamp}.
// Express isn't installed: ./harness.js serves it with Node's http module.
'use strict';
const crypto = require('crypto');
const { serve, isIso } = require('./harness');

// Customermates' example, verbatim but for the TypeScript types.
function verify(rawBody, received, secret) {
  const expected = crypto.createHmac("sha256", secret).update(rawBody).digest("hex");
  return crypto.timingSafeEqual(Buffer.from(expected), Buffer.from(received));
}

// The secret from Customermates' create_webhook example.
const secret = 'use-a-random-string-from-a-password-manager';

function webhooks(req, res) {
  const rawBody = req.rawBody.toString('utf8');
  const received = req.headers['x-webhook-signature'];
  // timingSafeEqual throws on a missing or odd-length signature: Express would answer 500.
  if (!verify(rawBody, received, secret)) {
    return res.status(401).send('invalid signature');
  }
  res.status(200).send('ok');
}

function check(req, report, expect) {
  const { event, data, timestamp } = req.body;
  const keys = Object.keys(req.body);
  report.event = event;
  expect(keys.join(',') === 'event,data,timestamp', 'envelope keys are event, data, timestamp');
  expect(String(req.headers['content-type']).startsWith('application/json'), 'Content-Type: application/json');
  expect(req.headers['x-webhook-event'] === event, 'X-Webhook-Event equals event');
  expect(isIso(timestamp), 'timestamp is ISO-8601');
  expect(typeof data.userId === 'string' || data.userId === null, 'data.userId is a string or null');
  expect(typeof data.companyId === 'string', 'data.companyId is a string');
  expect(typeof data.entityId === 'string', 'data.entityId is a string');
  const entity = event.split('.')[0];
  const { payload } = data;
  if (event.endsWith('.deleted')) {
    // "Delete events carry only the id, not the final state of the record."
    expect(Object.keys(payload).join(',') === `${entity}Id`, `payload is {${entity}Id}`);
    expect(payload[`${entity}Id`] === data.entityId, `payload.${entity}Id equals entityId`);
  } else {
    const record = payload[entity];
    expect(record !== null && typeof record === 'object', `payload.${entity} is an object`);
    expect(record.id === data.entityId, `payload.${entity}.id equals entityId`);
    if (event.endsWith('.updated')) {
      // "The changes record is only present on *.updated events."
      const changes = payload.changes;
      expect(changes !== null && typeof changes === 'object' && Object.keys(changes).length > 0, 'payload.changes names fields');
      for (const [field, change] of Object.entries(changes || {})) {
        expect('previous' in change && 'current' in change, `changes.${field} has previous and current`);
      }
    } else {
      expect(!('changes' in payload), 'no changes outside *.updated');
    }
    // Customermates' example contact spells its fields in camelCase (firstName, lastName, ...).
    report.first_name = record.firstName;
    expect(!('first_name' in record), 'record fields are camelCase');
    report.name = record.name;
  }
  report.userId = data.userId;
  report.companyId = data.companyId;
  report.entityId = data.entityId;
  report.changes = payload.changes;
}

serve(webhooks, check);
