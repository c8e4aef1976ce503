#!/usr/bin/python3
"""A stand-in for the Kubernetes API server's pod list and watch, for
t/63-packaging-inventory.t (no API server runs on these machines).

Serves on 127.0.0.1, port 0; writes the bound port to argv[1]. The test drives
it over HTTP:
  POST /control/list    body: a PodList; the next GET list answers it
  POST /control/event   body: a watch event; streamed to the open watch
                        ({"close": true} ends the stream)
  GET  /control/requests   every API request so far: [{path, auth}]
  GET  /api/v1/pods?...     list, or watch=1: chunked JSON lines, like the real one
"""

import json
import queue
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

lock = threading.Lock()
state = {"list": {"kind": "PodList", "metadata": {"resourceVersion": "1"}, "items": []}, "requests": []}
events = queue.Queue()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        if self.path == "/control/list":
            with lock:
                state["list"] = body
        elif self.path == "/control/event":
            events.put(body)
        else:
            return self.reply(404, {})
        self.reply(200, {})

    def do_GET(self):
        u = urlsplit(self.path)
        if u.path == "/control/requests":
            with lock:
                return self.reply(200, state["requests"])
        if u.path != "/api/v1/pods":
            return self.reply(404, {"kind": "Status", "code": 404})
        with lock:
            state["requests"].append({"path": self.path, "auth": self.headers.get("Authorization", "")})
            listing = state["list"]
        if parse_qs(u.query).get("watch") != ["1"]:
            return self.reply(200, listing)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        while True:
            ev = events.get()
            if ev.get("close"):
                break
            line = json.dumps(ev).encode() + b"\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
            self.wfile.flush()
            if ev.get("type") == "ERROR":
                break
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
        self.close_connection = True


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
import os  # noqa: E402

os.rename(sys.argv[1] + ".tmp", sys.argv[1])
server.serve_forever()
