#!/usr/bin/env bash
# API server load: CLIENTS (default 200) concurrent keep-alive clients on
# loopback for DURATION seconds (default 60) against cairn server over HTTPS
# (a throwaway CA made here), GETs round-robin over /api/v1/services,
# /api/v1/services/shop, /api/v1/services/shop/runs and the dashboard's
# index.html when the server has one. Every request is authenticated and
# audited (one fdatasync'd line each), as in production. Reports requests/s,
# p50/p95/p99 latency, errors, the server's peak RSS and the audit log's
# growth. Not a test: numbers for docs/benchmarks.md ("API server").
# Usage: [DURATION=60] [CLIENTS=200] [PLAIN=1] bench/server_load.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-60}
CLIENTS=${CLIENTS:-200}
cairn=$(pwd)/build/release/cairn
[ -x "$cairn" ] || scripts/setup release >/dev/null
work=$(mktemp -d /tmp/cairn-server-load.XXXXXX)
spid=
trap '[ -n "$spid" ] && kill $spid 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
export CAIRN_PASSWORD=load-test
C() { "$cairn" --no-progress --config "$work/cairn.yaml" "$@"; }

"$cairn" --repo "$work/repo" --quiet init --kdf-iterations 1 --kdf-memory 8 >/dev/null
mkdir -p "$work/shop" "$work/blog" "$work/tls"
for i in $(seq 1 50); do echo "order $i" >"$work/shop/order-$i.txt"; done
echo "post" >"$work/blog/post.md"
(
  cd "$work/tls"
  openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj '/CN=cairn bench CA' -keyout ca.key -out ca.pem \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
  openssl req -newkey rsa:2048 -nodes -subj '/CN=localhost' -keyout server.key -out server.csr
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >ext.cnf
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 -extfile ext.cnf -out server.pem
) >/dev/null 2>&1
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/cairn.yaml" <<YAML
repository: $work/repo
services:
  shop:
    owner: team-shop
    objectives: { rpo: 1d, rto: 1h }
    engine: { type: files, paths: [$work/shop] }
    schedule: "@daily"
  blog:
    owner: team-blog
    objectives: { rpo: 1d, rto: 1h }
    engine: { type: files, paths: [$work/blog] }
    schedule: "@daily"
daemon: { state: $work/state.db }
server:
  listen: 127.0.0.1:$port
  tls: { cert: $work/tls/server.pem, key: $work/tls/server.key }
YAML
for i in 1 2 3 4 5; do
  echo "change $i" >>"$work/shop/order-1.txt"
  C --quiet backup --service shop >/dev/null
done
C --quiet backup --service blog >/dev/null
C --quiet drill run --service shop >/dev/null
token=$(C token create --name bench --role viewer --services shop 2>/dev/null)

if [ "${PLAIN:-}" = 1 ]; then
  "$cairn" --config "$work/cairn.yaml" server --insecure-plain-http >"$work/server.log" 2>&1 &
  base=http://127.0.0.1:$port cafile=-
else
  "$cairn" --config "$work/cairn.yaml" server >"$work/server.log" 2>&1 &
  base=https://127.0.0.1:$port cafile=$work/tls/ca.pem
fi
spid=$!
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done
curl_opts=(-s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token")
[ "$cafile" = - ] || curl_opts+=(--cacert "$cafile")
urls=(/api/v1/services /api/v1/services/shop /api/v1/services/shop/runs)
[ "$(curl "${curl_opts[@]}" "$base/index.html")" = 200 ] && urls+=(/index.html)
for u in "${urls[@]}"; do
  code=$(curl "${curl_opts[@]}" "$base$u")
  [ "$code" = 200 ] || { echo "GET $u: $code" >&2; exit 1; }
done
audit_before=$(wc -l <"$work/audit.log")

echo "cairn server load: $CLIENTS clients, ${DURATION}s, $base, URLs: ${urls[*]}"
echo "machine: $(nproc) cores, $(uname -r), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
result=$(python3 bench/server_load.py "$base" "$token" "$cafile" "$CLIENTS" "$DURATION" "${urls[@]}")
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$spid/status")
threads=$(awk '/Threads/ {print $2}' "/proc/$spid/status")
audit_after=$(wc -l <"$work/audit.log")
echo "$result" | python3 -c '
import json, sys
r = json.load(sys.stdin)
l = r["latency_ms"]
print("requests %d in %.1fs: %.1f/s; ok %d, errors %d %s" % (r["requests"], r["seconds"], r["requests_per_second"], r["ok"], r["errors"], r["error_kinds"] or ""))
print("latency ms: p50 %s  p95 %s  p99 %s  max %s" % (l["p50"], l["p95"], l["p99"], l["max"]))
print("per URL: %s" % r["per_url"])'
echo "server: peak RSS $((hwm / 1024)) MiB, $threads threads; audit log +$((audit_after - audit_before)) entries"
kill -TERM "$spid"
wait "$spid" || true
spid=
C audit verify >/dev/null && echo "audit log verifies"
