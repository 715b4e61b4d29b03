"""Shared by the Python receivers in this directory.

It supplies the parts of Flask that the products' documented examples use (`request.headers`,
`request.data`, `request.json`, returning `(text, status)`) on top of the standard library's
`http.server`, since Flask isn't installed, plus what the Rust test reads.

Usage: python3 <script> <port, 0 = any> <requests>. Listens on 127.0.0.1, prints
`LISTENING <port>`, one `RESULT <json>` line per request (its status and what was checked), `DONE`
after <requests> requests, and exits. Gives up with exit code 3 after 60 seconds.
"""
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer


class Request:
    """The parts of `flask.request` the documented examples use."""

    def __init__(self, headers, data):
        self.headers = headers  # case-insensitive, like Flask's
        self.data = data  # the raw body bytes

    @property
    def json(self):
        return json.loads(self.data)


def serve(view, check=None):
    sys.stdout.reconfigure(encoding="utf-8", line_buffering=True)
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    expected = int(sys.argv[2]) if len(sys.argv) > 2 else 1

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            request = Request(self.headers, raw)
            report = {"method": "POST", "path": self.path,
                      "event_header": self.headers.get("X-Webhook-Event"), "checks": []}
            try:
                text, code = view(request)
                # The documented handler accepted the request: now check the payload its format
                # promises.
                if code == 200 and check is not None:
                    failed = []

                    def expect(ok, what):
                        report["checks"].append(what)
                        if not ok:
                            failed.append(what)

                    check(request, report, expect)
                    if failed:
                        text, code = "payload check failed: " + "; ".join(failed), 400
                        report["failed"] = failed
            except Exception as e:  # Flask answers 500 to an exception in a view
                text, code = "error", 500
                report["error"] = repr(e)
            report["status"] = code
            print("RESULT " + json.dumps(report, ensure_ascii=False))
            body = text.encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", port), Handler)
    print(f"LISTENING {server.server_address[1]}")
    timer = threading.Timer(60, lambda: (print("TIMEOUT"), os._exit(3)))
    timer.daemon = True
    timer.start()
    for _ in range(expected):
        server.handle_request()
    print("DONE")
    server.server_close()


def is_iso(s):
    from datetime import datetime
    if not isinstance(s, str):
        return False
    try:
        datetime.fromisoformat(s.replace("Z", "+00:00"))
        return True
    except ValueError:
        return False
