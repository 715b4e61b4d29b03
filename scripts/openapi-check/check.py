"""Hookline's OpenAPI document, checked with tools nobody here wrote.

    python check.py /path/to/hookline

Starts `hookline serve` on a temporary SQLite database (loopback only), then:

1. fetches /v1/openapi.json without a key and validates it with openapi-spec-validator (which,
   among the rest, refuses repeated operation ids);
2. checks what the issue asked of it: unique descriptive operation ids, one path per record kind
   with its own schemas, every error response documented with the error shape;
3. generates a Python client with openapi-python-client (failing on any generator warning),
   imports it, and uses it to create a webhook, read it back, list it, see a 422 parsed as the
   error shape, and create a contact with the generated Contact type;
4. fetches /docs (no key) and checks it is self-contained HTML under a strict CSP.

All traffic stays on 127.0.0.1. Exits non-zero on the first failure.
"""

import importlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from openapi_spec_validator import validate

HERE = Path(__file__).resolve().parent
RECORD_KINDS = ["contacts", "organizations", "deals", "services", "tasks"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, dict(r.headers), r.read()


def start_server(binary: str, workdir: Path):
    port = free_port()
    env = dict(
        os.environ,
        HOOKLINE_DATABASE_URL=f"sqlite://{workdir / 'hookline.db'}",
        HOOKLINE_ALLOW_TARGETS="127.0.0.1/32",
        HOOKLINE_ALLOW_HTTP="true",
        HOOKLINE_LOG="warn",
    )
    proc = subprocess.Popen(
        [binary, "serve", "--listen", f"127.0.0.1:{port}"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    # The first start on an empty database prints the bootstrap key on a line of its own.
    key = None
    deadline = time.time() + 60
    output = []
    while time.time() < deadline and key is None:
        line = proc.stdout.readline()
        if not line:
            break
        output.append(line)
        if re.fullmatch(r"hk_\S+", line.strip()):
            key = line.strip()
    if key is None:
        proc.kill()
        sys.exit("hookline serve printed no API key:\n" + "".join(output))
    base = f"http://127.0.0.1:{port}"
    while time.time() < deadline:
        try:
            if get(base + "/healthz")[0] == 200:
                return proc, base, key
        except OSError:
            time.sleep(0.1)
    proc.kill()
    sys.exit("hookline serve did not answer /healthz")


def check_document(doc: dict) -> None:
    validate(doc)
    print("ok: openapi-spec-validator accepts the document (OpenAPI %s)" % doc["openapi"])

    ids = []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method not in ("get", "put", "post", "patch", "delete"):
                continue
            op_id = op.get("operationId", "")
            assert re.fullmatch(r"[a-z]+[A-Za-z]*", op_id) and len(op_id) > 6, f"{method} {path}: {op_id!r}"
            ids.append(op_id)
            for status, response in op["responses"].items():
                if status.startswith(("4", "5")):
                    ref = response.get("$ref", "")
                    target = doc["components"]["responses"][ref.rsplit("/", 1)[-1]] if ref else response
                    schema = target["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorBody"}, f"{op_id} {status}: {schema}"
            if op.get("security"):
                for status in ("401", "503"):
                    assert status in op["responses"], f"{op_id} lacks {status}"
    assert len(ids) == len(set(ids)), f"repeated operation ids: {sorted(i for i in ids if ids.count(i) > 1)}"
    print(f"ok: {len(ids)} operations, each with its own operation id and documented errors")

    assert "/v1/{kind}" not in doc["paths"] and "/v1/{kind}/{id}" not in doc["paths"]
    schemas = doc["components"]["schemas"]
    for kind in RECORD_KINDS:
        for path in (f"/v1/{kind}", f"/v1/{kind}/{{id}}"):
            assert path in doc["paths"], f"missing {path}"
        singular = kind[:-1].capitalize()
        assert singular in schemas, f"no {singular} schema"
        create = doc["paths"][f"/v1/{kind}"]["post"]
        body = create["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": f"#/components/schemas/{singular}"}, f"{kind}: {body}"
    assert schemas["Contact"].get("additionalProperties") is False, "contacts are strict"
    print("ok: one path per record kind, each with its own schema")


def check_generated_client(doc: dict, base: str, key: str, workdir: Path) -> None:
    spec = workdir / "openapi.json"
    spec.write_text(json.dumps(doc))
    out = workdir / "client"
    generator = Path(sys.executable).with_name("openapi-python-client")
    subprocess.run(
        [str(generator), "generate", "--path", str(spec), "--config", str(HERE / "generator.yaml"),
         "--output-path", str(out), "--fail-on-warning"],
        check=True,
    )
    print("ok: openapi-python-client generated a client without a warning")
    sys.path.insert(0, str(out))
    client_mod = importlib.import_module("hookline_client")
    from hookline_client.api.contacts import create_contact
    from hookline_client.api.webhooks import create_webhook, get_webhook, list_webhooks
    from hookline_client.models import Contact, ContactWrite, ErrorBody, WebhookInput, WebhookView

    client = client_mod.AuthenticatedClient(base_url=base, token=key, raise_on_unexpected_status=True)
    with client as c:
        made = create_webhook.sync_detailed(
            client=c,
            body=WebhookInput(url="http://127.0.0.1:9/hook", events=["contact.created"], name="generated"),
        )
        assert made.status_code == 201, (made.status_code, made.content)
        hook = made.parsed
        assert isinstance(hook, WebhookView), hook
        assert hook.url == "http://127.0.0.1:9/hook" and hook.name == "generated", hook
        assert hook.secret.startswith("whsec_"), hook.secret
        print(f"ok: the generated client created webhook {hook.id}")

        again = get_webhook.sync(client=c, id=hook.id)
        assert isinstance(again, WebhookView) and again.id == hook.id, again
        page = list_webhooks.sync(client=c)
        assert hook.id in [w.id for w in page.data], page
        print("ok: ... read it back with getWebhook and found it with listWebhooks")

        refused = create_webhook.sync_detailed(
            client=c, body=WebhookInput(url="http://169.254.169.254/latest", events=["contact.created"])
        )
        assert refused.status_code == 422 and isinstance(refused.parsed, ErrorBody), refused
        assert refused.parsed.error.field == "url", refused.parsed
        print(f"ok: ... and got a 422 parsed as ErrorBody ({refused.parsed.error.code})")

        contact = create_contact.sync(client=c, body=Contact(first_name="Ada", primary_email="ada@example.com"))
        assert isinstance(contact, ContactWrite) and contact.changed, contact
        assert contact.data.first_name == "Ada", contact.data
        assert [e.event_type for e in contact.events] == ["contact.created"], contact.events
        print(f"ok: createContact with the generated Contact type created {contact.data.id}")


def check_docs_page(base: str) -> None:
    status, headers, body = get(base + "/docs")
    headers = {k.lower(): v for k, v in headers.items()}
    assert status == 200 and headers["content-type"].startswith("text/html"), (status, headers)
    csp = headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp, csp
    html = body.decode()
    assert "createWebhook" in html and "listContacts" in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "the page loads nothing from elsewhere"
    status, headers, _ = get(base + "/docs/docs.css")
    assert status == 200
    print("ok: /docs renders the reference from the document, self-contained, under a strict CSP")


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: python check.py /path/to/hookline")
    workdir = Path(tempfile.mkdtemp(prefix="hookline-openapi-"))
    proc = None
    try:
        proc, base, key = start_server(sys.argv[1], workdir)
        status, _, body = get(base + "/v1/openapi.json")  # no Authorization header
        assert status == 200
        doc = json.loads(body)
        check_document(doc)
        check_generated_client(doc, base, key, workdir)
        check_docs_page(base)
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)
    print("openapi-check: passed")


if __name__ == "__main__":
    main()
