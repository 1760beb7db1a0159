#!/usr/bin/env python3
"""Opens COUNT keep-alive connections to URL_HOST:PORT, sends one request on each
(GET PATH, with `Authorization: Bearer TOKEN` when TOKEN is given), reads its answer,
and keeps every connection open and idle. Prints `open N STATUS-COUNTS` once all are
open, then waits for its stdin to close. Used by bench/idle_connections."""

import resource
import socket
import sys


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


def main():
    host, port, count, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    token = sys.argv[5] if len(sys.argv) > 5 else ""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}\r\n".encode()
    held, statuses = [], {}
    for _ in range(count):
        sock = socket.create_connection((host, port), timeout=30)
        sock.sendall(request)
        status = read_response(sock)
        statuses[status] = statuses.get(status, 0) + 1
        held.append(sock)
    summary = " ".join(f"{k}={v}" for k, v in sorted(statuses.items()))
    print(f"open {len(held)} {summary}", flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    main()
