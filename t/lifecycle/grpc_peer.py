#!/usr/bin/python3
"""gRPC peers for the lifecycle tests (grpcio, generic handlers, no codegen).

  grpc_peer.py server
      Prints its port, serves until killed. Service test.Life:
        Gen(b)   -> the request's x-gen metadata (the proxy route adds it)
        Bidi(..) -> each request m echoed as b"<x-gen>:" + m
  grpc_peer.py client TARGET AUTHORITY
      Opens one channel; on it a long Bidi stream (a message every 100 ms)
      and Gen calls every 50 ms. Prints "open" once the stream answered,
      and "gen G" each time the unary calls move to another generation G.
      The stream is half-closed on the first line read from stdin, the
      client stops on the second; then it prints one JSON object.
"""
import json
import queue
import sys
import threading
import time
from concurrent import futures

import grpc


def gen_of(ctx):
    return dict(ctx.invocation_metadata()).get("x-gen", "-").encode()


def serve():
    def gen(req, ctx):
        return gen_of(ctx)

    def bidi(it, ctx):
        tag = gen_of(ctx)
        for m in it:
            yield tag + b":" + m

    handlers = {"Gen": grpc.unary_unary_rpc_method_handler(gen),
                "Bidi": grpc.stream_stream_rpc_method_handler(bidi)}
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Life", handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    server.wait_for_termination()


def client(target, authority):
    ch = grpc.insecure_channel(target, options=[("grpc.default_authority", authority),
                                                ("grpc.enable_retries", 0)])
    out = {"sent": 0, "echoes": [], "unary_ok": 0, "unary_failed": [], "unary_gens": []}
    reqs = queue.Queue()
    stop_stream = threading.Event()
    stop_all = threading.Event()

    def requests():
        while True:
            m = reqs.get()
            if m is None:
                return
            yield m

    stream = ch.stream_stream("/test.Life/Bidi")(requests(), timeout=60)

    def stream_loop():
        try:
            i = 0
            while not stop_stream.is_set():
                reqs.put(b"m%d" % i)
                out["sent"] += 1
                out["echoes"].append(next(stream).decode())
                if i == 0:
                    print("open", flush=True)
                i += 1
                time.sleep(0.1)
            reqs.put(None)
            for m in stream:  # nothing more is expected
                out["echoes"].append(m.decode())
            out["stream_code"] = stream.code().value[0]
        except grpc.RpcError as e:
            out["stream_code"] = e.code().value[0]
            out["stream_details"] = e.details()
        except StopIteration:
            out["stream_code"] = stream.code().value[0]
            out["stream_details"] = "ended early: " + str(stream.details())

    def unary_loop():
        call = ch.unary_unary("/test.Life/Gen")
        while not stop_all.is_set():
            try:
                g = call(b"", timeout=10).decode()
                out["unary_ok"] += 1
                if not out["unary_gens"] or out["unary_gens"][-1] != g:
                    if out["unary_gens"]:  # a move: tells the test
                        print("gen " + g, flush=True)
                    out["unary_gens"].append(g)
            except grpc.RpcError as e:
                out["unary_failed"].append("%s: %s" % (e.code().name, e.details()))
            time.sleep(0.05)

    ts = threading.Thread(target=stream_loop)
    tu = threading.Thread(target=unary_loop)
    ts.start()
    tu.start()
    sys.stdin.readline()
    stop_stream.set()
    ts.join()
    sys.stdin.readline()
    stop_all.set()
    tu.join()
    # A fresh channel: a new connection, served by whoever serves now.
    fresh = grpc.insecure_channel(target, options=[("grpc.default_authority", authority)])
    try:
        out["fresh_gen"] = fresh.unary_unary("/test.Life/Gen")(b"", timeout=10).decode()
    except grpc.RpcError as e:
        out["fresh_gen"] = "error: %s" % e.code().name
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "server":
        serve()
    else:
        client(sys.argv[2], sys.argv[3])
