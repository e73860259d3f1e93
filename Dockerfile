# echo-server production image.
#
#   deps -> lint -> test -> bundle -> build   (builder: Node 24 with npm and a shell)
#   users                              (passwd/group with the unprivileged user)
#   runtime-facts                      (the runtime base's Node version, for the SBOM)
#   final                              (runtime: no shell, no npm, no curl)
#
# Each builder stage starts FROM the previous one, so the final image cannot be
# produced without lint and tests having passed: BuildKit cannot skip them.
# Multi-arch (`--platform linux/arm64`): every builder stage runs on the build
# machine's own platform ($BUILDPLATFORM), so nothing is emulated and deps, lint,
# test and bundle are shared from the cache between the per-platform builds; only
# the SBOM (which lists the target base's packages) and the final stage, which runs
# nothing, are per target platform.
# Build with `npm run image` (fills the label arguments from git and package.json);
# `npm run image -- --airgap` builds against locally produced base images.

ARG BUILDER_IMAGE=node:24-trixie-slim
ARG RUNTIME_IMAGE=gcr.io/distroless/nodejs24-debian13:nonroot

FROM ${RUNTIME_IMAGE} AS runtime-base

# --- what the SBOM needs to know about the runtime base: its Node binary's version and
# architecture, read from the file (the target platform's binary is never run)
FROM --platform=$BUILDPLATFORM ${BUILDER_IMAGE} AS runtime-facts
COPY scripts/runtime-facts.ts /tmp/
RUN --mount=type=bind,from=runtime-base,target=/runtime-base \
    node /tmp/runtime-facts.ts /runtime-base/nodejs/bin/node /tmp/node.json

# --- dependencies: only the manifest and lockfile, so edits elsewhere keep this layer
FROM --platform=$BUILDPLATFORM ${BUILDER_IMAGE} AS deps
WORKDIR /src
COPY package.json package-lock.json ./
# The npm cache survives between builds. A CA bundle for a TLS-intercepting proxy
# can be passed as the optional secret `npm_ca`; it never lands in a layer.
RUN --mount=type=cache,target=/root/.npm,sharing=locked \
    --mount=type=secret,id=npm_ca \
    if [ -s /run/secrets/npm_ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/npm_ca; fi; \
    npm ci --no-audit --no-fund --loglevel=warn

# --- type check and lint (the article's `go vet`)
FROM deps AS lint
COPY tsconfig.json eslint.config.js .prettierrc.json .prettierignore ./
COPY scripts/build.ts ./scripts/
# What build.ts and sbom.ts share: command-line parsing, git facts, the esbuild target.
COPY scripts/lib ./scripts/lib/
COPY src ./src
COPY test ./test
ARG LINT_FLAGS=""
RUN npm run --silent lint -- $LINT_FLAGS

# --- tests (the article's `go test`): a failing test fails the build
FROM lint AS test
# The test:code script puts $TEST_FLAGS before the test files, where node reads options.
ARG TEST_FLAGS=""
RUN npm run --silent test:code

# --- the production bundle (the article's `go build`): the same for every platform
FROM test AS bundle
ARG BUILD_FLAGS=""
ARG COMMIT_HASH=""
ARG CREATED_DATE=""
# Only makes this stage run again when changed (the reproducibility test rebuilds the
# application layer this way); it reaches no file.
ARG REBUILD=""
RUN COMMIT_HASH="$COMMIT_HASH" CREATED_DATE="$CREATED_DATE" npm run --silent build -- --metafile-out /tmp/meta.json $BUILD_FLAGS

# --- its SBOM, per target platform
FROM bundle AS build
ARG COMMIT_HASH=""
ARG CREATED_DATE=""
# The SBOM lists the Debian packages of the runtime base from its dpkg status files.
COPY --from=runtime-base /var/lib/dpkg/status.d/ /sbom-base/status.d/
COPY --from=runtime-base /usr/share/doc/ /sbom-base/doc/
COPY --from=runtime-base /etc/os-release /sbom-base/os-release
COPY --from=runtime-facts /tmp/node.json /sbom-base/node.json
COPY scripts/sbom.ts ./scripts/
# Reproducible: no clock reaches a file (the dates are the commit's), and every file
# and the directory get the commit time as mtime, so the application layer has the
# same digest on every build of the same commit.
RUN epoch="${CREATED_DATE:-1970-01-01T00:00:00Z}"; \
    node scripts/sbom.ts --metafile /tmp/meta.json --lock package-lock.json --package package.json --base /sbom-base \
      --created "$epoch" --commit "${COMMIT_HASH:-unknown}" --out dist/sbom.cdx.json \
 && rm -rf /out && mkdir /out && cp -a dist /out/app && chmod -R u=rwX,go=rX /out/app \
 && find /out -exec touch -h -d "$epoch" {} +

# --- passwd and group: the runtime base's entries plus the unprivileged user
FROM --platform=$BUILDPLATFORM ${BUILDER_IMAGE} AS users
ARG UID=8080
ARG USER=docker-app
COPY --from=runtime-base /etc/passwd /etc/group /out/etc/
RUN case "$UID" in ''|*[!0-9]*) echo "UID must be numeric, got '$UID'" >&2; exit 1;; esac; \
    case "$USER" in ''|*[!a-z0-9_-]*) echo "USER must match [a-z0-9_-]+, got '$USER'" >&2; exit 1;; esac; \
    echo "${USER}:x:${UID}:${UID}:echo-server:/nonexistent:/sbin/nologin" >> /out/etc/passwd; \
    echo "${USER}:x:${UID}:" >> /out/etc/group; \
    touch -d 1970-01-01T00:00:00Z /out/etc /out/etc/passwd /out/etc/group

# --- runtime
FROM runtime-base
ARG RUNTIME_IMAGE
ARG UID=8080
ARG PORT=8080
ARG VERSION=""
ARG ENVIRONMENT="production"
ARG BRANCH=""
ARG COMMIT_HASH=""
ARG CREATED_DATE=""

# Copied as /out/etc with fixed times, so this layer is the same on every build.
COPY --from=users /out/ /
# The bundle, the on-demand self-signed certificate module, the licences of
# bundled code and the SBOM (/app/sbom.cdx.json). Owned by root, read-only to the
# server's user: it cannot change its own code.
# Copied as /out/app so that the directory itself keeps its fixed time too.
COPY --from=build /out/ /

ENV NODE_ENV=production \
    ECHO_PORT=${PORT}
# The TCP and UDP echoes are off unless the operator sets --tcp-port/--udp-port
# (ECHO_TCP_PORT/ECHO_UDP_PORT); these are the documented ports for them, the ones the
# Compose file, the Swarm stack and the Kubernetes overlay use. EXPOSE opens nothing.
EXPOSE ${PORT} 7000/tcp 7001/udp
WORKDIR /app
# Numeric UID:GID, so Kubernetes runAsNonRoot can verify it without reading /etc/passwd.
USER ${UID}:${UID}
STOPSIGNAL SIGTERM
# The server probes itself: no curl, no shell. The article's timings.
HEALTHCHECK --interval=30s --timeout=30s --start-period=5s --retries=3 \
    CMD ["/nodejs/bin/node", "--disable-sigusr1", "/app/echo-server.cjs", "healthcheck"]
# node is PID 1 and receives SIGTERM itself; never started through npm or a shell.
ENTRYPOINT ["/nodejs/bin/node", "--disable-sigusr1", "/app/echo-server.cjs"]

LABEL org.opencontainers.image.title="echo-server" \
      org.opencontainers.image.description="A production-grade HTTP echo server: shows exactly what reaches a backend behind proxies, load balancers and meshes." \
      org.opencontainers.image.url="https://github.com/echo-server/echo-server" \
      org.opencontainers.image.source="https://github.com/echo-server/echo-server" \
      org.opencontainers.image.documentation="https://github.com/echo-server/echo-server#readme" \
      org.opencontainers.image.authors="echo-server contributors" \
      org.opencontainers.image.vendor="echo-server contributors" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT_HASH}" \
      org.opencontainers.image.created="${CREATED_DATE}" \
      org.opencontainers.image.ref.name="${BRANCH}" \
      org.opencontainers.image.base.name="${RUNTIME_IMAGE}" \
      io.github.echo-server.environment="${ENVIRONMENT}"
