# shellcheck shell=bash
# Sluice bootstrap helpers, sourced by scripts/run.sh and .ci/run (bash only).
#
#   ensure_node      Node 24 first on PATH (the system Node when its major is 24, else node-linux-<arch>@24
#                    in .tools/node; package.json's engines.node says the same, .ci/run checks they agree),
#                    plus node_modules/.bin
#   ensure_deps      `npm ci` (see npm_ci) when node_modules is missing or older than package-lock.json
#   ensure_services  NATS JetStream, Redis, PostgreSQL and FerretDB answering on 127.0.0.1 (started,
#                    installed from Debian's packages or built, as needed), plus RabbitMQ and Mosquitto
#                    only when a project asks for them (see sluice_services), and the *_URL variables the
#                    tests read exported
#
# Every wait is bounded; every failure names the service, the log file and what to do about it.
# Knobs (environment): SLUICE_CACHE (default ~/.cache/sluice: FerretDB, nats-server and Jaeger binaries,
# FerretDB data, logs),
# SLUICE_SERVICES (the ones to ensure; default: see sluice_services, "nats redis postgres ferretdb" plus
# the on-demand ones some project asks for),
# SLUICE_SERVICE_TIMEOUT (seconds to wait for one service's port, default 60; RabbitMQ gets 2x).

SLUICE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SLUICE_CACHE="${SLUICE_CACHE:-${HOME:-/root}/.cache/sluice}"
SLUICE_LOG_DIR="$SLUICE_CACHE/logs"
SLUICE_NODE_MAJOR=24
FERRETDB_VERSION=v1.24.0
# nats-server of the NATS cluster tests (build_nats_cluster, libs/testing natsCluster).
NATS_CLUSTER_VERSION=v2.15.2
export SLUICE_ROOT SLUICE_CACHE

log() { printf '[sluice] %s\n' "$*" >&2; }
warn() { printf '[sluice] WARNING: %s\n' "$*" >&2; }
die() {
  printf '[sluice] ERROR: %s\n' "$*" >&2
  exit 1
}

# ---------------------------------------------------------------------------------------------- node

_node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }

ensure_node() {
  local major=0
  if command -v node >/dev/null 2>&1; then major="$(_node_major)"; fi
  if ((major != SLUICE_NODE_MAJOR)); then
    local os arch
    case "$(uname -s)" in
      Linux) os=linux ;;
      Darwin) os=darwin ;;
      *) die "no Node $SLUICE_NODE_MAJOR on PATH and no packaged Node for $(uname -s): install Node $SLUICE_NODE_MAJOR yourself" ;;
    esac
    case "$(uname -m)" in
      x86_64 | amd64) arch=x64 ;;
      aarch64 | arm64) arch=arm64 ;;
      *) die "no Node $SLUICE_NODE_MAJOR on PATH and no packaged Node for $(uname -m): install Node $SLUICE_NODE_MAJOR yourself" ;;
    esac
    local pkg="node-$os-$arch" prefix="$SLUICE_ROOT/.tools/node"
    local bin="$prefix/node_modules/$pkg/bin"
    if [[ ! -x "$bin/node" ]]; then
      command -v npm >/dev/null 2>&1 ||
        die "Node $SLUICE_NODE_MAJOR is not on PATH and npm is missing, so Node $SLUICE_NODE_MAJOR cannot be fetched: install Node $SLUICE_NODE_MAJOR (or npm) first"
      log "system Node is $(node --version 2>/dev/null || echo missing) (need $SLUICE_NODE_MAJOR): installing $pkg@$SLUICE_NODE_MAJOR into .tools/node (once)"
      mkdir -p "$prefix"
      timeout 600 npm install --prefix "$prefix" --no-audit --no-fund --no-save --loglevel=error "$pkg@$SLUICE_NODE_MAJOR" >&2 ||
        die "npm install $pkg@$SLUICE_NODE_MAJOR failed (see above); check that the npm registry is reachable, then rerun"
      [[ -x "$bin/node" ]] || die "$pkg@$SLUICE_NODE_MAJOR installed but $bin/node is missing; delete .tools/node and rerun"
    fi
    PATH="$bin:$PATH"
  fi
  case ":$PATH:" in
    *":$SLUICE_ROOT/node_modules/.bin:"*) ;;
    *) PATH="$SLUICE_ROOT/node_modules/.bin:$PATH" ;;
  esac
  export PATH
  hash -r
  major="$(_node_major)"
  ((major == SLUICE_NODE_MAJOR)) || die "node on PATH is still $(node --version 2>/dev/null) after bootstrap; delete .tools/node and rerun"
}

# check_engines: package.json's engines.node is the range ensure_node provides (one major).
check_engines() {
  local want=">=$SLUICE_NODE_MAJOR <$((SLUICE_NODE_MAJOR + 1))" got
  got="$(node -p 'require(process.argv[1]).engines?.node ?? ""' "$SLUICE_ROOT/package.json")"
  [[ "$got" == "$want" ]] ||
    die "package.json engines.node is '$got' but the bootstrap (scripts/lib.sh SLUICE_NODE_MAJOR) provides Node $SLUICE_NODE_MAJOR: make engines.node '$want' (and the Dockerfile's node image agree), or change SLUICE_NODE_MAJOR"
}

# npm_ci: `npm ci --no-audit --no-fund`, with one workaround. The registry reachable here does not
# serve every platform's optional binary (e.g. @bufbuild/buf-darwin-arm64 answers 404), so the lock
# that `npm install` writes here has no entry for those, and npm 11's `npm ci` then refuses it
# ("Missing: <pkg>@ from lock file") although nothing is wrong for this platform. In exactly that case
# fall back to `npm install` from the same lock and fail if that changes package-lock.json (which is
# what `npm ci` would have caught).
npm_ci() {
  local out before
  mkdir -p "$SLUICE_LOG_DIR"
  out="$SLUICE_LOG_DIR/npm-ci.log"
  if (cd "$SLUICE_ROOT" && timeout 900 npm ci --no-audit --no-fund 2>&1 | tee "$out" >&2; exit "${PIPESTATUS[0]}"); then
    return 0
  fi
  grep -q 'from lock file' "$out" ||
    die "npm ci failed (see above; log $out); if package-lock.json is out of date with package.json run 'npm install' and commit the lock"
  warn "npm ci refused package-lock.json only for optional platform packages the registry does not serve here; installing from the same lock with 'npm install' instead"
  before="$(cksum <"$SLUICE_ROOT/package-lock.json")"
  (cd "$SLUICE_ROOT" && timeout 900 npm install --no-audit --no-fund) >&2 ||
    die "npm install failed (see above); check that the npm registry is reachable, then rerun"
  [[ "$(cksum <"$SLUICE_ROOT/package-lock.json")" == "$before" ]] ||
    die "package-lock.json was out of date with package.json ('npm install' just rewrote it): review and commit the new lock"
}

_deps_stale() {
  local stamp="$SLUICE_ROOT/node_modules/.package-lock.json"
  [[ ! -d "$SLUICE_ROOT/node_modules" || ! -f "$stamp" || "$SLUICE_ROOT/package-lock.json" -nt "$stamp" ]]
}

ensure_deps() {
  _deps_stale || return 0
  # One install at a time per checkout: two concurrent `npm ci` runs (two commands started together)
  # empty node_modules under each other. The second waits, then finds the install done.
  mkdir -p "$SLUICE_CACHE"
  exec {deps_lock}>"$SLUICE_CACHE/npm-install.lock"
  flock "$deps_lock"
  if _deps_stale; then
    log "installing dependencies (npm ci)"
    npm_ci
  fi
  flock -u "$deps_lock"
  exec {deps_lock}>&-
}

# ------------------------------------------------------------------------------------------ helpers

# port_open PORT [HOST]: true when something accepts a TCP connection (bounded to 2 s).
port_open() {
  # shellcheck disable=SC2016 # expanded by the inner bash
  timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "${2:-127.0.0.1}" "$1" 2>/dev/null
}

# wait_port NAME PORT TIMEOUT_S LOG_HINT
wait_port() {
  local name=$1 port=$2 limit=$3 hint=$4 deadline=$((SECONDS + $3))
  until port_open "$port"; do
    ((SECONDS < deadline)) ||
      die "$name did not start listening on 127.0.0.1:$port within ${limit}s; look at $hint, fix the cause, and rerun (SLUICE_SERVICE_TIMEOUT raises the wait)"
    sleep 1
  done
}

_is_root() { [[ "$(id -u)" == 0 ]]; }

# as_root CMD...: run as root (directly, or through passwordless sudo).
as_root() {
  if _is_root; then
    "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo -n "$@"
  else
    die "needs root to run: $* (run it yourself with sudo, or use 'docker compose up -d' for the services)"
  fi
}

_SLUICE_APT_UPDATED=
# apt_install SERVICE PACKAGE...
apt_install() {
  local name=$1
  shift
  command -v apt-get >/dev/null 2>&1 ||
    die "$name is not installed and this is not a Debian-like system: install $* with your package manager (or 'docker compose up -d'), then rerun"
  mkdir -p "$SLUICE_LOG_DIR"
  local alog="$SLUICE_LOG_DIR/apt.log"
  if [[ -z "$_SLUICE_APT_UPDATED" ]]; then
    log "apt-get update (once)"
    as_root env DEBIAN_FRONTEND=noninteractive timeout 600 apt-get -o DPkg::Lock::Timeout=120 -q update >>"$alog" 2>&1 ||
      die "apt-get update failed; see $alog"
    _SLUICE_APT_UPDATED=1
  fi
  log "$name is not installed: apt-get install -y $* (log: $alog)"
  as_root env DEBIAN_FRONTEND=noninteractive timeout 900 apt-get -o DPkg::Lock::Timeout=120 -q install -y "$@" >>"$alog" 2>&1 ||
    die "apt-get install $* failed; see $alog (tail: $(tail -n 3 "$alog" | tr '\n' ' '))"
}

# ------------------------------------------------------------------------------------- the services
# Each service has: _svc_<name>_installed, _svc_<name>_start, a port, a Debian package and a log.

_svc_port() {
  case $1 in
    nats) echo 4222 ;; redis) echo 6379 ;; postgres) echo 5432 ;;
    rabbitmq) echo 5672 ;; mosquitto) echo 1883 ;; ferretdb) echo 27017 ;;
    *) die "unknown service '$1' in SLUICE_SERVICES (known: nats redis postgres rabbitmq mosquitto ferretdb)" ;;
  esac
}

_svc_package() {
  case $1 in
    nats) echo nats-server ;; redis) echo redis-server ;; postgres) echo postgresql ;;
    rabbitmq) echo rabbitmq-server ;; mosquitto) echo mosquitto ;; ferretdb) echo "" ;;
  esac
}

_svc_log() {
  case $1 in
    nats) echo /var/log/nats-server.log ;;
    redis) echo /var/log/redis/ci.log ;;
    postgres) echo "/var/log/postgresql/postgresql-$(_pg_version)-main.log" ;;
    rabbitmq) echo "/var/log/rabbitmq/ (rabbit@*.log) and $SLUICE_LOG_DIR/rabbitmq.start.log" ;;
    mosquitto) echo /var/log/mosquitto/mosquitto.log ;;
    ferretdb) echo "$SLUICE_LOG_DIR/ferretdb.log" ;;
  esac
}

_svc_timeout() {
  local t=${SLUICE_SERVICE_TIMEOUT:-60}
  if [[ $1 == rabbitmq ]]; then echo $((t * 2)); else echo "$t"; fi
}

_nats_bin() { command -v nats-server 2>/dev/null || { [[ -x /usr/sbin/nats-server ]] && echo /usr/sbin/nats-server; }; }
_svc_nats_installed() { [[ -n "$(_nats_bin)" ]]; }
_svc_nats_start() {
  local bin
  bin="$(_nats_bin)"
  as_root mkdir -p /var/lib/nats-server
  if command -v start-stop-daemon >/dev/null 2>&1; then
    as_root start-stop-daemon --start --oknodo --background --exec "$bin" -- \
      -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
  else
    as_root setsid "$bin" -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log \
      </dev/null >/dev/null 2>&1 &
  fi
}

_svc_redis_installed() { command -v redis-server >/dev/null 2>&1; }
_svc_redis_start() {
  as_root mkdir -p /var/lib/redis /var/log/redis
  # Durable like every shipped configuration (AOF every second, no eviction): docs/OPERATIONS.md.
  as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly yes \
    --appendfsync everysec --maxmemory-policy noeviction \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log >/dev/null
}

_pg_version() { find /etc/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort -V | tail -n 1; }
_svc_postgres_installed() { command -v pg_ctlcluster >/dev/null 2>&1 && [[ -n "$(_pg_version)" ]]; }
_svc_postgres_start() {
  local ver
  ver="$(_pg_version)"
  [[ -d "/etc/postgresql/$ver/main" ]] || as_root pg_createcluster "$ver" main >&2
  as_root pg_ctlcluster --skip-systemctl-redirect "$ver" main start >&2 || true # "already running" is fine
}

_svc_rabbitmq_installed() { command -v rabbitmq-server >/dev/null 2>&1; }
_svc_rabbitmq_start() {
  mkdir -p "$SLUICE_LOG_DIR"
  as_root rabbitmq-server -detached >>"$SLUICE_LOG_DIR/rabbitmq.start.log" 2>&1
}

_svc_mosquitto_installed() { command -v mosquitto >/dev/null 2>&1; }
_svc_mosquitto_start() {
  if _is_root && id mosquitto >/dev/null 2>&1; then
    mkdir -p /run/mosquitto /var/log/mosquitto /var/lib/mosquitto
    chown mosquitto: /run/mosquitto /var/log/mosquitto /var/lib/mosquitto 2>/dev/null || true
  fi
  as_root mosquitto -d -c /etc/mosquitto/mosquitto.conf
}

# FerretDB: no Debian package; built once from the Go module source into the cache.
ferretdb_bin() { echo "$SLUICE_CACHE/ferretdb-$FERRETDB_VERSION/ferretdb"; }
_go_bin() { command -v go 2>/dev/null || { [[ -x /usr/local/go/bin/go ]] && echo /usr/local/go/bin/go; }; }
_svc_ferretdb_installed() { [[ -x "$(ferretdb_bin)" ]]; }

# Why not `go install …/cmd/ferretdb@v1.24.0`: it asks the proxy for the version list (deprecation
# check), which is refused here. The module zip also lacks build/version/version.txt, and a binary
# built straight from the read-only module cache panics at start; so copy the source, write that
# file, and build the copy.
build_ferretdb() {
  local go bin dir blog modjson moddir t0=$SECONDS
  bin="$(ferretdb_bin)"
  dir="$(dirname "$bin")"
  blog="$SLUICE_LOG_DIR/ferretdb-build.log"
  go="$(_go_bin)"
  [[ -n "$go" ]] ||
    die "FerretDB $FERRETDB_VERSION is built from source and needs Go >= 1.22 (not found): install Go, or run your own MongoDB-compatible server, set MONGO_URL and drop ferretdb from SLUICE_SERVICES"
  mkdir -p "$dir" "$SLUICE_LOG_DIR"
  log "building FerretDB $FERRETDB_VERSION once into $dir (takes a minute or two; log: $blog)"
  modjson="$(cd "$dir" && timeout 600 "$go" mod download -json "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" 2>>"$blog")" || {
    printf '%s\n' "$modjson" >>"$blog"
    die "go mod download github.com/FerretDB/FerretDB@$FERRETDB_VERSION failed; see $blog (is the Go module proxy reachable?)"
  }
  moddir="$(printf '%s\n' "$modjson" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
  [[ -d "$moddir" ]] || die "go mod download did not report the FerretDB source folder; see $blog"
  rm -rf "$dir/src"
  { cp -R "$moddir" "$dir/src" && chmod -R u+w "$dir/src"; } || die "cannot copy FerretDB source into $dir/src"
  printf '%s\n' "$FERRETDB_VERSION" >"$dir/src/build/version/version.txt"
  (cd "$dir/src" && GOFLAGS=-mod=mod timeout 1200 "$go" build -trimpath -buildvcs=false -o "$bin.tmp" ./cmd/ferretdb) >>"$blog" 2>&1 ||
    die "building FerretDB failed; see $blog (needs Go >= 1.22 and the Go module proxy)"
  mv -f "$bin.tmp" "$bin"
  rm -rf "$dir/src"
  log "FerretDB built in $((SECONDS - t0))s: $bin"
}

# A current nats-server for the cluster and placement tests only (libs/testing natsCluster): the
# local default on 4222 stays the Debian package. Built once from the Go module proxy into the cache.
nats_cluster_bin() { echo "$SLUICE_CACHE/nats-server-$NATS_CLUSTER_VERSION/nats-server"; }

# build_nats_cluster: builds nats_cluster_bin unless it is there (idempotent; concurrent callers wait
# for one build). GOTOOLCHAIN=local: the module asks for Go 1.26, and a missing toolchain must fail
# with a message rather than be downloaded.
build_nats_cluster() {
  local go bin dir blog modjson moddir gover lock t0=$SECONDS
  bin="$(nats_cluster_bin)"
  [[ -x "$bin" ]] && return 0
  dir="$(dirname "$bin")"
  blog="$SLUICE_LOG_DIR/nats-server-build.log"
  go="$(_go_bin)"
  [[ -n "$go" ]] ||
    die "nats-server $NATS_CLUSTER_VERSION (NATS cluster tests) is built from source and needs Go >= 1.26 (not found): install Go, or set NATS_CLUSTER_BIN to a nats-server >= 2.11 binary"
  gover="$(GOTOOLCHAIN=local "$go" env GOVERSION 2>/dev/null)"
  [[ "$(printf '%s\n' go1.26 "$gover" | sort -V | head -n 1)" == go1.26 ]] ||
    die "nats-server $NATS_CLUSTER_VERSION needs Go >= 1.26 to build, $go is ${gover:-unknown}: install a newer Go, or set NATS_CLUSTER_BIN to a nats-server >= 2.11 binary"
  mkdir -p "$dir" "$SLUICE_LOG_DIR"
  exec {lock}>"$SLUICE_CACHE/nats-server-build.lock"
  flock "$lock"
  if [[ -x "$bin" ]]; then
    exec {lock}>&-
    return 0
  fi
  log "building nats-server $NATS_CLUSTER_VERSION once into $dir (about a minute; log: $blog)"
  modjson="$(cd "$dir" && GOTOOLCHAIN=local timeout 600 "$go" mod download -json "github.com/nats-io/nats-server/v2@$NATS_CLUSTER_VERSION" 2>>"$blog")" || {
    printf '%s\n' "$modjson" >>"$blog"
    die "go mod download github.com/nats-io/nats-server/v2@$NATS_CLUSTER_VERSION failed; see $blog (is the Go module proxy reachable?)"
  }
  moddir="$(printf '%s\n' "$modjson" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
  [[ -d "$moddir" ]] || die "go mod download did not report the nats-server source folder; see $blog"
  (cd "$moddir" && GOTOOLCHAIN=local GOFLAGS=-mod=mod timeout 1200 "$go" build -trimpath -buildvcs=false -o "$bin.tmp" .) >>"$blog" 2>&1 ||
    die "building nats-server $NATS_CLUSTER_VERSION failed; see $blog (needs Go >= 1.26 and the Go module proxy)"
  mv -f "$bin.tmp" "$bin"
  exec {lock}>&-
  log "nats-server $NATS_CLUSTER_VERSION built in $((SECONDS - t0))s: $bin"
}

# Jaeger v2 (OTLP receivers, in-memory storage, query API and UI in one binary) for the trace tests
# (libs/testing startJaeger) and `npm start`. Built once from the Go module proxy into the cache: about
# 8 minutes and 2 GB of modules the first time. The module's tag v1.x is the v2 binary (cmd/jaeger).
JAEGER_VERSION=v1.76.0
jaeger_bin() { echo "$SLUICE_CACHE/jaeger-$JAEGER_VERSION/jaeger"; }

# build_jaeger: builds jaeger_bin unless it is there (idempotent; concurrent callers wait for one build).
build_jaeger() {
  local go bin dir blog modjson moddir lock t0=$SECONDS
  bin="$(jaeger_bin)"
  [[ -x "$bin" ]] && return 0
  dir="$(dirname "$bin")"
  blog="$SLUICE_LOG_DIR/jaeger-build.log"
  go="$(_go_bin)"
  [[ -n "$go" ]] ||
    die "Jaeger $JAEGER_VERSION is built from source and needs Go (not found): install Go, or set JAEGER_BIN to a Jaeger v2 binary"
  mkdir -p "$dir" "$SLUICE_LOG_DIR"
  exec {lock}>"$SLUICE_CACHE/jaeger-build.lock"
  flock "$lock"
  if [[ -x "$bin" ]]; then
    exec {lock}>&-
    return 0
  fi
  log "building Jaeger $JAEGER_VERSION once into $dir (about 8 minutes the first time; log: $blog)"
  modjson="$(cd "$dir" && GOTOOLCHAIN=local timeout 900 "$go" mod download -json "github.com/jaegertracing/jaeger@$JAEGER_VERSION" 2>>"$blog")" || {
    printf '%s\n' "$modjson" >>"$blog"
    die "go mod download github.com/jaegertracing/jaeger@$JAEGER_VERSION failed; see $blog (is the Go module proxy reachable?)"
  }
  moddir="$(printf '%s\n' "$modjson" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
  [[ -d "$moddir" ]] || die "go mod download did not report the Jaeger source folder; see $blog"
  (cd "$moddir" && GOTOOLCHAIN=local GOFLAGS=-mod=mod timeout 5400 "$go" build -trimpath -buildvcs=false -o "$bin.tmp" ./cmd/jaeger) >>"$blog" 2>&1 ||
    die "building Jaeger $JAEGER_VERSION failed; see $blog (needs a recent Go and the Go module proxy)"
  mv -f "$bin.tmp" "$bin"
  exec {lock}>&-
  log "Jaeger $JAEGER_VERSION built in $((SECONDS - t0))s: $bin"
}

# Kubernetes manifests (deploy/helm/sluice), validated offline in CI: helm built once from the Go
# module proxy, and the schemas the validator (tools/k8s-validate) reads, taken from Go modules:
# Kubernetes' OpenAPI v3 spec (k8s.io/kubernetes api/openapi-spec/v3), KEDA's and the Prometheus
# operator's CRDs (ScaledObject, ServiceMonitor, …). Both cached under $SLUICE_CACHE.
# K8S_VERSION is also the version `helm template --kube-version` renders for (helm built without the
# release ldflags assumes 1.20).
HELM_VERSION=v3.22.0
K8S_VERSION=v1.36.3
K8S_SCHEMA_VERSIONS="k8s.io/kubernetes@$K8S_VERSION github.com/kedacore/keda/v2@v2.21.0 github.com/prometheus-operator/prometheus-operator@v0.85.0"
helm_bin() { echo "$SLUICE_CACHE/helm-$HELM_VERSION/helm"; }
k8s_schema_dir() { echo "$SLUICE_CACHE/k8s-schemas-$K8S_VERSION-keda-v2.21.0-po-v0.85.0"; }

# ensure_deploy_tools: builds helm_bin and fills k8s_schema_dir unless they are there (idempotent;
# concurrent callers wait for one build), then exports HELM_BIN, K8S_SCHEMA_DIR and K8S_VERSION.
ensure_deploy_tools() {
  local go bin dir sdir blog modjson moddir mod lock t0=$SECONDS
  bin="$(helm_bin)" sdir="$(k8s_schema_dir)"
  export HELM_BIN="$bin" K8S_SCHEMA_DIR="$sdir" K8S_VERSION
  [[ -x "$bin" && -f "$sdir/.complete" ]] && return 0
  dir="$(dirname "$bin")"
  blog="$SLUICE_LOG_DIR/deploy-tools.log"
  go="$(_go_bin)"
  [[ -n "$go" ]] || die "helm $HELM_VERSION and the Kubernetes schemas come from the Go module proxy and need Go (not found)"
  mkdir -p "$dir" "$SLUICE_LOG_DIR"
  exec {lock}>"$SLUICE_CACHE/deploy-tools.lock"
  flock "$lock"
  if [[ ! -x "$bin" ]]; then
    log "building helm $HELM_VERSION once into $dir (a few minutes; log: $blog)"
    modjson="$(cd "$dir" && GOTOOLCHAIN=local timeout 600 "$go" mod download -json "helm.sh/helm/v3@$HELM_VERSION" 2>>"$blog")" ||
      die "go mod download helm.sh/helm/v3@$HELM_VERSION failed; see $blog (is the Go module proxy reachable?)"
    moddir="$(printf '%s\n' "$modjson" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
    [[ -d "$moddir" ]] || die "go mod download did not report the helm source folder; see $blog"
    (cd "$moddir" && GOTOOLCHAIN=local GOFLAGS=-mod=mod timeout 2400 "$go" build -trimpath -buildvcs=false -o "$bin.tmp" ./cmd/helm) >>"$blog" 2>&1 ||
      die "building helm $HELM_VERSION failed; see $blog"
    mv -f "$bin.tmp" "$bin"
  fi
  if [[ ! -f "$sdir/.complete" ]]; then
    log "fetching the Kubernetes, KEDA and Prometheus operator schemas once into $sdir (log: $blog)"
    rm -rf "$sdir" && mkdir -p "$sdir/openapi-v3" "$sdir/crds"
    for mod in $K8S_SCHEMA_VERSIONS; do
      modjson="$(cd "$dir" && GOTOOLCHAIN=local timeout 600 "$go" mod download -json "$mod" 2>>"$blog")" ||
        die "go mod download $mod failed; see $blog (is the Go module proxy reachable?)"
      moddir="$(printf '%s\n' "$modjson" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
      [[ -d "$moddir" ]] || die "go mod download did not report the folder of $mod; see $blog"
      case "$mod" in
        k8s.io/kubernetes@*) cp "$moddir"/api/openapi-spec/v3/*.json "$sdir/openapi-v3/" ;;
        *keda*) cp "$moddir"/config/crd/bases/keda.sh_*.yaml "$sdir/crds/" ;;
        *prometheus-operator*) cp "$moddir"/example/prometheus-operator-crd/monitoring.coreos.com_*.yaml "$sdir/crds/" ;;
      esac || die "$mod has no schema files where expected; see $blog"
    done
    chmod -R u+w "$sdir" && touch "$sdir/.complete"
  fi
  exec {lock}>&-
  log "helm $HELM_VERSION and the Kubernetes schemas ready in $((SECONDS - t0))s"
}

# chromium_bin: Debian's chromium for the console's browser tests (apps/console, driven by playwright-core).
chromium_bin() { command -v chromium 2>/dev/null || command -v chromium-browser 2>/dev/null || true; }

# ensure_chromium: installs Debian's `chromium` when missing (apt-get, once) and prints its path.
ensure_chromium() {
  [[ -n "$(chromium_bin)" ]] || apt_install chromium chromium
  [[ -n "$(chromium_bin)" ]] || die "chromium is not on PATH after installing it; see $SLUICE_LOG_DIR/apt.log"
  chromium_bin
}

_svc_ferretdb_start() {
  local bin data state flog
  bin="$(ferretdb_bin)"
  data="$SLUICE_CACHE/ferretdb-data"
  state="$SLUICE_CACHE/ferretdb-state"
  flog="$SLUICE_LOG_DIR/ferretdb.log"
  mkdir -p "$data" "$state" "$SLUICE_LOG_DIR"
  printf '\n--- %s starting %s\n' "$(date -u +%FT%TZ)" "$bin" >>"$flog"
  setsid "$bin" --listen-addr=127.0.0.1:27017 --handler=sqlite --sqlite-url="file:$data/" \
    --state-dir="$state" --telemetry=disable --debug-addr=- --log-level=error \
    </dev/null >>"$flog" 2>&1 &
  echo $! >"$SLUICE_CACHE/ferretdb.pid"
}

# ------------------------------------------------------------------------------- post-start checks

_check_nats_jetstream() {
  local info
  # shellcheck disable=SC2016 # expanded by the inner bash
  info="$(timeout 3 bash -c 'exec 3<>/dev/tcp/127.0.0.1/4222; IFS= read -r -t 2 line <&3; printf "%s" "$line"' 2>/dev/null || true)"
  [[ "$info" == INFO* ]] || die "127.0.0.1:4222 answers but not like a NATS server (got '${info:0:60}'); free the port or point NATS_URL elsewhere"
  [[ "$info" == *'"jetstream":true'* ]] ||
    die "the NATS server on 127.0.0.1:4222 runs without JetStream; restart it with '-js -sd <dir>' (see docs/OPERATIONS.md)"
}

_psql() { PGCONNECT_TIMEOUT=5 timeout 20 psql -X -q -w -h 127.0.0.1 -p 5432 -U postgres "$@"; }

_check_postgres() {
  if ! command -v psql >/dev/null 2>&1; then
    warn "psql not found: cannot check that databases 'test' and 'sluice' exist and trust auth works"
    return 0
  fi
  if ! _psql -d postgres -Atc 'select 1' >/dev/null 2>&1; then
    local hba
    hba="/etc/postgresql/$(_pg_version)/main/pg_hba.conf"
    [[ -f "$hba" ]] ||
      die "PostgreSQL on 127.0.0.1:5432 refuses user postgres without a password and $hba is not there to fix; allow trust for 127.0.0.1 or set PG_URL"
    log "PostgreSQL: allowing trust auth over 127.0.0.1/::1 in $hba (local development server)"
    as_root sed -i '1i # sluice (scripts/lib.sh): local development and tests\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
    as_root pg_ctlcluster --skip-systemctl-redirect "$(_pg_version)" main reload >&2 || true
    sleep 1
    _psql -d postgres -Atc 'select 1' >/dev/null ||
      die "PostgreSQL still refuses 'psql -h 127.0.0.1 -U postgres' after enabling trust in $hba; see $(_svc_log postgres)"
  fi
  # `test` for the tests, `sluice` for `npm start` (the services' default database).
  local db
  for db in test sluice; do
    if [[ "$(_psql -d postgres -Atc "select 1 from pg_database where datname = '$db'")" != 1 ]]; then
      log "PostgreSQL: creating database $db"
      _psql -d postgres -c "create database $db" >/dev/null || die "cannot create database '$db'; see $(_svc_log postgres)"
    fi
  done
}

_check_mongo() {
  if [[ ! -d "$SLUICE_ROOT/node_modules/mongodb" ]]; then
    warn "node_modules/mongodb missing: only checked that 127.0.0.1:27017 accepts connections"
    return 0
  fi
  local out
  # shellcheck disable=SC2016 # JavaScript, not shell
  out="$(cd "$SLUICE_ROOT" && timeout 30 node -e '
    const { MongoClient } = require("mongodb");
    const c = new MongoClient(process.argv[1], { serverSelectionTimeoutMS: 10000 });
    c.connect()
      .then(() => c.db("admin").command({ ping: 1 }))
      .then((r) => { if (r.ok !== 1) throw new Error("ping answered " + JSON.stringify(r)); })
      .then(() => c.close(), (e) => c.close().then(() => { throw e; }))
      .catch((e) => { console.error(e.message); process.exit(1); });
  ' "mongodb://127.0.0.1:27017" 2>&1)" ||
    die "the MongoDB-wire server on 127.0.0.1:27017 does not answer ping ($out); see $(_svc_log ferretdb)"
}

# ------------------------------------------------------------------------------------------- main

export_service_env() {
  export NATS_URL="${NATS_URL:-nats://127.0.0.1:4222}"
  export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
  export PG_URL="${PG_URL:-postgres://postgres@127.0.0.1:5432/test}"
  export MONGO_URL="${MONGO_URL:-mongodb://127.0.0.1:27017}"
  export AMQP_URL="${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672}"
  export MQTT_URL="${MQTT_URL:-mqtt://127.0.0.1:1883}"
}

# The services every project uses; the others start only when asked for.
SLUICE_CORE_SERVICES="nats redis postgres ferretdb"
SLUICE_ON_DEMAND_SERVICES="rabbitmq mosquitto"

# sluice_services: the services to ensure. SLUICE_SERVICES when set (empty: none, e.g. when docker
# compose provides them); else the core ones plus each on-demand service that some project asks for
# with the tag "needs:<service>" in its project.json (e.g. an exporter to RabbitMQ: "needs:rabbitmq").
sluice_services() {
  if [[ -n "${SLUICE_SERVICES+set}" ]]; then
    printf '%s\n' "${SLUICE_SERVICES//,/ }"
    return 0
  fi
  local services=$SLUICE_CORE_SERVICES svc
  for svc in $SLUICE_ON_DEMAND_SERVICES; do
    if grep -qs --include=project.json -r -F "\"needs:$svc\"" "$SLUICE_ROOT/apps" "$SLUICE_ROOT/libs" "$SLUICE_ROOT/tools"; then
      services+=" $svc"
    fi
  done
  printf '%s\n' "$services"
}

ensure_services() {
  local services
  services="$(sluice_services)"
  local svc port started=() t0=$SECONDS
  mkdir -p "$SLUICE_LOG_DIR"

  # 1. start whatever is not answering (installing or building it first when needed)
  for svc in $services; do
    port="$(_svc_port "$svc")"
    port_open "$port" && continue
    if ! "_svc_${svc}_installed"; then
      if [[ $svc == ferretdb ]]; then build_ferretdb; else apt_install "$svc" "$(_svc_package "$svc")"; fi
      port_open "$port" && continue # the package's own scripts may have started it
    fi
    log "starting $svc (127.0.0.1:$port)"
    "_svc_${svc}_start" || die "starting $svc failed; see $(_svc_log "$svc")"
    started+=("$svc")
  done

  # 2. wait for the ones we started (they boot in parallel; RabbitMQ is the slow one)
  for svc in "${started[@]}"; do
    wait_port "$svc" "$(_svc_port "$svc")" "$(_svc_timeout "$svc")" "$(_svc_log "$svc")"
    log "$svc is up"
  done

  # 3. check they are the right thing, configured the way the tests need
  for svc in $services; do
    case $svc in
      nats) _check_nats_jetstream ;;
      postgres) _check_postgres ;;
      ferretdb) _check_mongo ;;
    esac
  done

  export_service_env
  log "services ready in $((SECONDS - t0))s: ${services:-none managed (SLUICE_SERVICES is empty)}"
}
