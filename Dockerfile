# The wasmswitch host as a container image: the `wasmswitch` binary on Debian, running as an
# unprivileged user, its SQLite database and compiled-plugin cache in the /var/lib/wasmswitch
# volume (or PostgreSQL through DATABASE_URL).
#
#   docker build -t wasmswitch .
#   docker run -p 8080:8080 -v wasmswitch-data:/var/lib/wasmswitch wasmswitch
#
# The first start prints an operator API key to the log (`docker logs`). Plugins are uploaded
# through the API; none are built into the image.

ARG RUST_IMAGE=rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
WORKDIR /src
# The workspace (its members' manifests are needed to resolve it) and what the host includes.
COPY Cargo.toml Cargo.lock wasmswitch.example.toml ./
COPY host host
COPY sdk sdk
COPY plugins plugins
COPY wit wit
COPY migrations migrations
RUN cargo build --release --locked -p wasmswitch --bin wasmswitch \
    && cp target/release/wasmswitch /usr/local/bin/wasmswitch \
    && rm -rf target
# The release profile keeps debug info for profiling; the image needs only the symbols that
# make a backtrace readable.
RUN strip --strip-debug /usr/local/bin/wasmswitch

FROM ${RUNTIME_IMAGE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/wasmswitch --create-home wasmswitch
COPY --from=build /usr/local/bin/wasmswitch /usr/local/bin/wasmswitch
COPY wasmswitch.example.toml /usr/share/doc/wasmswitch/wasmswitch.example.toml
USER wasmswitch
WORKDIR /var/lib/wasmswitch
# Listen on every interface inside the container; the data folder is the volume.
ENV WASMSWITCH_API_LISTEN=0.0.0.0:8080 \
    DATABASE_URL=sqlite:///var/lib/wasmswitch/wasmswitch.db \
    WASMSWITCH_PLUGINS_CACHE_DIR=/var/lib/wasmswitch/cache
VOLUME /var/lib/wasmswitch
EXPOSE 8080
HEALTHCHECK --interval=5s --timeout=3s --start-period=5s \
    CMD ["wasmswitch", "health", "http://127.0.0.1:8080/readyz"]
ENTRYPOINT ["wasmswitch"]
CMD ["serve"]
