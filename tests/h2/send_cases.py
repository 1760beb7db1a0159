"""Sends HTTP/2 requests exactly as written, malformed ones included, and reports what the
server did with each: its response, a reset of the stream, or the end of the connection.

Driven by tests/attack_h2.rs. Usage: send_cases.py CASES.json. The file holds
{"host": ..., "port": ..., "tls": null or {"ca": PEM path, "server_name": ...},
 "cases": [case, ...]}; each case, on a connection of its own:
  name       a label echoed back
  headers    [[name, value], ...] sent in this order, byte for byte (latin-1: "\\u0000" is
             a NUL byte), nothing added, checked or lower-cased
  frames     the DATA frames: [{"data": text, "end": bool, "wait": bool}, ...]; "wait"
             first prints {"waiting": name} and reads a line from stdin, so the test can
             look at the upstream before the next frame goes out
  end_stream END_STREAM on the HEADERS frame (no frames then)
One JSON line per case on stdout: {"name", "status", "headers", "body", "reset",
"goaway", "closed", "timeout"}; "reset"/"goaway" are HTTP/2 error code names.
"""

import json
import socket
import ssl
import sys

import h2.config
import h2.connection
import h2.events
import h2.exceptions

TIMEOUT = 10.0


def encode(text):
    return text.encode("latin-1")


def connect(spec):
    sock = socket.create_connection((spec["host"], spec["port"]), timeout=TIMEOUT)
    tls = spec.get("tls")
    if tls:
        context = ssl.create_default_context(cafile=tls["ca"])
        context.set_alpn_protocols(["h2"])
        sock = context.wrap_socket(sock, server_hostname=tls["server_name"])
        assert sock.selected_alpn_protocol() == "h2", sock.selected_alpn_protocol()
    return sock


def run_case(spec, case):
    sock = connect(spec)
    config = h2.config.H2Configuration(
        client_side=True,
        validate_outbound_headers=False,
        normalize_outbound_headers=False,
        validate_inbound_headers=False,
    )
    conn = h2.connection.H2Connection(config=config)
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    stream_id = conn.get_next_available_stream_id()
    headers = [(encode(k), encode(v)) for k, v in case["headers"]]
    frames = case.get("frames", [])
    conn.send_headers(stream_id, headers, end_stream=case.get("end_stream", not frames))
    sock.sendall(conn.data_to_send())
    outcome = {
        "name": case["name"],
        "status": None,
        "headers": {},
        "body": "",
        "reset": None,
        "goaway": None,
        "closed": False,
        "timeout": False,
    }
    body = b""
    finished = False

    def pump():
        """Reads once; False when the exchange is over."""
        nonlocal body, finished
        try:
            data = sock.recv(65536)
        except (socket.timeout, TimeoutError):
            outcome["timeout"] = True
            return False
        except (ConnectionResetError, ssl.SSLError, OSError):
            outcome["closed"] = True
            return False
        if not data:
            outcome["closed"] = True
            return False
        try:
            events = conn.receive_data(data)
        except h2.exceptions.ProtocolError as e:
            outcome["closed"] = True
            outcome["protocol_error"] = str(e)
            return False
        for event in events:
            if isinstance(event, h2.events.ResponseReceived) and event.stream_id == stream_id:
                for k, v in event.headers:
                    name = k.decode("latin-1")
                    if name == ":status":
                        outcome["status"] = int(v)
                    else:
                        outcome["headers"][name] = v.decode("latin-1")
            elif isinstance(event, h2.events.DataReceived) and event.stream_id == stream_id:
                body += event.data
                conn.acknowledge_received_data(event.flow_controlled_length, stream_id)
            elif isinstance(event, h2.events.StreamEnded) and event.stream_id == stream_id:
                finished = True
            elif isinstance(event, h2.events.StreamReset) and event.stream_id == stream_id:
                outcome["reset"] = event.error_code.name
                finished = True
            elif isinstance(event, h2.events.ConnectionTerminated):
                outcome["goaway"] = getattr(event.error_code, "name", str(event.error_code))
                finished = True
        pending = conn.data_to_send()
        if pending:
            try:
                sock.sendall(pending)
            except OSError:
                pass
        return not finished

    for frame in frames:
        if frame.get("wait"):
            print(json.dumps({"waiting": case["name"]}), flush=True)
            sys.stdin.readline()
        try:
            conn.send_data(stream_id, encode(frame["data"]), end_stream=frame.get("end", False))
            sock.sendall(conn.data_to_send())
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError, OSError):
            # The server already refused the stream or the connection.
            break
    sock.settimeout(TIMEOUT)
    while pump():
        pass
    outcome["body"] = body.decode("utf-8", "replace")
    try:
        sock.close()
    except OSError:
        pass
    return outcome


def main():
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    for case in spec["cases"]:
        print(json.dumps(run_case(spec, case)), flush=True)


if __name__ == "__main__":
    main()
