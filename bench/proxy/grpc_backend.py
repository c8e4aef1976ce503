#!/usr/bin/python3
"""gRPC side of the proxy benchmark (Debian's python3-grpcio; run by /usr/bin/python3).

  grpc_backend.py serve PORTFILE   serve /bench.Echo/Unary (any request bytes -> REPLY) and
                                   /bench.Echo/Count (-> number of Unary calls so far) on
                                   127.0.0.1:0; write the bound port to PORTFILE once serving
  grpc_backend.py call ADDR        one real unary call to ADDR (a proxy or the backend); exit 0
                                   and print the reply only if the status is OK and the reply
                                   is REPLY
  grpc_backend.py count ADDR       print the backend's Unary call count

Generic handlers with no (de)serializers: messages are raw bytes, so the load generator can
send a pre-encoded request body (see REQUEST and encode_request_body)."""
import os
import signal
import struct
import sys
import threading
from concurrent import futures

SERVICE = "bench.Echo"
REPLY = b"hello world\n"
REQUEST = b"ping"


def encode_request_body():
    """A gRPC length-prefixed message (uncompressed flag, 4-byte big-endian length, bytes),
    exactly what a client sends as the DATA of a unary call."""
    return struct.pack(">BI", 0, len(REQUEST)) + REQUEST


def serve(portfile):
    import grpc
    lock = threading.Lock()
    calls = [0]

    def unary(request, context):
        with lock:
            calls[0] += 1
        return REPLY

    def count(request, context):
        with lock:
            return str(calls[0]).encode()

    handler = grpc.method_handlers_generic_handler(SERVICE, {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "Count": grpc.unary_unary_rpc_method_handler(count),
    })
    # Python holds the GIL: more threads than a few only add switching.
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4),
                         options=[("grpc.so_reuseport", 0),
                                  ("grpc.max_concurrent_streams", 1000)])
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    with open(portfile + ".tmp", "w") as f:
        f.write(str(port))
    os.rename(portfile + ".tmp", portfile)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop(0)


def call(addr, method):
    import grpc
    with grpc.insecure_channel(addr) as ch:
        return ch.unary_unary(f"/{SERVICE}/{method}")(REQUEST, timeout=5)


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("serve", "call", "count"):
        sys.exit(__doc__)
    mode, arg = sys.argv[1], sys.argv[2]
    if mode == "serve":
        serve(arg)
        return
    import grpc  # only here and in serve: bench/proxy/run imports encode_request_body from any python3
    try:
        reply = call(arg, "Unary" if mode == "call" else "Count")
    except grpc.RpcError as e:
        sys.exit(f"grpc call to {arg}: {e.code().name}: {e.details()}")
    if mode == "call" and reply != REPLY:
        sys.exit(f"grpc call to {arg}: unexpected reply {reply!r}")
    print(reply.decode().strip())


if __name__ == "__main__":
    main()
