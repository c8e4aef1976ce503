#!/usr/bin/python3
"""A backend that fails on purpose, for the proxy's health and ejection tests.

Listens on 127.0.0.1 (argv[2] = port, 0 or absent: any), prints its port on
the first line of stdout, serves until killed. argv[1] is its name.

Traffic paths answer according to the current mode:
  ok      200 with the backend's name
  503     503 with the backend's name
  close   reads the request and closes the connection without answering
  hang    reads the request and answers nothing for 30 s
/healthz answers per its own mode (same values; default ok).
/sleep?ms=M  answers after M ms.
Requests sleeping or hanging are counted as in progress.

Control, sent straight to the backend (never through the proxy):
  /_mode?traffic=M&health=M  sets the modes
  /_stats                    JSON: counts per path, requests in progress,
                             the headers of the last /healthz request
"""
import json
import select
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAME = sys.argv[1] if len(sys.argv) > 1 else "backend"
PORT = int(sys.argv[2]) if len(sys.argv) > 2 else 0
lock = threading.Lock()
state = {"traffic": "ok", "health": "ok"}
counts = {}
in_progress = [0]
last_health = {}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, code, body, ctype="text/plain"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def act(self, mode):
        if mode == "close":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        elif mode == "hang":
            # Up to 30 s, or until the peer gives up and closes.
            with lock:
                in_progress[0] += 1
            until = time.time() + 30
            while time.time() < until:
                r, _, _ = select.select([self.connection], [], [], 0.05)
                if r and not self.connection.recv(1, socket.MSG_PEEK):
                    break
            with lock:
                in_progress[0] -= 1
            self.close_connection = True
        else:
            self.reply(503 if mode == "503" else 200, NAME.encode())

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        if url.path == "/_mode":
            with lock:
                for k in ("traffic", "health"):
                    if k in q:
                        state[k] = q[k]
            self.reply(200, b"ok\n")
            return
        if url.path == "/_stats":
            with lock:
                out = {"counts": counts, "in_progress": in_progress[0], "last_health": last_health}
            self.reply(200, json.dumps(out).encode(), "application/json")
            return
        with lock:
            counts[url.path] = counts.get(url.path, 0) + 1
            if url.path == "/healthz":
                last_health.clear()
                last_health.update({k.lower(): v for k, v in self.headers.items()})
                last_health["request_line"] = self.requestline
            mode = state["health"] if url.path == "/healthz" else state["traffic"]
        if url.path == "/sleep" and mode == "ok":
            with lock:
                in_progress[0] += 1
            time.sleep(int(q.get("ms", "100")) / 1000.0)
            with lock:
                in_progress[0] -= 1
        self.act(mode)

    do_POST = do_HEAD = do_GET


class Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        # A peer gone mid-answer is part of these tests (timeouts, hangs):
        # quiet, so that real errors stand out.
        err = sys.exc_info()[1]
        if not isinstance(err, (ConnectionResetError, BrokenPipeError)):
            super().handle_error(request, client_address)

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


srv = Server(("127.0.0.1", PORT), Handler)
print(srv.server_address[1], flush=True)
srv.serve_forever()
