#!/usr/bin/python3
"""gRPC server for the proxy's health check tests (generic handlers on raw
bytes, no codegen). Prints its port, serves until killed.

  grpc_health_server.py NAME STATUS

grpc.health.v1.Health/Check answers HealthCheckResponse{status: STATUS}
(SERVING or NOT_SERVING) for the service "" and "test.Echo", NOT_FOUND for
any other; test.Echo/Unary answers NAME, so a client sees which server
served it.
"""
import sys
from concurrent import futures

import grpc

NAME, STATUS = sys.argv[1], sys.argv[2]
CODES = {"SERVING": 1, "NOT_SERVING": 2}


def check(req, ctx):
    # HealthCheckRequest: field 1 (service), length-delimited, or empty.
    service = req[2:].decode() if len(req) >= 2 and req[0] == 0x0A else ""
    if service not in ("", "test.Echo"):
        ctx.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
    return bytes([0x08, CODES[STATUS]])


def unary(req, ctx):
    return NAME.encode()


server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
server.add_generic_rpc_handlers((
    grpc.method_handlers_generic_handler("grpc.health.v1.Health",
                                         {"Check": grpc.unary_unary_rpc_method_handler(check)}),
    grpc.method_handlers_generic_handler("test.Echo", {"Unary": grpc.unary_unary_rpc_method_handler(unary)}),
))
port = server.add_insecure_port("127.0.0.1:0")
server.start()
print(port, flush=True)
server.wait_for_termination()
