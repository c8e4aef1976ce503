#!/usr/bin/python3
"""gRPC test server with generic handlers on raw bytes (no codegen).

  grpc_server.py [ADDRESS]   (default 127.0.0.1:0)

Prints its port, serves until killed. Service test.Echo:
  Unary(b)          -> b, with trailing metadata x-trailer: t1
  ServerStream(b"N")-> N messages b"msg-i"
  ClientStream(...) -> the requests joined by b","
  Bidi(...)         -> each request echoed with prefix b"echo:"
  Fail(b"code:msg") -> aborts with that status code and message
  Sleep(b"ms")      -> answers b"slept" after ms milliseconds (b"ms:PATH":
                       creates PATH when the call arrives)
  Flaky(b"key:N:C") -> counts calls for key; the first N abort with status
                       C (default 14, UNAVAILABLE) before any message (a
                       trailers-only response), then b"ok:<attempt>"
  Hits(b"key")      -> how many calls Flaky and StreamFail saw for key
  StreamFail(b"key")-> counts, sends b"first", then aborts UNAVAILABLE
"""
import sys
import time
from concurrent import futures

import grpc

sys.dont_write_bytecode = True  # no __pycache__ in the tree
import hit_counter  # noqa: E402


def unary(req, ctx):
    ctx.set_trailing_metadata((("x-trailer", "t1"),))
    return req


def server_stream(req, ctx):
    for i in range(int(req)):
        yield b"msg-%d" % i


def client_stream(it, ctx):
    return b",".join(it)


def bidi(it, ctx):
    for m in it:
        yield b"echo:" + m


def fail(req, ctx):
    code, msg = req.decode().split(":", 1)
    status = next(s for s in grpc.StatusCode if s.value[0] == int(code))
    ctx.abort(status, msg)


def sleep(req, ctx):
    ms, _, mark = req.decode().partition(":")
    if mark:  # tells the test the call arrived
        open(mark, "w").close()
    time.sleep(int(ms) / 1000.0)
    return b"slept"




def flaky(req, ctx):
    parts = req.decode().split(":")
    n = hit_counter.hit(parts[0])
    code = int(parts[2]) if len(parts) > 2 else 14
    if n <= int(parts[1]):
        status = next(s for s in grpc.StatusCode if s.value[0] == code)
        ctx.abort(status, "flaky attempt %d" % n)
    return b"ok:%d" % n


def hits(req, ctx):
    return b"%d" % hit_counter.hits(req.decode())


def stream_fail(req, ctx):
    hit_counter.hit(req.decode())
    yield b"first"
    ctx.abort(grpc.StatusCode.UNAVAILABLE, "after the first message")


handlers = {
    "Flaky": grpc.unary_unary_rpc_method_handler(flaky),
    "Hits": grpc.unary_unary_rpc_method_handler(hits),
    "StreamFail": grpc.unary_stream_rpc_method_handler(stream_fail),
    "Unary": grpc.unary_unary_rpc_method_handler(unary),
    "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
    "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
    "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
    "Fail": grpc.unary_unary_rpc_method_handler(fail),
    "Sleep": grpc.unary_unary_rpc_method_handler(sleep),
}
server = grpc.server(futures.ThreadPoolExecutor(max_workers=8),
                     options=[("grpc.max_receive_message_length", 16 << 20)])
server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Echo", handlers),))
port = server.add_insecure_port(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:0")
server.start()
print(port, flush=True)
server.wait_for_termination()
