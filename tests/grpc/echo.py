"""A gRPC echo service and client (Python grpcio) for tests/grpc.rs.

No code generation: the service is registered with generic handlers and raw bytes
(no serializers), so requests and replies are plain bytes; replies are JSON.

    echo.py server CALLS_FILE [CERT KEY]
        Serves authgate.test.Echo (and the same methods as authgate.test.Admin and
        authgate.test.Limited) on an ephemeral loopback port (TLS with CERT and KEY
        when given, h2c otherwise), prints the port on the first line of stdout, and runs
        until stdin closes. Every call it gets is appended to CALLS_FILE as one JSON line.
        Methods:
          Say    (unary)            -> {"echo", "metadata"}, trailing metadata
                                       x-echo-trailer: kept
          Count  (server streaming) -> the number of replies the request names (an ASCII
                                       integer), each {"n", "metadata"}
          Fail   (unary)            -> NOT_FOUND "no such record"
        "metadata" holds every x-user-* value the service saw, by name, in order.

    echo.py client TARGET METHOD REQUEST [--token T] [--spoof-user-id V]
                   [--ca CA_PEM --authority NAME]
        Calls /authgate.test.Echo/METHOD (or METHOD itself when it is a path, such as
        /other.Service/Say) through TARGET and prints one JSON object:
        {"code", "details", "replies", "trailing_metadata"}. A method named Count is
        called server-streaming, any other unary.
"""

import json
import sys
import threading
from concurrent import futures

import grpc

SERVICE = "authgate.test.Echo"
# The same methods under further names, for routes with other settings in front of them.
SERVICES = (SERVICE, "authgate.test.Admin", "authgate.test.Limited")


def identity_metadata(context):
    seen = {}
    for key, value in context.invocation_metadata():
        if key.startswith("x-user-"):
            seen.setdefault(key, []).append(value)
    return seen


def serve(calls_file, cert=None, key=None):
    lock = threading.Lock()

    def record(method, context):
        with lock, open(calls_file, "a", encoding="utf-8") as f:
            f.write(json.dumps({"method": method, "metadata": identity_metadata(context)}) + "\n")

    def say(request, context):
        record("Say", context)
        context.set_trailing_metadata((("x-echo-trailer", "kept"),))
        reply = {"echo": request.decode(), "metadata": identity_metadata(context)}
        return json.dumps(reply).encode()

    def count(request, context):
        record("Count", context)
        for n in range(int(request.decode())):
            yield json.dumps({"n": n, "metadata": identity_metadata(context)}).encode()

    def fail(request, context):
        record("Fail", context)
        context.abort(grpc.StatusCode.NOT_FOUND, "no such record")

    methods = {
        "Say": grpc.unary_unary_rpc_method_handler(say),
        "Count": grpc.unary_stream_rpc_method_handler(count),
        "Fail": grpc.unary_unary_rpc_method_handler(fail),
    }
    handlers = [grpc.method_handlers_generic_handler(name, methods) for name in SERVICES]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers(handlers)
    if cert:
        with open(cert, "rb") as c, open(key, "rb") as k:
            creds = grpc.ssl_server_credentials(((k.read(), c.read()),))
        port = server.add_secure_port("127.0.0.1:0", creds)
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    sys.stdin.read()
    server.stop(0)


def call(target, method, request, token=None, spoof=None, ca=None, authority=None):
    if ca:
        with open(ca, "rb") as f:
            creds = grpc.ssl_channel_credentials(root_certificates=f.read())
        options = [("grpc.ssl_target_name_override", authority)] if authority else []
        channel = grpc.secure_channel(target, creds, options=options)
    else:
        channel = grpc.insecure_channel(target)
    metadata = []
    if token:
        metadata.append(("authorization", "Bearer " + token))
    if spoof:
        metadata.append(("x-user-id", spoof))
    path = method if method.startswith("/") else "/%s/%s" % (SERVICE, method)
    out = {"replies": [], "trailing_metadata": {}}
    try:
        if path.endswith("/Count"):
            stream = channel.unary_stream(path)(request.encode(), metadata=metadata, timeout=20)
            for reply in stream:
                out["replies"].append(json.loads(reply))
            rpc = stream
        else:
            reply, rpc = channel.unary_unary(path).with_call(
                request.encode(), metadata=metadata, timeout=20
            )
            out["replies"].append(json.loads(reply))
    except grpc.RpcError as e:
        rpc = e
    out["code"] = rpc.code().name
    out["details"] = rpc.details()
    out["trailing_metadata"] = {k: v for k, v in (rpc.trailing_metadata() or ())}
    channel.close()
    print(json.dumps(out))


def main(argv):
    if argv[0] == "server":
        serve(*argv[1:])
        return
    target, method, request = argv[1:4]
    opts = {}
    rest = argv[4:]
    names = {"--token": "token", "--spoof-user-id": "spoof", "--ca": "ca", "--authority": "authority"}
    while rest:
        opts[names[rest[0]]] = rest[1]
        rest = rest[2:]
    call(target, method, request, **opts)


if __name__ == "__main__":
    main(sys.argv[1:])
