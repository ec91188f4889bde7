# stowage: build with `docker build -t stowage .`, run with
# `docker run -p 8080:8080 -v stowage-data:/data stowage`.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml build.rs ./
COPY src ./src
COPY benches ./benches
COPY migrations ./migrations
COPY config ./config
RUN cargo build --release --locked

FROM debian:bookworm-slim
# ca-certificates for TLS; ffmpeg (and ffprobe) for media probing and re-encoding.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates ffmpeg \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --gid 10001 stowage \
    && useradd --uid 10001 --gid stowage --no-create-home --home-dir /data --shell /usr/sbin/nologin stowage \
    && mkdir -p /data \
    && chown stowage:stowage /data
COPY --from=build /src/target/release/stowage /usr/local/bin/stowage
COPY --from=build /src/config/default.toml /etc/stowage/default.toml
# Lets `docker exec CONTAINER stowage ...` (keys create, folder ...) find the database and admin.key.
ENV STOWAGE__DATA_DIR=/data
VOLUME /data
USER stowage
EXPOSE 8080
ENTRYPOINT ["stowage"]
CMD ["serve", "--data-dir", "/data", "--listen", "0.0.0.0:8080"]
