#!/usr/bin/env python3
"""RBAC matrix of `cairn server`, generated from docs/api.yaml.

Every operation of the OpenAPI file is requested by every role, once for the
token's own service, once for a foreign one and once for a service that does
not exist, and the answer is compared with EXPECTED below (role -> the
x-cairn-permission values it carries). A new operation in docs/api.yaml is
therefore tested without touching this file, and an operation whose
x-cairn-permission is not one of the known values fails the test.

Rules checked (the service of a request is its {service} path parameter, its
`service` query parameter, the `services` of its body, or the service of the
job in {job}):
  * {service} in the path: a service the token does not see, or that does not
    exist, is 404 for every role (before the role is looked at: a 403 would
    tell that the name exists); a visible one is 2xx when the role is allowed,
    else 403.
  * elsewhere: a role without the permission gets 403 whatever the service
    (the answer does not depend on the name, so nothing leaks); an allowed role
    gets 404 for a foreign or unknown service, 2xx for its own.
  * lists (no service): allowed -> 200 and the body never mentions a service
    the token does not see; denied -> 403.
  * foreign and unknown services get byte-identical error bodies.
  * no token, a garbage token, a revoked and an expired token: 401 everywhere.

Usage: server_rbac.py SPEC BASE FIXTURE.json
FIXTURE: {"tokens": {label: {"token", "role", "services": [..]}},
          "bad_tokens": {label: token}, "own": "shop", "foreign": "blog",
          "ids": {service: {"snapshot": [ids, one per DELETE], "drill": id, "job": id}},
          "cacert": path or null}
"""
import http.client
import json
import ssl
import sys
import time
import urllib.parse

import yaml

# role -> the x-cairn-permission values it carries (src/server/access.h).
EXPECTED = {
    "viewer": {"authenticated", "read"},
    "operator": {"authenticated", "read", "trigger"},
    "restorer": {"authenticated", "read", "trigger", "restore"},
    "admin": {"authenticated", "read", "trigger", "restore", "admin"},
    "agent": {"authenticated"},
}
PERMISSIONS = {"authenticated", "read", "trigger", "restore", "admin"}
UNKNOWN = "no-such-service"
METHOD_ORDER = {"get": 0, "post": 1, "delete": 2}

failures = []
checked = 0


def fail(msg):
    failures.append(msg)
    print("FAIL: " + msg, file=sys.stderr)


class Client:
    def __init__(self, base, cacert):
        u = urllib.parse.urlsplit(base)
        self.https = u.scheme == "https"
        self.host, self.port = u.hostname, u.port
        self.ctx = ssl.create_default_context(cafile=cacert) if self.https else None

    def request(self, method, path, token=None, body=None, source="127.0.0.1"):
        if self.https:
            conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=30,
                                               source_address=(source, 0))
        else:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=30, source_address=(source, 0))
        headers = {}
        if token is not None:
            headers["Authorization"] = "Bearer " + token
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method.upper(), path, body=data, headers=headers)
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            conn.close()


def scope_of(path, op, resolve):
    """Where an operation names its service."""
    if "{service}" in path:
        return "path"
    params = op.get("parameters", [])
    if any(p.get("in") == "query" and p.get("name") == "service" for p in params):
        return "query"
    body = resolve(op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {}))
    if "services" in body.get("properties", {}):
        return "body"
    if "{job}" in path:
        return "object"
    return "none"


class Requests:
    """Builds the concrete request of (operation, service)."""

    def __init__(self, fixture, spec):
        self.spec = spec
        self.ids = fixture["ids"]
        self.serial = 0
        self.victims = {s: list(v["snapshot"]) for s, v in self.ids.items()}

    def resolve(self, node):
        """Follows a local $ref (#/components/...)."""
        while "$ref" in node:
            node_path = node["$ref"].lstrip("#/").split("/")
            node = self.spec
            for part in node_path:
                node = node[part]
        return node

    def target(self):
        self.serial += 1
        return "rbac-%d" % self.serial

    def build(self, method, path, op, service, allowed_here):
        ids = self.ids.get(service, {})
        fill = {"service": service}
        if "{snapshot}" in path:
            # A DELETE that will succeed really forgets: it gets a snapshot of its own.
            if method == "delete" and allowed_here and self.victims.get(service):
                fill["snapshot"] = self.victims[service].pop()
            else:
                fill["snapshot"] = ids.get("snapshot", ["0" * 64])[0]
        if "{drill}" in path:
            fill["drill"] = str(ids.get("drill", 999999))
        if "{job}" in path:
            fill["job"] = ids.get("job", "job-does-not-exist")
        url = path
        for k, v in fill.items():
            url = url.replace("{" + k + "}", urllib.parse.quote(v, safe=""))
        for p in op.get("parameters", []):
            if p.get("in") == "path" and "{%s}" % p["name"] in url:
                raise SystemExit("%s %s: no value for path parameter %s" % (method, path, p["name"]))
        query = {}
        for p in op.get("parameters", []):
            if p.get("in") == "query" and p.get("name") == "service":
                query["service"] = service
        if query:
            url += "?" + urllib.parse.urlencode(query)
        body = None
        rb = op.get("requestBody")
        if rb is not None:
            schema = self.resolve(rb["content"]["application/json"]["schema"])
            body = {}
            for prop in schema.get("required", []):
                if prop == "target":
                    body["target"] = self.target()
                elif prop == "services":
                    body["services"] = [service]
                else:
                    raise SystemExit("%s %s: the test does not know how to fill required body field %s"
                                     % (method, path, prop))
        return url, body


def expected_status(scope, allowed, visible):
    """'2xx', 403 or 404."""
    if scope == "path":
        if not visible:
            return 404
        return "2xx" if allowed else 403
    if not allowed:
        return 403
    if scope in ("none",):
        return "2xx"
    return "2xx" if visible else 404


def main():
    global checked
    spec_path, base, fixture_path = sys.argv[1:4]
    with open(spec_path) as f:
        spec = yaml.safe_load(f)
    with open(fixture_path) as f:
        fixture = json.load(f)
    client = Client(base, fixture.get("cacert"))
    own, foreign = fixture["own"], fixture["foreign"]
    reqs = Requests(fixture, spec)

    ops = []
    for path, item in spec["paths"].items():
        if not path.startswith("/api/v1/") or path.startswith("/api/v1/repo/"):
            continue
        for method, op in item.items():
            if method not in METHOD_ORDER:
                continue
            perm = op.get("x-cairn-permission")
            if perm not in PERMISSIONS:
                fail("%s %s: x-cairn-permission %r is not one of %s" % (method.upper(), path, perm, sorted(PERMISSIONS)))
                continue
            ops.append((method, path, op, perm))
    # Reads first, then what starts jobs, then deletions of one snapshot, then
    # admin POSTs (retention: may forget many), so a forget never pulls a
    # snapshot from under a later request of this run.
    ops.sort(key=lambda o: (METHOD_ORDER[o[0]] + (10 if o[0] == "post" and o[3] == "admin" else 0), o[1]))
    if not ops:
        fail("no operations in " + spec_path)

    tested = set()
    for label, tok in fixture["tokens"].items():
        if tok["role"] not in EXPECTED:
            fail("token %s: role %s has no row in EXPECTED" % (label, tok["role"]))
    tokens = [(label, tok) for label, tok in fixture["tokens"].items() if tok["role"] in EXPECTED]
    # Operation by operation (in the order above), every token.
    for method, path, op, perm in ops:
        for label, tok in tokens:
            role = tok["role"]
            sees = set(tok["services"])
            scope = scope_of(path, op, reqs.resolve)
            allowed = perm in EXPECTED[role]
            targets = [own] if scope == "none" else [own, foreign, UNKNOWN]
            bodies = {}
            for svc in targets:
                visible = svc != UNKNOWN and ("*" in sees or svc in sees)
                if scope == "query" and "*" in sees:
                    visible = True  # a filter: an admin of everything may filter by any name
                url, body = reqs.build(method, path, op, svc, allowed and visible)
                status, data = client.request(method, url, tok["token"], body)
                checked += 1
                want = expected_status(scope, allowed, visible)
                what = "%s (%s) %s %s%s" % (label, role, method.upper(), url,
                                            " " + json.dumps(body) if body is not None else "")
                ok = 200 <= status < 300 if want == "2xx" else status == want
                if not ok:
                    fail("%s: expected %s, got %d %s" % (what, want, status, data[:300].decode(errors="replace")))
                if status >= 400:
                    try:
                        err = json.loads(data)
                        if not isinstance(err.get("error"), str):
                            raise ValueError
                    except ValueError:
                        fail("%s: error %d without a JSON {\"error\": ...} body: %r" % (what, status, data[:200]))
                if scope == "none" and want == "2xx" and "*" not in sees:
                    hidden = [s for s in (foreign,) if s not in sees]
                    for h in hidden:
                        if h.encode() in data:
                            fail("%s: the answer mentions service %s the token does not see: %s"
                                 % (what, h, data[:300].decode(errors="replace")))
                if svc != own and not visible:
                    bodies[svc] = (status, data.replace(svc.encode(), b"<name>"))
                tested.add((method, path, role))
            if len(bodies) == 2 and len(set(bodies.values())) != 1:
                fail("%s (%s) %s %s: a foreign and an unknown service are told apart: %s"
                     % (label, role, method.upper(), path, bodies))

    # Every operation was requested by every role.
    roles = {t["role"] for t in fixture["tokens"].values()}
    for missing_role in set(EXPECTED) - roles:
        fail("no token of role %s in the fixture" % missing_role)
    for method, path, _, _ in ops:
        for role in roles:
            if (method, path, role) not in tested:
                fail("%s %s was not requested as %s" % (method.upper(), path, role))

    # Bad tokens: 401 for every operation. Failed authentications are rate
    # limited per address (10 a minute), so each operation comes from an
    # address of its own in 127.0.0.0/8.
    for i, (method, path, op, perm) in enumerate(ops):
        url, body = reqs.build(method, path, op, own, False)
        source = "127.0.%d.%d" % (10 + i // 200, 1 + i % 200)
        for label, token in [("no token", None)] + sorted(fixture["bad_tokens"].items()):
            status, data = client.request(method, url, token, body, source=source)
            checked += 1
            if status != 401:
                fail("%s %s with %s: expected 401, got %d %s" % (method.upper(), url, label, status, data[:200]))

    print("rbac: %d operations x %d tokens, %d requests checked, %d failures"
          % (len(ops), len(fixture["tokens"]), checked, len(failures)))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
