#!/usr/bin/env python3
"""Opens COUNT keep-alive connections to HOST:PORT, sends one request on each (GET PATH,
with `Authorization: Bearer TOKEN` when TOKEN is given), reads its answer, and keeps every
connection open and idle. Prints `open N STATUS-COUNTS` once all are open, then waits for
its stdin to close. Used by bench/idle_connections.

MODE (the sixth argument, `plain` by default):
  plain  HTTP/1.1 over TCP
  tls    HTTP/1.1 over TLS (ALPN http/1.1; the certificate is not checked)
  h2c    HTTP/2 over TCP, prior knowledge
  h2     HTTP/2 over TLS (ALPN h2)

HTTP/2 is spoken with a few hand-written frames (no HPACK table, no Huffman): the
preface and an empty SETTINGS, one HEADERS frame that ends the stream, and the answer read
up to its END_STREAM; the server's SETTINGS are acknowledged. The `:status` is
read from the first field of the answer's header block (a static table entry or a literal
value); one sent any other way is counted as `other`.
"""

import resource
import socket
import ssl
import struct
import sys

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, SETTINGS, GOAWAY = 0x0, 0x1, 0x4, 0x7
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1


def read_response(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the answer")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed within the body")
        body += chunk
    return int(head.split(b" ", 2)[1])


def hpack_int(value, prefix_bits, first):
    """An HPACK integer with an N-bit prefix, `first` holding the pattern bits."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append(value % 128 + 128)
        value //= 128
    out.append(value)
    return bytes(out)


def literal(index, value):
    """A literal header field without indexing, name from the static table."""
    raw = value.encode()
    return hpack_int(index, 4, 0x00) + hpack_int(len(raw), 7, 0x00) + raw


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed within a frame")
        data += chunk
    return data


def h2_exchange(sock, host, path, token, scheme):
    block = b"\x82" + (b"\x87" if scheme == "https" else b"\x86")  # :method GET, :scheme
    block += literal(4, path) + literal(1, host)  # :path, :authority
    if token:
        block += literal(23, f"Bearer {token}")  # authorization
    sock.sendall(H2_PREFACE + frame(SETTINGS, 0, 0) + frame(HEADERS, END_STREAM | END_HEADERS, 1, block))
    status = None
    while True:
        head = recv_exact(sock, 9)
        length = int.from_bytes(head[:3], "big")
        kind, flags = head[3], head[4]
        stream = int.from_bytes(head[5:9], "big") & 0x7FFFFFFF
        payload = recv_exact(sock, length)
        if kind == SETTINGS and not flags & ACK:
            sock.sendall(frame(SETTINGS, ACK, 0))
        elif kind == GOAWAY:
            raise ConnectionError("GOAWAY before the answer")
        elif stream == 1 and kind == HEADERS and status is None:
            status = h2_status(payload)
        if stream == 1 and kind in (HEADERS, DATA) and flags & END_STREAM:
            return status


# HPACK's static table entries of `:status` (RFC 7541 appendix A), indexes 8 to 14.
STATIC_STATUS = {8: 200, 9: 204, 10: 206, 11: 304, 12: 400, 13: 404, 14: 500}


def h2_status(block):
    """The `:status` of a header block (its first field): an indexed static entry, or a
    literal with the static name and a plain (not Huffman-coded) value; else `other`."""
    first = block[0]
    if first & 0x80:
        return STATIC_STATUS.get(first & 0x7F, "other")
    index = first & 0x3F if first & 0x40 else first & 0x0F
    if index in STATIC_STATUS and len(block) > 1 and not block[1] & 0x80:
        length = block[1]
        return int(block[2 : 2 + length])
    return "other"


def connect(host, port, mode, context):
    sock = socket.create_connection((host, port), timeout=30)
    if mode in ("tls", "h2"):
        sock = context.wrap_socket(sock, server_hostname="localhost")
    return sock


def main():
    host, port, count, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    token = sys.argv[5] if len(sys.argv) > 5 else ""
    mode = sys.argv[6] if len(sys.argv) > 6 else "plain"
    if mode not in ("plain", "tls", "h2c", "h2"):
        sys.exit(f"unknown mode {mode!r}: plain, tls, h2c or h2")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"] if mode == "h2" else ["http/1.1"])
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}\r\n".encode()
    held, statuses = [], {}
    for _ in range(count):
        sock = connect(host, port, mode, context)
        if mode in ("h2c", "h2"):
            status = h2_exchange(sock, host, path, token, "https" if mode == "h2" else "http")
        else:
            sock.sendall(request)
            status = read_response(sock)
        statuses[status] = statuses.get(status, 0) + 1
        held.append(sock)
    summary = " ".join(f"{k}={v}" for k, v in sorted(statuses.items(), key=str))
    print(f"open {len(held)} {summary}", flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main()
