#!/usr/bin/python3
"""HTTP/1.1 backend for the mesh test, run inside a network namespace.

  mesh_backend.py IP PORT NAME

Listens on IP:PORT, prints "ready" once listening, and answers every GET
with JSON: its name, the peer address that connected (which agent, if any,
delivered the request), the x-outrider-dst header if one reached it (it
never should) and the Host, the x-seen-caller a route script set and the
x-outrider-caller header if one reached it (it never should).
"""
import json
import socketserver
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

IP, PORT, NAME = sys.argv[1], int(sys.argv[2]), sys.argv[3]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        body = json.dumps({
            "name": NAME,
            "peer": self.client_address[0],
            "dst": self.headers.get("x-outrider-dst"),
            "host": self.headers.get("Host"),
            # the caller the delivering agent's route script saw, and the
            # mesh's caller header (which never reaches an app)
            "caller": self.headers.get("x-seen-caller"),
            "fwd": self.headers.get("x-outrider-caller"),
        }).encode() + b"\n"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Server(ThreadingHTTPServer):
    allow_reuse_address = True

    def server_bind(self):
        # HTTPServer's own looks up the host name (getfqdn), which waits
        # for DNS timeouts in a namespace without a resolver.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = IP, PORT


server = Server((IP, PORT), Handler)
print("ready", flush=True)
server.serve_forever()
