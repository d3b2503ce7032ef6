#!/usr/bin/env python3
"""Slowloris-style clients for test_server_input.sh.

Opens N connections to HOST:PORT and keeps each one busy without ever
finishing a request: half of them complete the TLS handshake and then send
one byte of a request header every INTERVAL seconds, the other half never
handshake and trickle one junk byte every INTERVAL seconds. Runs for
DURATION seconds, then closes everything and prints how many connections the
server had closed by then (informational; the test checks that normal
requests were answered meanwhile).

Usage: server_slowloris.py HOST PORT CAFILE N DURATION [INTERVAL]
"""
import socket
import ssl
import sys
import threading
import time


def slow_client(host, port, ctx, tls, duration, interval, closed, ready):
    request = b"GET /api/v1/whoami HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + b"a" * 4096
    try:
        raw = socket.create_connection((host, port), timeout=30)
        s = ctx.wrap_socket(raw, server_hostname="127.0.0.1") if tls else raw
    except OSError:
        closed.append(1)
        ready.release()
        return
    ready.release()
    end = time.monotonic() + duration
    i = 0
    try:
        while time.monotonic() < end:
            s.sendall(request[i % len(request):i % len(request) + 1] if tls else b"\x16")
            i += 1
            time.sleep(interval)
    except OSError:
        closed.append(1)
    finally:
        s.close()


def main():
    host, port, cafile, n, duration = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
    interval = float(sys.argv[6]) if len(sys.argv) > 6 else 2.0
    ctx = ssl.create_default_context(cafile=cafile)
    closed = []
    ready = threading.Semaphore(0)
    threads = [threading.Thread(target=slow_client, args=(host, port, ctx, i % 2 == 0, duration, interval, closed, ready))
               for i in range(n)]
    for t in threads:
        t.start()
    for _ in threads:
        ready.acquire()
    print("slowloris: %d connections open" % (n - len(closed)), flush=True)
    for t in threads:
        t.join()
    print("slowloris: %d of %d connections were closed by the server before the end" % (len(closed), n), flush=True)


if __name__ == "__main__":
    main()
