#!/usr/bin/python3
"""HPACK representation checks on python3-h2, which reports fields that
arrived as literals never indexed (RFC 7541 6.2.3) as NeverIndexedHeaderTuple.

  h2_hpack.py backend
      h2c backend; prints its port, serves until killed. Answers every
      request 200 with JSON {"never_indexed": [request field names that
      arrived never indexed], "fields": {name: value}, "settings": {the
      SETTINGS the proxy sent on this connection: id: value}} and the response
      fields x-resp-secret (sent never indexed), x-request-id (the
      request's, sent with indexing) and x-resp-plain (with indexing).
  h2_hpack.py client ADDR AUTHORITY N
      N GET / one after the other on one connection, each with
      x-secret-token (sent never indexed), x-request-id (new per request)
      and x-plain (same every time), both with indexing; prints JSON
      {"settings": {the proxy's SETTINGS: id: value}, "responses": [per
      request: {"status", "sent_id", "never_indexed": [response field names
      that arrived never indexed], "fields": {response fields}, "body"}]}.
"""
import json
import socket
import sys
import threading
import uuid

import h2.config
import h2.connection
import h2.events
from hpack import NeverIndexedHeaderTuple


def never_indexed(headers):
    return sorted(h[0] for h in headers if isinstance(h, NeverIndexedHeaderTuple))


def settings_of(ev, into):
    for k, v in ev.changed_settings.items():
        into[str(int(k))] = v.new_value


def serve(sock):
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    settings = {}
    while True:
        data = sock.recv(65536)
        if not data:
            break
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.RemoteSettingsChanged):
                settings_of(ev, settings)
            if isinstance(ev, h2.events.RequestReceived):
                fields = dict(ev.headers)
                body = json.dumps({"never_indexed": never_indexed(ev.headers), "fields": fields,
                                   "settings": settings}).encode()
                conn.send_headers(ev.stream_id, [
                    (":status", "200"), ("content-length", str(len(body))),
                    NeverIndexedHeaderTuple("x-resp-secret", "s3cret"),
                    ("x-request-id", fields.get("x-request-id", "none")),
                    ("x-resp-plain", "same"),
                ])
                conn.send_data(ev.stream_id, body, end_stream=True)
        sock.sendall(conn.data_to_send())
    sock.close()


def backend():
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    print(srv.getsockname()[1], flush=True)
    while True:
        c, _ = srv.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


def client(addr, authority, n):
    host, port = addr.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=10)
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    out = []
    settings = {}
    for _ in range(n):
        rid = str(uuid.uuid4())
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, [
            (":method", "GET"), (":scheme", "http"), (":authority", authority), (":path", "/"),
            NeverIndexedHeaderTuple("x-secret-token", "t0ken"), ("x-request-id", rid), ("x-plain", "same"),
        ], end_stream=True)
        sock.sendall(conn.data_to_send())
        r = {"status": 0, "sent_id": rid, "never_indexed": [], "fields": {}, "body": ""}
        body = b""
        done = False
        while not done:
            data = sock.recv(65536)
            if not data:
                break
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.RemoteSettingsChanged):
                    settings_of(ev, settings)
                if isinstance(ev, h2.events.ResponseReceived):
                    r["fields"] = dict(ev.headers)
                    r["status"] = int(r["fields"][":status"])
                    r["never_indexed"] = never_indexed(ev.headers)
                elif isinstance(ev, h2.events.DataReceived):
                    body += ev.data
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
                    done = True
            sock.sendall(conn.data_to_send())
        r["body"] = body.decode(errors="replace")
        out.append(r)
    print(json.dumps({"settings": settings, "responses": out}), flush=True)


if sys.argv[1] == "backend":
    backend()
else:
    client(sys.argv[2], sys.argv[3], int(sys.argv[4]))
