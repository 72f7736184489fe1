# syntax=docker/dockerfile:1
# Switchyard single-node image: `switchyard serve` runs the edge and router roles in one
# process. Configuration: a TOML file via --config (or SWITCHYARD_CONFIG) and
# SWITCHYARD_<SECTION>__<KEY> variables; see deploy/switchyard.toml.

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
# SQLite database and the generated development certificate live here.
ENV SWITCHYARD_DATA_DIR=/data
VOLUME ["/data"]
# 5222: client STARTTLS (RFC 6120); 5223: client direct TLS (XEP-0368).
EXPOSE 5222 5223
# SIGTERM drains: sessions get <system-shutdown/> within timeouts.shutdown_grace_secs.
STOPSIGNAL SIGTERM
ENTRYPOINT ["switchyard"]
CMD ["serve"]
