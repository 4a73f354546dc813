# syntax=docker/dockerfile:1
# One image recipe for every Sluice service:
#   docker build --build-arg APP=ingestion -t sluice/ingestion .
# The app is bundled by esbuild (tools/build/build.mjs: the @sluice/* libraries are inlined, npm
# packages stay external), so the runtime image holds dist/apps/$APP/main.js (and the instrumentation
# preload.js) plus production deps; the console also its built pages (dist/apps/console/public).

ARG NODE_IMAGE=node:24-slim

# --- manifests: only package.json files and the lock, so `npm ci` layers are reused until they change
FROM ${NODE_IMAGE} AS manifests
WORKDIR /repo
COPY . .
RUN find . -path ./node_modules -prune -o -type f ! -name package.json ! -name package-lock.json -print0 \
      | xargs -0 rm -f \
 && find . -depth -type d -empty -delete

# --- deps: everything needed to build
FROM ${NODE_IMAGE} AS deps
WORKDIR /repo
COPY --from=manifests /repo ./
# The lock is written on a machine whose registry lacks some other platforms' optional binaries, and
# npm ci refuses such a lock; npm install from the same lock is the fallback (see scripts/lib.sh npm_ci).
RUN --mount=type=cache,target=/root/.npm \
    npm ci --no-audit --no-fund || npm install --no-audit --no-fund

# --- build: bundle one app
FROM deps AS build
ARG APP
RUN test -n "$APP" || (echo "build with --build-arg APP=<name of a folder in apps/>" >&2; exit 1)
COPY . .
# An app with web pages (apps/console: apps/<app>/vite.config.mts) builds them first, into
# dist/apps/<app>/public beside main.js, where the service serves them from.
RUN if [ -f "apps/$APP/vite.config.mts" ]; then \
      node node_modules/vite/bin/vite.js build --config "apps/$APP/vite.config.mts"; \
    fi \
 && node tools/build/build.mjs "apps/$APP"

# --- prod-deps: runtime dependencies only
FROM ${NODE_IMAGE} AS prod-deps
WORKDIR /repo
COPY --from=manifests /repo ./
RUN --mount=type=cache,target=/root/.npm \
    npm ci --omit=dev --no-audit --no-fund || npm install --omit=dev --no-audit --no-fund

# --- runtime
FROM ${NODE_IMAGE} AS runtime
ARG APP
ENV APP=${APP} \
    NODE_ENV=production \
    SLUICE_ENV=production \
    OPS_PORT=9400 \
    NODE_OPTIONS=--enable-source-maps
WORKDIR /app
COPY --from=prod-deps --chown=root:root /repo/node_modules ./node_modules
COPY --from=build --chown=root:root /repo/dist/apps/${APP} ./dist/apps/${APP}
# The code stays root-owned and read-only to the service, which runs as the image's unprivileged user;
# /var/lib/sluice is its one writable place (volumes mounted below it inherit the ownership).
RUN mkdir -p /var/lib/sluice && chown node:node /var/lib/sluice
USER node
EXPOSE 9400
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.OPS_PORT || 9400) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# exec: node replaces the shell and receives SIGTERM itself (compose also adds an init process).
# The OpenTelemetry instrumentation preload (built beside main.js) patches pg, ioredis, mongodb,
# grpc-js and http before the service loads them; OTEL_SDK_DISABLED=true turns it off.
CMD ["sh", "-c", "exec node --require ./dist/apps/$APP/preload.js dist/apps/$APP/main.js"]
