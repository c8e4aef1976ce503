"""What the python3-h2 test clients share: an h2c (prior knowledge)
connection, and reading one stream's answer off it."""
import socket

import h2.config
import h2.connection
import h2.events


def connect(addr):
    """A client connection to ADDR (host:port) with its preface sent."""
    host, port = addr.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=10)
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    return sock, conn


def read_response(sock, conn):
    """Reads until a stream ends or is reset, or the peer closes; returns
    (the response's header fields as python3-h2 gives them, [] if none came;
    the body, bytes). Data is acknowledged as it arrives."""
    headers, body = [], b""
    done = False
    while not done:
        data = sock.recv(65536)
        if not data:
            break
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                headers = ev.headers
            elif isinstance(ev, h2.events.DataReceived):
                body += ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
                done = True
        sock.sendall(conn.data_to_send())
    return headers, body
