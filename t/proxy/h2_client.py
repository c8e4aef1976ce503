#!/usr/bin/python3
"""HTTP/2 (h2c, prior knowledge) test client on python3-h2 that sends
request trailers, which curl and nghttp cannot.

  h2_client.py ADDR AUTHORITY METHOD PATH BODY [NAME=VALUE ...]

Sends the request with BODY as its data and the NAME=VALUE pairs as
trailers ending the stream; prints JSON {status, body}.
"""
import json
import socket
import sys

import h2.config
import h2.connection
import h2.events

addr, authority, method, path, body = sys.argv[1:6]
trailers = [tuple(a.split("=", 1)) for a in sys.argv[6:]]
host, port = addr.rsplit(":", 1)
sock = socket.create_connection((host, int(port)), timeout=10)
conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
conn.initiate_connection()
sid = conn.get_next_available_stream_id()
conn.send_headers(sid, [(":method", method), (":scheme", "http"), (":authority", authority), (":path", path)])
if body:
    conn.send_data(sid, body.encode())
if trailers:
    conn.send_headers(sid, trailers, end_stream=True)
else:
    conn.end_stream(sid)
sock.sendall(conn.data_to_send())
out = {"status": 0, "body": ""}
done = False
resp = b""
while not done:
    data = sock.recv(65536)
    if not data:
        break
    for ev in conn.receive_data(data):
        if isinstance(ev, h2.events.ResponseReceived):
            out["status"] = int(dict(ev.headers)[":status"])
        elif isinstance(ev, h2.events.DataReceived):
            resp += ev.data
            conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
            done = True
    sock.sendall(conn.data_to_send())
out["body"] = resp.decode(errors="replace")
print(json.dumps(out), flush=True)
