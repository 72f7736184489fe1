# syntax=docker/dockerfile:1
# Switchyard image: one binary for every role. `switchyard serve` runs edge and router in
# one process; `serve --roles edge` / `--roles router` run them apart (the cluster), and
# `switchyard migrate` applies the PostgreSQL schema. Configuration: a TOML file via
# --config (or SWITCHYARD_CONFIG) and SWITCHYARD_<SECTION>__<KEY> variables; see
# deploy/switchyard.toml.

FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
RUN cargo build --release -p switchyard --locked \
    && install -m 0755 target/release/switchyard /switchyard

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 switchyard \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home \
       --shell /usr/sbin/nologin switchyard \
    && mkdir -p /data \
    && chown 10001:10001 /data
COPY --from=builder /switchyard /usr/local/bin/switchyard
USER 10001:10001
WORKDIR /data
# The working directory holds `data_dir` (default `data`: the embedded SQLite file and the
# development certificate); set `data_dir` to move it.
VOLUME ["/data"]
# 5222: client STARTTLS (RFC 6120); 5223: client direct TLS (XEP-0368); 5443: client
# XMPP over WebSocket (RFC 7395, /xmpp-websocket; XEP-0156 host-meta); 7400: router gRPC
# for edges; 9400: admin HTTP (/metrics, /healthz, /readyz, /api/v1).
EXPOSE 5222 5223 5443 7400 9400
# SIGTERM drains: unready and not accepting, then <system-shutdown/> after
# timeouts.drain_delay_secs, within timeouts.shutdown_grace_secs.
STOPSIGNAL SIGTERM
# Asks the local admin listener (admin.listen) for /readyz; no curl needed.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["switchyard", "health", "--ready"]
ENTRYPOINT ["switchyard"]
CMD ["serve"]
