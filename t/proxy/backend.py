#!/usr/bin/python3
"""HTTP/1.1 test backend for the proxy's integration tests.

Listens on 127.0.0.1:0, prints its port on the first line of stdout, serves
until killed. Its name (argv[1]) identifies it in responses, for load
balancing tests.

  /echo, */echo  JSON: method, path, headers (in order), body length and
                 sha256; request bodies with Content-Length or chunked
  /chunked?n=K   K chunks "chunk-i\\n", with a trailer
  /close?n=B     B bytes, delimited by closing the connection (no length)
  /big?n=B       B bytes with Content-Length
  /status?code=C empty response with status C
  /sleep?ms=M    answers its name after M milliseconds (&mark=PATH: creates
                 PATH when the request arrives)
  /id            the backend's name (after argv[2] milliseconds, if given)
  /flaky?key=K&fail=N&code=C&only=NAME
                 counts the requests for key K; the first N are answered C
                 (default 503), then 200 "ok attempt=A len=L" (L: body
                 length); with only=NAME, backends of another name never fail
  /hits?key=K    how many requests /flaky and /cut saw for key K
  /cut?key=K     counts, then starts a 200 response of 100 bytes and closes
                 after 10 of them
  /peer          the backend's name and the proxy's source port, "name port"
The /echo JSON has the chunked request's trailers in "trailers".

BACKEND_BIND="host:port" in the environment picks the address ("::1:0" or
"127.0.0.2:8080"; the last colon separates the port).
"""
import os
import hashlib
import json
import socket
import sys
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.dont_write_bytecode = True  # no __pycache__ in the tree
from hit_counter import hit, hits  # noqa: E402

NAME = sys.argv[1] if len(sys.argv) > 1 else "backend"
DELAY = int(sys.argv[2]) / 1000.0 if len(sys.argv) > 2 else 0.0  # added to /id


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def read_body(self):
        te = self.headers.get("Transfer-Encoding", "")
        self.trailers = []
        if te.lower() == "chunked":
            body = b""
            while True:
                line = self.rfile.readline()
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while True:
                        t = self.rfile.readline()
                        if t in (b"\r\n", b"\n", b""):
                            break
                        k, _, v = t.decode().partition(":")
                        self.trailers.append([k, v.strip()])
                    return body
                body += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length", "0"))
        return self.rfile.read(n) if n else b""

    def send_body(self, code, body, ctype="text/plain"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def handle_any(self):
        url = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        body = self.read_body()
        if url.path == "/echo" or url.path.endswith("/echo"):
            out = {
                "backend": NAME,
                "method": self.command,
                "path": self.path,
                "version": self.request_version,
                "headers": [[k, v] for k, v in self.headers.items()],
                "body_len": len(body),
                "body_sha256": hashlib.sha256(body).hexdigest(),
                "trailers": self.trailers,
            }
            self.send_body(200, json.dumps(out).encode(), "application/json")
        elif url.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Trailer", "X-Sum")
            self.end_headers()
            for i in range(int(q.get("n", "3"))):
                data = ("chunk-%d\n" % i).encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
            self.wfile.write(b"0\r\nX-Sum: done\r\n\r\n")
        elif url.path == "/close":
            n = int(q.get("n", "100"))
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"c" * n)
            self.wfile.flush()
            self.close_connection = True
        elif url.path == "/big":
            n = int(q.get("n", "1000000"))
            self.send_response(200)
            self.send_header("Content-Length", str(n))
            self.end_headers()
            if self.command == "HEAD":
                return
            block = b"0123456789abcdef" * 4096
            while n > 0:
                k = min(n, len(block))
                self.wfile.write(block[:k])
                n -= k
        elif url.path == "/flaky":
            n = hit(q.get("key", ""))
            fails = q.get("only", NAME) == NAME and n <= int(q.get("fail", "1"))
            if fails:
                self.send_body(int(q.get("code", "503")), b"fail %d\n" % n)
            else:
                self.send_body(200, b"ok attempt=%d len=%d backend=%s\n" % (n, len(body), NAME.encode()))
        elif url.path == "/hits":
            self.send_body(200, b"%d" % hits(q.get("key", "")))
        elif url.path == "/cut":
            hit(q.get("key", ""))
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"x" * 10)
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        elif url.path == "/status":
            self.send_body(int(q.get("code", "200")), b"")
        elif url.path == "/sleep":
            if "mark" in q:  # tells the test the request arrived
                open(q["mark"], "w").close()
            time.sleep(int(q.get("ms", "100")) / 1000.0)
            self.send_body(200, NAME.encode())
        elif url.path == "/peer":
            self.send_body(200, ("%s %d" % (NAME, self.client_address[1])).encode())
        elif url.path == "/id":
            if DELAY:
                time.sleep(DELAY)
            self.send_body(200, NAME.encode())
        else:
            self.send_body(404, b"no such path\n")

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = handle_any


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client hanging up mid-answer is what some tests do (a stalled
        # download closed, a request timed out, a retry cut short): not an
        # error of ours. Anything else keeps its traceback.
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)):
            return
        super().handle_error(request, client_address)

    allow_reuse_address = True
    request_queue_size = 256  # bursts of new connections from the proxy


BIND_HOST, _, BIND_PORT = os.environ.get("BACKEND_BIND", "127.0.0.1:0").rpartition(":")
if ":" in BIND_HOST:
    Server.address_family = socket.AF_INET6
srv = Server((BIND_HOST, int(BIND_PORT)), Handler)
print(srv.server_address[1], flush=True)
srv.serve_forever()
