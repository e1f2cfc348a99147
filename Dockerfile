# realtime-server: a two-stage build, a small non-root runtime image.
#   docker build -t realtime-server .
#   docker run -p 8080:8080 -v realtime-data:/var/lib/realtime \
#     -e REALTIME_JWT_SECRET=... -e REALTIME_ADMIN_TOKEN=... realtime-server
# docs/deploy.md has the rest (PostgreSQL, Redis, nginx, two nodes).

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin realtime-server \
 && strip target/release/realtime-server

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/realtime --create-home realtime
COPY --from=build /src/target/release/realtime-server /usr/local/bin/realtime-server
USER realtime
WORKDIR /var/lib/realtime
# The embedded SQLite file lives here unless DATABASE_URL names PostgreSQL.
VOLUME ["/var/lib/realtime"]
ENV REALTIME_HOST=0.0.0.0 \
    REALTIME_PORT=8080 \
    REALTIME__DATABASE__DATA_DIR=/var/lib/realtime \
    REALTIME__SERVER__ENVIRONMENT=production
EXPOSE 8080
# `status` reads /health and /ready and exits 1 when the server is not ready.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["realtime-server", "status"]
ENTRYPOINT ["realtime-server"]
CMD ["serve"]
