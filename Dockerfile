# Builds every microdash binary and the dashboard; the same image runs the server, the worker
# and the load generator (the compose file picks the command).
FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm cmake && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN ./scripts/build-web.sh && cargo build --release --locked -p microdash-bins

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl procps && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/microdash /src/target/release/microdash-loadgen /usr/local/bin/
COPY --from=build /src/web/dist /usr/share/microdash/web
RUN useradd --system --home /var/lib/microdash --create-home microdash
USER microdash
WORKDIR /var/lib/microdash
ENV MICRODASH_LISTEN_ADDR=0.0.0.0:8080 \
    MICRODASH_DATABASE_URL=sqlite:///var/lib/microdash/microdash.db \
    MICRODASH_WEB_DIR=/usr/share/microdash/web
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s CMD curl -fsS http://127.0.0.1:8080/livez || exit 1
ENTRYPOINT ["microdash"]
CMD ["serve"]
