#!/usr/bin/env python3
"""Load client for bench/server_load.sh: CLIENTS concurrent keep-alive
clients for DURATION seconds, each sending GETs round-robin over URLS with a
bearer token, over HTTPS (CA file) or plain HTTP. Clients are threads spread
over several processes so the GIL of one process does not become the
bottleneck. Prints one JSON object: requests, errors (by kind), requests/s,
latency percentiles (ms), per-URL counts.

Usage: server_load.py BASE TOKEN CAFILE|- CLIENTS DURATION URL...
"""
import http.client
import json
import multiprocessing
import ssl
import sys
import threading
import time
import urllib.parse


def worker(base, token, cafile, urls, n_threads, duration, offset, out):
    u = urllib.parse.urlsplit(base)
    ctx = ssl.create_default_context(cafile=cafile) if u.scheme == "https" else None
    lat = []
    errors = {}
    counts = {}
    lock = threading.Lock()
    start = time.monotonic()
    end = start + duration

    def client(k):
        conn = None
        my_lat, my_err, my_counts = [], {}, {}
        i = k
        while time.monotonic() < end:
            url = urls[i % len(urls)]
            i += 1
            t0 = time.perf_counter()
            try:
                if conn is None:
                    if ctx is not None:
                        conn = http.client.HTTPSConnection(u.hostname, u.port, context=ctx, timeout=30)
                    else:
                        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
                conn.request("GET", url, headers={"Authorization": "Bearer " + token})
                r = conn.getresponse()
                r.read()
                dt = time.perf_counter() - t0
                if r.status != 200:
                    key = "HTTP %d" % r.status
                    my_err[key] = my_err.get(key, 0) + 1
                else:
                    my_lat.append(dt)
                    my_counts[url] = my_counts.get(url, 0) + 1
                if r.getheader("Connection", "").lower() == "close" or r.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as e:
                key = type(e).__name__
                my_err[key] = my_err.get(key, 0) + 1
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()
        with lock:
            lat.extend(my_lat)
            for k2, v in my_err.items():
                errors[k2] = errors.get(k2, 0) + v
            for k2, v in my_counts.items():
                counts[k2] = counts.get(k2, 0) + v

    threads = [threading.Thread(target=client, args=(offset + k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put((lat, errors, counts, time.monotonic() - start))


def main():
    base, token, cafile, clients, duration = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
    urls = sys.argv[6:]
    cafile = None if cafile == "-" else cafile
    procs = min(8, clients)
    q = multiprocessing.Queue()
    ps = []
    for p in range(procs):
        n = clients // procs + (1 if p < clients % procs else 0)
        ps.append(multiprocessing.Process(target=worker, args=(base, token, cafile, urls, n, duration, p * 1000, q)))
    for p in ps:
        p.start()
    lat, errors, counts, elapsed = [], {}, {}, 0.0
    for _ in ps:
        l, e, c, t = q.get()
        lat.extend(l)
        elapsed = max(elapsed, t)
        for k, v in e.items():
            errors[k] = errors.get(k, 0) + v
        for k, v in c.items():
            counts[k] = counts.get(k, 0) + v
    for p in ps:
        p.join()
    lat.sort()

    def pct(q):
        return round(lat[min(len(lat) - 1, int(len(lat) * q))] * 1000, 1) if lat else None

    n_err = sum(errors.values())
    print(json.dumps({
        "clients": clients, "seconds": round(elapsed, 1), "requests": len(lat) + n_err, "ok": len(lat),
        "errors": n_err, "error_kinds": errors, "requests_per_second": round((len(lat) + n_err) / elapsed, 1),
        "latency_ms": {"p50": pct(0.50), "p95": pct(0.95), "p99": pct(0.99), "max": pct(1.0)},
        "per_url": counts,
    }))


if __name__ == "__main__":
    main()
