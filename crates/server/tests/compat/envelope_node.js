// A receiver for the envelope format, written from ConnectMachine's webhook documentation: its
// headers (X-ConnectMachine-Event, X-ConnectMachine-Delivery-ID), its envelope {event_id,
// occurred_at, source?, source_id?, batch?, data: {event_type, contacts | contact_ids}}, its advice
// to key idempotency on the delivery id. ConnectMachine documents no signature, so this receiver
// verifies both of Hookline's signatures with the Node snippets of the README's "Receiving
// webhooks" section, copied verbatim (a test keeps the README and this file in step).
'use strict';
const crypto = require('crypto');
const { serve, isIso } = require('./harness');

// --- README: verifying in Node ---
// X-Webhook-Signature: lowercase hex HMAC-SHA256 of the raw body, keyed with the secret.
function verifyHex(rawBody, signature, secret) {
  const expected = Buffer.from(crypto.createHmac('sha256', secret).update(rawBody).digest('hex'));
  const given = Buffer.from(String(signature || ''));
  return given.length === expected.length && crypto.timingSafeEqual(given, expected);
}

// Standard Webhooks: `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, several during a rotation.
function verifyStandard(rawBody, headers, secret, toleranceSecs = 300) {
  const id = headers['webhook-id'];
  const ts = headers['webhook-timestamp'];
  const signatures = headers['webhook-signature'] || '';
  if (!id || !ts || Math.abs(Date.now() / 1000 - Number(ts)) > toleranceSecs) return false;
  const key = secret.startsWith('whsec_') ? Buffer.from(secret.slice(6), 'base64') : Buffer.from(secret);
  const expected = crypto.createHmac('sha256', key).update(`${id}.${ts}.`).update(rawBody).digest();
  return signatures.split(' ').some((s) => {
    const [version, b64] = s.split(',');
    const given = Buffer.from(b64 || '', 'base64');
    return version === 'v1' && given.length === expected.length && crypto.timingSafeEqual(given, expected);
  });
}
// --- end ---

const secret = process.env.WEBHOOK_SECRET;
const seen = new Set();

function webhooks(req, res) {
  const hexOk = verifyHex(req.rawBody, req.headers['x-webhook-signature'], secret);
  if (!hexOk || !verifyStandard(req.rawBody, req.headers, secret)) {
    return res.status(401).send('invalid signature');
  }
  // "Be idempotent — events can be redelivered; key off X-ConnectMachine-Delivery-ID."
  const deliveryId = req.headers['x-connectmachine-delivery-id'];
  if (seen.has(deliveryId)) return res.status(200).send('duplicate');
  seen.add(deliveryId);
  // "Log event_type and delivery_id for traceability."
  console.log(req.body.data.event_type, deliveryId);
  res.status(200).send('ok');
}

function check(req, report, expect) {
  const body = req.body;
  const { data } = body;
  const eventType = data.event_type;
  report.event = eventType;
  expect(String(req.headers['content-type']).startsWith('application/json'), 'Content-Type: application/json');
  expect(req.headers['x-connectmachine-event'] === eventType, 'X-ConnectMachine-Event equals data.event_type');
  expect(/^[0-9a-f-]{36}$/.test(req.headers['x-connectmachine-delivery-id']), 'X-ConnectMachine-Delivery-ID is a UUID');
  expect(body.event_id === req.headers['x-connectmachine-delivery-id'], 'event_id equals the delivery id header');
  expect(isIso(body.occurred_at), 'occurred_at is ISO-8601');
  expect(!('source' in body) || typeof body.source === 'string', 'source is absent or a string');
  expect(!('source_id' in body) || typeof body.source_id === 'string', 'source_id is absent or a string');
  expect(['contacts.created', 'contacts.updated', 'contacts.deleted'].includes(eventType), 'event_type is a contacts.* event');
  if (eventType === 'contacts.deleted') {
    // "Deleted events send contact_ids only."
    expect(Array.isArray(data.contact_ids) && data.contact_ids.every((i) => typeof i === 'string'), 'data.contact_ids is a list of ids');
    expect(!('contacts' in data), 'no contacts on a delete');
    report.contact_ids = data.contact_ids;
  } else {
    expect(Array.isArray(data.contacts) && data.contacts.length > 0, 'data.contacts is a non-empty list');
    const contact = data.contacts[0];
    expect(typeof contact.id === 'string', 'contacts[0].id is a string');
    expect(typeof contact.first_name === 'string', 'contacts[0].first_name is a string');
    // "Tolerate missing optional fields — not every contact has every field."
    expect(!('emails' in contact) || Array.isArray(contact.emails), 'contacts[0].emails is absent or a list');
    report.first_name = contact.first_name;
    report.primary_email = contact.primary_email;
    report.ratios = contact.ratios;
  }
  if ('batch' in body) {
    // "Present for chunked deliveries: index, count, max_size."
    const { index, count, max_size: maxSize } = body.batch;
    expect(Number.isInteger(index) && index >= 1, 'batch.index is 1-based');
    expect(count === data.contacts.length && count <= maxSize, 'batch.count is the number of contacts');
    expect(body.source === 'contact_import' && typeof body.source_id === 'string', 'a batch comes from an import');
    report.batch = body.batch;
    report.contact_count = data.contacts.length;
  }
  report.event_id = body.event_id;
  report.source = body.source;
  report.source_id = body.source_id;
  report.changes = data.changes;
}

serve(webhooks, check);
