# The scalardb-verify image: the release build, then a slim Debian runtime with what
# `drill --runtime local` needs (PostgreSQL and MariaDB servers and clients, bubblewrap for
# its sandbox, a Java runtime for a Cassandra node), so drills run inside it without a
# Docker socket; `--runtime docker` works with the engine's socket mounted.
#
#   docker build -t scalardb-verify .
#   docker run --rm --network none -v /srv/backups:/backups:ro \
#       --security-opt seccomp=unconfined --security-opt systempaths=unconfined \
#       scalardb-verify drill /backups/nightly.dump --runtime local
#
# The drill's bubblewrap sandbox makes user, PID and network namespaces and mounts a /proc
# of its own: the default seccomp profile forbids the first, and the engine's masks over
# /proc forbid the last, hence the two options. No capability is added and the tool runs as
# the image's unprivileged account (uid 10001).
#
# BASE and BUILDER name the two base images (Debian bookworm, and Rust on bookworm). Where
# no registry is reachable, BASE may be any local Debian bookworm image with apt sources
# (build with --network host if the build's network has no DNS), and PREBUILT takes a
# binary from the build context instead of compiling (tests/drill/image.rs does both).
ARG BASE=debian:bookworm-slim
ARG BUILDER=rust:1.95-slim-bookworm

FROM ${BUILDER} AS build
ARG PREBUILT=
WORKDIR /src
COPY . .
RUN if [ -n "$PREBUILT" ]; then \
        install -D -m 0755 "$PREBUILT" /out/scalardb-verify; \
    else \
        cargo build --release --locked --bin scalardb-verify \
        && install -D -m 0755 target/release/scalardb-verify /out/scalardb-verify; \
    fi

FROM ${BASE}
ARG JAVA=openjdk-17-jre-headless
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        postgresql-15 postgresql-client-15 mariadb-server mariadb-client bubblewrap \
        ca-certificates ${JAVA} \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /usr/share/doc/* /usr/share/man/* \
        /var/lib/postgresql/* /etc/postgresql/*/main /var/lib/mysql/* \
    && useradd --system --uid 10001 --user-group --create-home --home-dir /home/verify verify
COPY --from=build /out/scalardb-verify /usr/local/bin/scalardb-verify
ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8
USER 10001:10001
WORKDIR /home/verify
ENTRYPOINT ["/usr/local/bin/scalardb-verify"]
CMD ["--help"]
