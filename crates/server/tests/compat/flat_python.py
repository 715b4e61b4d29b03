"""A receiver for the flat format: the "Python Example" of ConnectGain's webhook documentation,
run as written there.

Only the framework is swapped: Flask isn't installed, so ./harness.py provides `request.headers`,
`request.data` (the raw body) and `request.json` on the standard library's http.server. The view
below is ConnectGain's, line for line (with its missing `()` after `def webhook` and
`.hexdigest` restored, and `request` passed in instead of imported).
"""
import hashlib
import hmac
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import is_iso, serve  # noqa: E402


# @app.route('/webhooks', methods=['POST'])
def webhook(request):
    signature = request.headers.get('X-Webhook-Signature')
    secret = b'your-secret-here'

    # Verify signature
    computed = hmac.new(secret, request.data, hashlib.sha256).hexdigest()

    if not hmac.compare_digest(computed, signature):
        return 'Invalid signature', 401

    event = request.json['event']
    data = request.json['data']

    # Handle event
    if event == 'contact.created':
        print(f'New contact: {data}')
    elif event == 'deal.stage.changed':
        print(f'Deal stage changed: {data}')

    return 'OK', 200


def check(request, report, expect):
    """What the flat format promises about a delivery: headers and the {event, timestamp, data}
    payload."""
    body = request.json
    event, data = body['event'], body['data']
    report['event'] = event
    expect(request.headers.get('Content-Type', '').startswith('application/json'), 'Content-Type: application/json')
    expect(request.headers.get('X-Webhook-Event') == event, 'X-Webhook-Event equals event')
    expect(is_iso(request.headers.get('X-Webhook-Timestamp')), 'X-Webhook-Timestamp is an ISO timestamp')
    expect(is_iso(body.get('timestamp')), 'timestamp is an ISO timestamp')
    expect(isinstance(event, str) and re.fullmatch(r'[a-z]+(\.[a-z]+)+', event) is not None, 'event is entity.action')
    expect(isinstance(data, dict), 'data is an object')
    expect(isinstance(data.get('id'), str), 'data.id is a string')
    expect(isinstance(data.get('organization_id'), str), 'data.organization_id is a string')
    if event.startswith('contact.'):
        expect(isinstance(data.get('first_name'), str), 'data.first_name is a string')
        expect(isinstance(data.get('last_name'), str), 'data.last_name is a string')
    if event == 'deal.stage.changed':
        expect(isinstance(data.get('stage'), str), 'data.stage is a string')
    report.update({
        'id': data.get('id'),
        'organization_id': data.get('organization_id'),
        'first_name': data.get('first_name'),
        'notes': data.get('notes'),
        'stage': data.get('stage'),
        'lifetime_value': data.get('lifetime_value'),
        'changes': body.get('changes'),
    })


serve(webhook, check)
