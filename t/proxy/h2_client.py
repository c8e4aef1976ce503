#!/usr/bin/python3
"""HTTP/2 (h2c, prior knowledge) test client on python3-h2 that sends
request trailers, which curl and nghttp cannot.

  h2_client.py ADDR AUTHORITY METHOD PATH BODY [NAME=VALUE ...]

Sends the request with BODY as its data and the NAME=VALUE pairs as
trailers ending the stream; prints JSON {status, body}.
"""
import json
import sys

from h2_exchange import connect, read_response

addr, authority, method, path, body = sys.argv[1:6]
trailers = [tuple(a.split("=", 1)) for a in sys.argv[6:]]
sock, conn = connect(addr)
sid = conn.get_next_available_stream_id()
conn.send_headers(sid, [(":method", method), (":scheme", "http"), (":authority", authority), (":path", path)])
if body:
    conn.send_data(sid, body.encode())
if trailers:
    conn.send_headers(sid, trailers, end_stream=True)
else:
    conn.end_stream(sid)
sock.sendall(conn.data_to_send())
headers, resp = read_response(sock, conn)
out = {"status": int(dict(headers).get(":status", 0)), "body": resp.decode(errors="replace")}
print(json.dumps(out), flush=True)
