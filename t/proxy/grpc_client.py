#!/usr/bin/python3
"""gRPC test client: runs one scenario against target (ip:port) with
:authority set to authority, prints one JSON object with what happened.

  grpc_client.py TARGET AUTHORITY SCENARIO [ARG]
"""
import hashlib
import json
import sys

import grpc

target, authority, scenario = sys.argv[1:4]
arg = sys.argv[4] if len(sys.argv) > 4 else ""
ch = grpc.insecure_channel(target, options=[("grpc.default_authority", authority),
                                            ("grpc.max_receive_message_length", 16 << 20),
                                            ("grpc.enable_retries", 0)])
out = {}
try:
    if scenario == "unary":
        call = ch.unary_unary("/test.Echo/Unary")
        resp, c = call.with_call(arg.encode(), timeout=10)
        out = {"resp": resp.decode(), "trailers": dict(c.trailing_metadata())}
    elif scenario == "big":
        data = bytes(range(256)) * (int(arg) // 256)
        resp = ch.unary_unary("/test.Echo/Unary")(data, timeout=20)
        out = {"len": len(resp), "same": resp == data}
    elif scenario == "server_stream":
        out = {"msgs": [m.decode() for m in ch.unary_stream("/test.Echo/ServerStream")(arg.encode(), timeout=10)]}
    elif scenario == "client_stream":
        reqs = iter([b"a", b"b", b"c", b"d"])
        out = {"resp": ch.stream_unary("/test.Echo/ClientStream")(reqs, timeout=10).decode()}
    elif scenario == "bidi":
        reqs = iter([b"1", b"2", b"3"])
        out = {"msgs": [m.decode() for m in ch.stream_stream("/test.Echo/Bidi")(reqs, timeout=10)]}
    elif scenario in ("flaky", "hits"):
        resp = ch.unary_unary("/test.Echo/" + scenario.capitalize())(arg.encode(), timeout=10)
        out = {"resp": resp.decode()}
    elif scenario == "stream_fail":
        out["msgs"] = []
        for m in ch.unary_stream("/test.Echo/StreamFail")(arg.encode(), timeout=10):
            out["msgs"].append(m.decode())
    elif scenario == "fail":
        ch.unary_unary("/test.Echo/Fail")(arg.encode(), timeout=10)
    elif scenario == "sleep":
        ch.unary_unary("/test.Echo/Sleep")(arg.encode(), timeout=30)
    elif scenario == "many":
        call = ch.unary_unary("/test.Echo/Unary")
        futs = [call.future(b"n%d" % i, timeout=20) for i in range(int(arg))]
        res = [f.result().decode() for f in futs]
        out = {"ok": sum(1 for i, r in enumerate(res) if r == "n%d" % i)}
    out.setdefault("code", 0)
except grpc.RpcError as e:
    out.update({"code": e.code().value[0], "details": e.details()})
print(json.dumps(out), flush=True)
