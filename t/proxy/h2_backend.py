#!/usr/bin/python3
"""HTTP/2 (h2c, prior knowledge) test backend on python3-h2.

Prints its port, serves until killed. Paths:
  /flaky?key=K&fail=N&code=C  counts requests for key K; the first N are
                              answered C (default 503), then 200
                              "ok attempt=A len=L" (L: request body length)
  /hits?key=K                 how many requests /flaky saw for key K
  /echo                       JSON: headers, trailers, body_len
  /hpack                      JSON: never_indexed (request field names that
                              arrived as HPACK literals never indexed), fields,
                              settings (the client's SETTINGS: id: value);
                              response fields x-resp-secret (sent never
                              indexed), x-request-id (the request's) and
                              x-resp-plain, both with indexing
"""
import json
import socket
import sys
import threading
import urllib.parse

import h2.config
import h2.connection
import h2.events
from hpack import NeverIndexedHeaderTuple

sys.dont_write_bytecode = True  # no __pycache__ in the tree
from hit_counter import hit, hits  # noqa: E402



def answer(path, body, headers, trailers, conn):
    """-> (status, body) or (status, body, extra response fields)"""
    url = urllib.parse.urlsplit(path)
    q = dict(urllib.parse.parse_qsl(url.query))
    if url.path == "/flaky":
        n = hit(q.get("key", ""))
        if n <= int(q.get("fail", "1")):
            return int(q.get("code", "503")), b"fail %d\n" % n
        return 200, b"ok attempt=%d len=%d\n" % (n, len(body))
    if url.path == "/hits":
        return 200, b"%d" % hits(q.get("key", ""))
    if url.path == "/echo":
        return 200, json.dumps({"headers": headers, "trailers": trailers, "body_len": len(body)}).encode()
    if url.path == "/hpack":
        fields = dict(headers)
        return 200, json.dumps({
            "never_indexed": sorted(h[0] for h in headers if isinstance(h, NeverIndexedHeaderTuple)),
            "fields": fields, "settings": {str(int(k)): v for k, v in conn.remote_settings.items()},
        }).encode(), [NeverIndexedHeaderTuple("x-resp-secret", "s3cret"),
                      ("x-request-id", fields.get("x-request-id", "none")), ("x-resp-plain", "same")]
    return 404, b"no such path\n"


def serve(sock):
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    streams = {}
    while True:
        data = sock.recv(65536)
        if not data:
            break
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.RequestReceived):
                # The fields as decoded: NeverIndexedHeaderTuple tells the representation.
                streams[ev.stream_id] = {"headers": list(ev.headers), "body": b"", "trailers": []}
            elif isinstance(ev, h2.events.DataReceived):
                streams[ev.stream_id]["body"] += ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.TrailersReceived):
                streams[ev.stream_id]["trailers"] = list(ev.headers)
            elif isinstance(ev, h2.events.StreamEnded):
                s = streams.pop(ev.stream_id)
                path = dict(s["headers"]).get(":path", "/")
                status, body, *extra = answer(path, s["body"], s["headers"], s["trailers"], conn)
                conn.send_headers(ev.stream_id, [(":status", str(status)), ("content-length", str(len(body)))] +
                                  (extra[0] if extra else []))
                conn.send_data(ev.stream_id, body, end_stream=True)
            elif isinstance(ev, h2.events.StreamReset):
                streams.pop(ev.stream_id, None)
        sock.sendall(conn.data_to_send())
    sock.close()


srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 0))
srv.listen(64)
print(srv.getsockname()[1], flush=True)
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
