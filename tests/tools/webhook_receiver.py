#!/usr/bin/env python3
"""A loopback alert receiver for tests: appends every POSTed JSON body as one
line to a file and answers 200 (or the status given in FAIL_FILE, if it exists).

Usage: webhook_receiver.py PORT OUTFILE [FAIL_FILE]
"""
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

port, out = int(sys.argv[1]), sys.argv[2]
fail_file = sys.argv[3] if len(sys.argv) > 3 else None


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if fail_file and os.path.exists(fail_file):
            self.send_response(int(open(fail_file).read().strip() or 500))
            self.end_headers()
            return
        record = {"path": self.path, "body": json.loads(body)}
        with open(out, "a") as f:
            f.write(json.dumps(record) + "\n")
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", port), Handler).serve_forever()
