#!/usr/bin/env python3
"""fault_proxy.py: an HTTP/1.1 reverse proxy that injects faults, for S3 tests.

Sits on 127.0.0.1 in front of an S3 server (s3rver) and forwards requests to
it, except that a fixed fraction of them (--rate) gets one of these faults
instead of the server's answer:

  500       "500 InternalError" (S3 XML error body); not forwarded
  503       "503 SlowDown" (S3 XML error body); not forwarded
  429       "429 SlowDown" (S3 XML error body); not forwarded
  reset     request read, then the connection is reset (RST); not forwarded
  truncate  forwarded; the answer is cut short and the connection closed:
            half the body with the full Content-Length, or, for answers
            without a body (HEAD, PUT, DELETE), half of the status line
  slow      forwarded; the header block comes at once, then the body
            trickles at ~128 B/s (below libcurl's 1 KiB/s low-speed limit)
            and its last byte comes after --slow-seconds; an answer without
            a body comes after --slow-seconds
  hang      request read, then nothing is sent until the client gives up
            (or --hang-seconds pass); not forwarded

Not in the default --kinds (it finds a gap in cairn, see docs/storage.md):

  cut-headers  forwarded; the status line and the first header line are
            sent, then the connection is closed (libcurl takes that as a
            complete answer without Content-Length and with an empty body)

"Forwarded" faults reach the server, so the request took effect there even
though the client saw an error (a PUT that stored the object, say).

Which requests get faults is decided by a random generator seeded with
--seed, drawn once per eligible request in the order requests arrive, so a
run is reproducible as far as the client's concurrency keeps the order.
--match restricts faults to some requests ("PUT", "GET:/bucket/data/",
"PUT,DELETE"): METHOD[:PATH-PREFIX], comma separated; others pass through and
draw nothing. --after N lets the first N eligible requests through.

--latency-ms N delays every forwarded request by N ms, like a store that is
far away (connection set-up is not delayed); with --rate 0 the proxy only
adds that latency.

Client keep-alive connections are kept (libcurl reuses them) except after
reset, truncate, slow and hang, which close the connection. Each upstream
request uses its own connection to the server. "Expect: 100-continue" is
answered by the proxy itself.

--if-none-match makes the proxy honour "If-None-Match: *" on PUT the way AWS
S3 does (s3rver ignores it): it asks the server with a HEAD first and answers
"412 PreconditionFailed" itself when the object exists. A PUT retried after
a forwarded fault then meets its own earlier upload, as it would on AWS.

Every injected fault is appended to --log as one tab-separated line:
  <request number> <METHOD> <path without query> <kind>
(--access-log, when given, gets one such line per request, kind "ok" for
requests passed through unharmed.)

The listening port is printed on stdout ("PORT 12345") and, with --port-file,
written to that file (atomically) once the proxy accepts connections.

Usage:
  fault_proxy.py --upstream 127.0.0.1:9000 --seed 1 --rate 0.2 \\
      --kinds 500,503,429,reset,truncate,slow,hang --log faults.log \\
      --port-file port [--port 0] [--slow-seconds 30] [--hang-seconds 600]

Python 3 standard library only. Stop it with SIGTERM or SIGINT.
"""

import argparse
import os
import random
import signal
import socket
import socketserver
import sys
import threading
import time
from xml.sax.saxutils import escape

KINDS = ("500", "503", "429", "reset", "truncate", "slow", "hang")
EXTRA_KINDS = ("cut-headers",)
# Kinds that send the request to the server before failing.
FORWARDED = ("truncate", "slow", "cut-headers")

ERRORS = {
    "500": (500, "Internal Server Error", "InternalError",
            "We encountered an internal error. Please try again."),
    "503": (503, "Service Unavailable", "SlowDown", "Please reduce your request rate."),
    "429": (429, "Too Many Requests", "SlowDown", "Please reduce your request rate."),
}

MAX_HEADER_BYTES = 64 * 1024


class BadRequest(Exception):
    pass


class Message:
    """One HTTP message: start line, headers (in order) and body bytes."""

    def __init__(self, start, headers, body):
        self.start = start
        self.headers = headers  # list of (name, value)
        self.body = body

    def header(self, name):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def without(self, *names):
        drop = {n.lower() for n in names}
        return [(k, v) for k, v in self.headers if k.lower() not in drop]


def read_head(rfile):
    """Start line and headers, or None on a clean EOF before any byte."""
    line = rfile.readline(MAX_HEADER_BYTES)
    if not line:
        return None
    while line in (b"\r\n", b"\n"):  # tolerate stray CRLF between messages
        line = rfile.readline(MAX_HEADER_BYTES)
        if not line:
            return None
    start = line.rstrip(b"\r\n").decode("latin-1")
    headers = []
    total = len(line)
    while True:
        line = rfile.readline(MAX_HEADER_BYTES)
        if not line:
            raise BadRequest("EOF inside the header block")
        total += len(line)
        if total > MAX_HEADER_BYTES:
            raise BadRequest("header block too large")
        if line in (b"\r\n", b"\n"):
            break
        text = line.rstrip(b"\r\n").decode("latin-1")
        name, sep, value = text.partition(":")
        if not sep:
            raise BadRequest("malformed header line %r" % text)
        headers.append((name.strip(), value.strip()))
    return start, headers


def read_exact(rfile, n):
    data = rfile.read(n)
    if data is None or len(data) != n:
        raise BadRequest("EOF inside a body (%d of %d bytes)" % (len(data or b""), n))
    return data


def read_chunked(rfile):
    parts = []
    while True:
        line = rfile.readline(MAX_HEADER_BYTES)
        if not line:
            raise BadRequest("EOF inside a chunked body")
        size = int(line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while True:  # trailers
                t = rfile.readline(MAX_HEADER_BYTES)
                if not t or t in (b"\r\n", b"\n"):
                    break
            return b"".join(parts)
        parts.append(read_exact(rfile, size))
        rfile.readline(MAX_HEADER_BYTES)  # CRLF after the chunk


def read_body(rfile, headers_msg, until_eof):
    te = (headers_msg.header("Transfer-Encoding") or "").lower()
    if "chunked" in te:
        return read_chunked(rfile)
    cl = headers_msg.header("Content-Length")
    if cl is not None:
        return read_exact(rfile, int(cl))
    if until_eof:
        return rfile.read()
    return b""


def serialize_head(start, headers):
    lines = [start] + ["%s: %s" % (k, v) for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def s3_error(kind, path):
    status, reason, code, message = ERRORS[kind]
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code><Message>%s</Message>'
        "<Resource>%s</Resource><RequestId>fault-proxy</RequestId></Error>"
        % (code, escape(message), escape(path))
    ).encode()
    headers = [("Content-Type", "application/xml"), ("Content-Length", str(len(body))),
               ("Connection", "keep-alive")]
    if status in (503, 429):
        headers.append(("Retry-After", "1"))
    return serialize_head("HTTP/1.1 %d %s" % (status, reason), headers) + body


class Injector:
    """The seeded fault schedule and the logs; shared by all connections."""

    def __init__(self, args):
        self.rng = random.Random(args.seed)
        self.rate = args.rate
        self.kinds = args.kinds
        self.match = args.match
        self.after = args.after
        self.lock = threading.Lock()
        self.count = 0      # all requests
        self.eligible = 0   # requests matching --match
        self.log = open(args.log, "a", buffering=1) if args.log else None
        self.access = open(args.access_log, "a", buffering=1) if args.access_log else None

    def matches(self, method, path):
        if not self.match:
            return True
        for m in self.match:
            meth, _, prefix = m.partition(":")
            if (meth in ("", "*") or meth == method) and path.startswith(prefix):
                return True
        return False

    def decide(self, method, path):
        """(request number, fault kind or None)."""
        with self.lock:
            self.count += 1
            n = self.count
            if not self.matches(method, path):
                return n, None
            self.eligible += 1
            # Always draw both numbers so the schedule does not depend on outcomes.
            roll = self.rng.random()
            kind = self.kinds[self.rng.randrange(len(self.kinds))]
            if self.eligible <= self.after or roll >= self.rate:
                return n, None
            return n, kind

    def record(self, n, method, path, kind):
        line = "%d\t%s\t%s\t%s\n" % (n, method, path, kind)
        with self.lock:
            if kind != "ok" and self.log:
                self.log.write(line)
            if self.access:
                self.access.write(line)


class Handler(socketserver.BaseRequestHandler):
    def setup(self):
        self.sock = self.request
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rfile = self.sock.makefile("rb")

    def finish(self):
        try:
            self.rfile.close()
        except OSError:
            pass

    def handle(self):
        try:
            while self.one_request():
                pass
        except (OSError, BadRequest, ValueError):
            pass  # the client went away or spoke nonsense: drop the connection

    # Returns whether the connection stays open for another request.
    def one_request(self):
        head = read_head(self.rfile)
        if head is None:
            return False
        start, headers = head
        parts = start.split(" ")
        if len(parts) != 3:
            raise BadRequest("bad request line %r" % start)
        method, target, version = parts
        req = Message(start, headers, b"")
        if (req.header("Expect") or "").lower() == "100-continue":
            self.sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        req.body = read_body(self.rfile, req, until_eof=False)
        path = target.split("?", 1)[0]
        client_close = (req.header("Connection") or "").lower() == "close" or version == "HTTP/1.0"

        n, kind = self.server.injector.decide(method, path)
        self.server.injector.record(n, method, path, kind or "ok")

        if kind in ERRORS:
            self.sock.sendall(s3_error(kind, path))
            return not client_close
        if kind == "reset":
            self.reset()
            return False
        if kind == "hang":
            self.hang()
            return False

        if self.server.latency > 0:
            time.sleep(self.server.latency)  # a store that is far away
        resp = self.forward(method, target, req)
        if resp is None:  # server unreachable or broken answer
            body = b"upstream failed"
            self.sock.sendall(serialize_head("HTTP/1.1 502 Bad Gateway", [
                ("Content-Length", str(len(body))), ("Connection", "close")]) + body)
            return False
        head_bytes = serialize_head(resp.start, resp.without("Connection", "Keep-Alive",
                                                             "Transfer-Encoding", "Content-Length")
                                    + self.length_header(method, resp)
                                    + [("Connection", "close" if client_close or kind else
                                        "keep-alive")])
        if kind == "truncate":
            if resp.body:
                self.sock.sendall(head_bytes + resp.body[: len(resp.body) // 2])
            else:
                # Cut inside the status line: libcurl takes a header block cut
                # after a complete status line, closed by EOF, as a whole answer.
                self.sock.sendall(head_bytes[: head_bytes.index(b"\r\n") // 2])
            self.sock.shutdown(socket.SHUT_RDWR)
            return False
        if kind == "cut-headers":
            first = head_bytes.index(b"\r\n")
            second = head_bytes.find(b"\r\n", first + 2)
            self.sock.sendall(head_bytes[: second + 2 if second > 0 else first + 2])
            self.sock.shutdown(socket.SHUT_RDWR)
            return False
        if kind == "slow":
            self.slow(head_bytes, resp.body)
            return False
        self.sock.sendall(head_bytes + resp.body)
        return not client_close

    @staticmethod
    def length_header(method, resp):
        status = int(resp.start.split(" ")[1])
        if method == "HEAD":
            # The object's size, as the server said (no body follows).
            cl = resp.header("Content-Length")
            return [("Content-Length", cl)] if cl is not None else []
        if status in (204, 304) or 100 <= status < 200:
            return []
        return [("Content-Length", str(len(resp.body)))]

    def forward(self, method, target, req):
        # PUT of an object and POST completing a multipart upload.
        if (self.server.if_none_match and method in ("PUT", "POST")
                and (req.header("If-None-Match") or "").strip() == "*"):
            probe = Message("HEAD %s HTTP/1.1" % target.split("?", 1)[0],
                            [("Host", req.header("Host") or "")], b"")
            head = self.exchange("HEAD", probe)
            if head is None:
                return None
            if head.start.split(" ")[1] == "200":
                body = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>PreconditionFailed'
                        b"</Code><Message>At least one of the pre-conditions you specified did not"
                        b" hold</Message><Condition>If-None-Match</Condition></Error>")
                return Message("HTTP/1.1 412 Precondition Failed",
                               [("Content-Type", "application/xml")], body)
        return self.exchange(method, req)

    def exchange(self, method, req):
        up = self.server.upstream
        try:
            with socket.create_connection(up, timeout=self.server.upstream_timeout) as s:
                headers = req.without("Connection", "Keep-Alive", "Expect", "Transfer-Encoding",
                                      "Content-Length", "Proxy-Connection")
                if req.body or method in ("PUT", "POST"):
                    headers.append(("Content-Length", str(len(req.body))))
                headers.append(("Connection", "close"))
                s.sendall(serialize_head(req.start, headers) + req.body)
                with s.makefile("rb") as f:
                    while True:
                        head = read_head(f)
                        if head is None:
                            return None
                        resp = Message(head[0], head[1], b"")
                        status = int(head[0].split(" ")[1])
                        if 100 <= status < 200:
                            continue  # the server's own 100 Continue
                        if method == "HEAD" or status in (204, 304):
                            return resp
                        resp.body = read_body(f, resp, until_eof=True)
                        return resp
        except (OSError, BadRequest, ValueError, IndexError):
            return None

    def reset(self):
        # SO_LINGER with a zero timeout: close() sends RST instead of FIN.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        self.sock.close()

    def hang(self):
        # Send nothing; wait until the client closes (or the deadline passes).
        self.sock.settimeout(1.0)
        deadline = time.monotonic() + self.server.hang_seconds
        while time.monotonic() < deadline and not self.server.stopping.is_set():
            try:
                if not self.sock.recv(65536):
                    return
            except socket.timeout:
                continue

    def slow(self, head_bytes, body):
        stop = self.server.stopping
        if not body:
            if stop.wait(self.server.slow_seconds):
                return
            self.sock.sendall(head_bytes)
            return
        # The body but its last byte trickles out; the last byte waits until
        # --slow-seconds have passed, so even a short body stalls the client.
        deadline = time.monotonic() + self.server.slow_seconds
        self.sock.sendall(head_bytes)
        for i in range(0, len(body) - 1, 64):
            if stop.wait(0.5):
                return
            self.sock.sendall(body[i:min(i + 64, len(body) - 1)])
        if stop.wait(max(0.0, deadline - time.monotonic())):
            return
        self.sock.sendall(body[-1:])


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--upstream", required=True, help="HOST:PORT of the S3 server")
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free port)")
    p.add_argument("--port-file", help="write the chosen port here")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--rate", type=float, default=0.0, help="fraction of requests faulted, 0..1")
    p.add_argument("--kinds", default=",".join(KINDS), help="comma separated: " + ",".join(KINDS))
    p.add_argument("--match", default="", help="METHOD[:PATH-PREFIX],... eligible for faults")
    p.add_argument("--after", type=int, default=0, help="spare the first N eligible requests")
    p.add_argument("--if-none-match", action="store_true",
                   help='answer 412 to a PUT with "If-None-Match: *" of an existing object')
    p.add_argument("--log", help="append injected faults here")
    p.add_argument("--access-log", help="append every request here")
    p.add_argument("--slow-seconds", type=float, default=30.0)
    p.add_argument("--hang-seconds", type=float, default=600.0)
    p.add_argument("--upstream-timeout", type=float, default=120.0)
    p.add_argument("--latency-ms", type=float, default=0.0,
                   help="delay every forwarded request this long (a distant store's round trip)")
    args = p.parse_args(argv)
    if not 0.0 <= args.rate <= 1.0:
        p.error("--rate must be between 0 and 1")
    if args.latency_ms < 0:
        p.error("--latency-ms must not be negative")
    args.kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    if not args.kinds:
        p.error("--kinds is empty")
    for k in args.kinds:
        if k not in KINDS + EXTRA_KINDS:
            p.error("unknown fault kind %r (known: %s)" % (k, ", ".join(KINDS + EXTRA_KINDS)))
    args.match = [m.strip() for m in args.match.split(",") if m.strip()]
    host, sep, port = args.upstream.rpartition(":")
    if not sep or not port.isdigit():
        p.error("--upstream must be HOST:PORT")
    args.upstream = (host or "127.0.0.1", int(port))
    return args


def main(argv):
    args = parse_args(argv)
    server = Server(("127.0.0.1", args.port), Handler)
    server.injector = Injector(args)
    server.upstream = args.upstream
    server.upstream_timeout = args.upstream_timeout
    server.latency = args.latency_ms / 1000.0
    server.if_none_match = args.if_none_match
    server.slow_seconds = args.slow_seconds
    server.hang_seconds = args.hang_seconds
    server.stopping = threading.Event()
    port = server.server_address[1]

    def stop(signum, frame):
        server.stopping.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.replace(tmp, args.port_file)
    print("PORT %d" % port, flush=True)
    server.serve_forever(poll_interval=0.2)
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
