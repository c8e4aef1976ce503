#!/usr/bin/python3
"""HTTP/2 (h2c) test client on python3-h2 for HPACK representations: python3-h2
reports fields that arrived as literals never indexed (RFC 7541 6.2.3) as
NeverIndexedHeaderTuple.

  h2_hpack_client.py ADDR AUTHORITY N
      N GET /hpack (h2_backend.py) one after the other on one connection,
      each with x-secret-token and x-forwarded-for (sent never indexed),
      x-request-id (new per request) and x-plain (the same every time), both
      with indexing;
      prints JSON {"settings": {the peer's SETTINGS: id: value}, "responses":
      [per request: {"status", "sent_id", "never_indexed": [response field
      names that arrived never indexed], "fields": {response fields},
      "body"}]}.
"""
import json
import sys
import uuid

from h2_exchange import connect, read_response
from hpack import NeverIndexedHeaderTuple

addr, authority, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
sock, conn = connect(addr)
out = []
for _ in range(n):
    rid = str(uuid.uuid4())
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, [
        (":method", "GET"), (":scheme", "http"), (":authority", authority), (":path", "/hpack"),
        NeverIndexedHeaderTuple("x-secret-token", "t0ken"), ("x-request-id", rid), ("x-plain", "same"),
        NeverIndexedHeaderTuple("x-forwarded-for", "203.0.113.7"),
    ], end_stream=True)
    sock.sendall(conn.data_to_send())
    headers, body = read_response(sock, conn)
    fields = dict(headers)
    r = {"status": int(fields.get(":status", 0)), "sent_id": rid, "fields": fields,
         "never_indexed": sorted(h[0] for h in headers if isinstance(h, NeverIndexedHeaderTuple)),
         "body": body.decode(errors="replace")}
    out.append(r)
settings = {str(int(k)): v for k, v in conn.remote_settings.items()}
print(json.dumps({"settings": settings, "responses": out}), flush=True)
