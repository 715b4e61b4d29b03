"""A receiver for the contacts-list format, written from CloudCX's webhook documentation:
{"event": "ContactCreated", "contacts": [...]} with camelCase contact fields and `createdTime` as a
string of epoch milliseconds, or {"event": "ContactDeleted", "ids": [...]}. CloudCX documents no
signature, so this receiver verifies both of Hookline's signatures with the Python snippets of the
README's "Receiving webhooks" section, copied verbatim (a test keeps the README and this file in
step). Served with the standard library's http.server.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import serve  # noqa: E402

# --- README: verifying in Python ---
import base64, hashlib, hmac, time


def verify_hex(raw_body: bytes, signature, secret: str) -> bool:
    """X-Webhook-Signature: lowercase hex HMAC-SHA256 of the raw body, keyed with the secret."""
    expected = hmac.new(secret.encode(), raw_body, hashlib.sha256).hexdigest()
    return signature is not None and hmac.compare_digest(expected, signature)


def verify_standard(raw_body: bytes, headers, secret: str, tolerance_secs: int = 300) -> bool:
    """Standard Webhooks: v1,<base64 HMAC-SHA256 of "id.timestamp.body">, several during a rotation."""
    msg_id = headers.get("webhook-id")
    ts = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature", "")
    if not msg_id or not ts or abs(time.time() - int(ts)) > tolerance_secs:
        return False
    key = base64.b64decode(secret[6:]) if secret.startswith("whsec_") else secret.encode()
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + raw_body, hashlib.sha256)
    expected = base64.b64encode(mac.digest()).decode()
    return any(hmac.compare_digest(s[3:], expected) for s in signatures.split() if s.startswith("v1,"))
# --- end ---

SECRET = os.environ["WEBHOOK_SECRET"]

# Every field of CloudCX's example contact, in its order.
CONTACTS_LIST_FIELDS = [
    "id", "firstName", "lastName", "avatarUrl", "email", "phoneNumber", "contactId", "owner",
    "ownerName", "leadStage", "tags", "notes", "companyName", "jobTitle", "priority", "ip",
    "countryRegion", "province", "city", "street", "zipCode", "language", "facebookUsername",
    "telegramUsername", "instagramUsername", "whatsappNumber", "subscribeEmail", "subscribeSMS",
    "subscribeWhatsapp", "lastChannel", "createdTime", "lastUpdatedTime", "lastSeenTime",
    "lastConnectedTime", "lastHeardFromTime", "customFields",
]


def webhook(request):
    hex_ok = verify_hex(request.data, request.headers.get("X-Webhook-Signature"), SECRET)
    if not hex_ok or not verify_standard(request.data, request.headers, SECRET):
        return "invalid signature", 401
    payload = request.json
    if payload["event"] in ("ContactCreated", "ContactUpdated"):
        for contact in payload["contacts"]:
            print(payload["event"], contact["id"], contact["firstName"], contact["email"])
    elif payload["event"] == "ContactDeleted":
        print("ContactDeleted", payload["ids"])
    return "ok", 200


def check(request, report, expect):
    payload = request.json
    event = payload["event"]
    report["event"] = event
    expect(request.headers.get("X-Webhook-Event") == event, "X-Webhook-Event equals event")
    expect(event in ("ContactCreated", "ContactUpdated", "ContactDeleted"), "event is a Contact* event")
    if event == "ContactDeleted":
        expect(list(payload) == ["event", "ids"], "a delete is {event, ids}")
        expect(all(isinstance(i, str) for i in payload["ids"]), "ids are strings")
        report["ids"] = payload["ids"]
        return
    expect(list(payload) == ["event", "contacts"], "a create/update is {event, contacts}")
    contact = payload["contacts"][0]
    expect(list(contact) == CONTACTS_LIST_FIELDS, "contacts[0] has CloudCX's fields in its order")
    expect(isinstance(contact["firstName"], str), "firstName is a string")
    created = contact["createdTime"]
    expect(isinstance(created, str) and created.isdigit(), "createdTime is a string of epoch milliseconds")
    expect(contact["lastUpdatedTime"] is None or contact["lastUpdatedTime"].isdigit(), "lastUpdatedTime is null or millis")
    expect(isinstance(contact["customFields"], list), "customFields is a list")
    report.update({
        "id": contact["id"],
        "firstName": contact["firstName"],
        "lastName": contact["lastName"],
        "email": contact["email"],
        "phoneNumber": contact["phoneNumber"],
        "companyName": contact["companyName"],
        "jobTitle": contact["jobTitle"],
        "owner": contact["owner"],
        "createdTime": created,
        "lastUpdatedTime": contact["lastUpdatedTime"],
        "customFields": contact["customFields"],
        "count": len(payload["contacts"]),
    })


serve(webhook, check)
