#!/usr/bin/python3
"""Load for h2_scenario.sh's ids scenario (python3-h2): N GET / over one h2c
connection to 127.0.0.1:PORT, 20 in flight, each request with a new
x-request-id (what services behind a mesh send), which h2load cannot vary;
or, with grpc-timeout as FIELD, a new grpc-timeout (what gRPC clients send
for a call with a deadline: the time left, in microseconds).

  h2_ids_client.py PORT N [FIELD]    prints "requests: N done, M succeeded"
"""
import socket
import sys
import uuid

import h2.config
import h2.connection
import h2.events

port, n = int(sys.argv[1]), int(sys.argv[2])
field = sys.argv[3] if len(sys.argv) > 3 else "x-request-id"
sock = socket.create_connection(("127.0.0.1", port), timeout=30)
conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
conn.initiate_connection()
sent = done = ok = 0


def value():
    if field == "grpc-timeout":
        return "%du" % (9999000 - sent * 37 % 999000)
    return str(uuid.uuid4())


def send():
    global sent
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, [(":method", "GET"), (":scheme", "http"), (":authority", "127.0.0.1"), (":path", "/"),
                            ("user-agent", "h2_ids_client"), (field, value())], end_stream=True)
    sent += 1


while sent < min(20, n):
    send()
sock.sendall(conn.data_to_send())
while done < n:
    data = sock.recv(65536)
    if not data:
        break
    for ev in conn.receive_data(data):
        if isinstance(ev, h2.events.ResponseReceived) and dict(ev.headers).get(b":status") == b"200":
            ok += 1
        elif isinstance(ev, h2.events.DataReceived):
            conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
            done += 1
            if sent < n:
                send()
    sock.sendall(conn.data_to_send())
print("requests: %d done, %d succeeded" % (done, ok))
