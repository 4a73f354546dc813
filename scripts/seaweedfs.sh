#!/usr/bin/env bash
# SeaweedFS, the real S3-compatible object store the archiver's S3 tests run against. Built once from
# the Go module proxy into the cache (like FerretDB in scripts/lib.sh), started on 127.0.0.1 on demand.
#
#   bash scripts/seaweedfs.sh build   build `weed` once into $SLUICE_CACHE/bin (no-op when cached)
#   bash scripts/seaweedfs.sh start   build if needed, start `weed server -s3` unless its S3 port answers
#   bash scripts/seaweedfs.sh env     the S3_* variables of the local server, as `export` lines
#   bash scripts/seaweedfs.sh stop    stop the server this script started (by its pid file)
#   bash scripts/seaweedfs.sh bin     build if needed, print the path of `weed` (tests run private servers)
#
# Knobs: SLUICE_CACHE (default ~/.cache/sluice), SEAWEEDFS_S3_PORT (default 18333; master, volume and
# filer use 19333, 18080, 18888 and their gRPC ports +10000), SEAWEEDFS_TIMEOUT (seconds, default 90).
set -euo pipefail

SEAWEEDFS_MODULE=github.com/seaweedfs/seaweedfs
# A pseudo-version of master (2026-11-09): `weed server -s3` answers bucket create, conditional put,
# multipart and lifecycle configuration on it.
SEAWEEDFS_VERSION=v0.0.0-20261109003541-7506e5f91cd6
SLUICE_CACHE="${SLUICE_CACHE:-${HOME:-/root}/.cache/sluice}"
SEAWEEDFS_S3_PORT="${SEAWEEDFS_S3_PORT:-18333}"
SEAWEEDFS_TIMEOUT="${SEAWEEDFS_TIMEOUT:-90}"
# Static test credentials of the local server only (never a real account).
SEAWEEDFS_ACCESS_KEY=sluice-test
SEAWEEDFS_SECRET_KEY=sluice-test-secret

bin="$SLUICE_CACHE/bin/weed-$SEAWEEDFS_VERSION"
logdir="$SLUICE_CACHE/logs"
data="$SLUICE_CACHE/seaweedfs-data"
pidfile="$SLUICE_CACHE/seaweedfs.pid"

log() { printf '[seaweedfs] %s\n' "$*" >&2; }
die() {
  printf '[seaweedfs] ERROR: %s\n' "$*" >&2
  exit 1
}
port_open() { timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null; }
go_bin() { command -v go 2>/dev/null || { [[ -x /usr/local/go/bin/go ]] && echo /usr/local/go/bin/go; }; }

build() {
  [[ -x "$bin" ]] && return 0
  local go blog modjson moddir t0=$SECONDS
  go="$(go_bin)" || true
  [[ -n "$go" ]] || die "SeaweedFS is built from source and needs Go (not found): install Go, or point S3_ENDPOINT at another S3-compatible server"
  mkdir -p "$(dirname "$bin")" "$logdir"
  blog="$logdir/seaweedfs-build.log"
  # One build at a time: parallel test workers may all ask.
  exec 9>"$SLUICE_CACHE/seaweedfs-build.lock"
  flock 9
  [[ -x "$bin" ]] && return 0
  log "building SeaweedFS $SEAWEEDFS_VERSION once into $bin (several minutes; log: $blog)"
  # `go mod download` then build inside the module: `go install …@pseudo-version` would also work, but
  # this keeps the module's own go.sum and replace directives.
  modjson="$(cd "$(dirname "$bin")" && timeout 900 "$go" mod download -json "$SEAWEEDFS_MODULE@$SEAWEEDFS_VERSION" 2>>"$blog")" || {
    printf '%s\n' "$modjson" >>"$blog"
    die "go mod download $SEAWEEDFS_MODULE@$SEAWEEDFS_VERSION failed; see $blog (is the Go module proxy reachable?)"
  }
  moddir="$(printf '%s\n' "$modjson" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
  [[ -d "$moddir" ]] || die "go mod download did not report the SeaweedFS source folder; see $blog"
  (cd "$moddir" && GOFLAGS=-mod=mod timeout 2400 "$go" build -trimpath -buildvcs=false -o "$bin.tmp" ./weed) >>"$blog" 2>&1 ||
    die "building SeaweedFS failed; see $blog"
  mv -f "$bin.tmp" "$bin"
  log "SeaweedFS built in $((SECONDS - t0))s: $bin"
}

start() {
  port_open "$SEAWEEDFS_S3_PORT" && return 0
  build
  exec 8>"$SLUICE_CACHE/seaweedfs-start.lock"
  flock 8
  port_open "$SEAWEEDFS_S3_PORT" && return 0
  mkdir -p "$data" "$logdir"
  local s3conf="$SLUICE_CACHE/seaweedfs-s3.json" slog="$logdir/seaweedfs.log"
  cat >"$s3conf" <<EOF
{"identities":[{"name":"sluice","credentials":[{"accessKey":"$SEAWEEDFS_ACCESS_KEY","secretKey":"$SEAWEEDFS_SECRET_KEY"}],"actions":["Admin","Read","List","Tagging","Write"]}]}
EOF
  printf '\n--- %s starting %s\n' "$(date -u +%FT%TZ)" "$bin" >>"$slog"
  setsid "$bin" server -ip=127.0.0.1 -ip.bind=127.0.0.1 -dir="$data" \
    -master.port=19333 -volume.port=18080 -filer.port=18888 \
    -s3 -s3.port="$SEAWEEDFS_S3_PORT" -s3.config="$s3conf" -volume.max=0 -master.volumeSizeLimitMB=64 \
    </dev/null >>"$slog" 2>&1 &
  echo $! >"$pidfile"
  local deadline=$((SECONDS + SEAWEEDFS_TIMEOUT))
  until port_open "$SEAWEEDFS_S3_PORT"; do
    kill -0 "$(cat "$pidfile")" 2>/dev/null || die "SeaweedFS exited at start; see $slog"
    ((SECONDS < deadline)) || die "SeaweedFS S3 did not answer on 127.0.0.1:$SEAWEEDFS_S3_PORT within ${SEAWEEDFS_TIMEOUT}s; see $slog"
    sleep 0.5
  done
  log "SeaweedFS S3 on 127.0.0.1:$SEAWEEDFS_S3_PORT (data $data, log $slog)"
}

env_lines() {
  printf 'export S3_ENDPOINT=http://127.0.0.1:%s\n' "$SEAWEEDFS_S3_PORT"
  printf 'export AWS_ACCESS_KEY_ID=%s\nexport AWS_SECRET_ACCESS_KEY=%s\nexport AWS_REGION=us-east-1\n' "$SEAWEEDFS_ACCESS_KEY" "$SEAWEEDFS_SECRET_KEY"
}

stop() {
  [[ -f "$pidfile" ]] || return 0
  local pid
  pid="$(cat "$pidfile")"
  kill "$pid" 2>/dev/null || true
  rm -f "$pidfile"
}

case "${1:-}" in
  build) build ;;
  start) start ;;
  env) env_lines ;;
  stop) stop ;;
  bin)
    build
    echo "$bin"
    ;;
  *) die "usage: scripts/seaweedfs.sh build|start|env|stop|bin" ;;
esac
