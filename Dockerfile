# gatehouse container image: build with the Rust toolchain, run on Debian slim.
#   docker build -t gatehouse .
#   docker run -p 443:8443 -v $PWD/config.yaml:/etc/gatehouse/config.yaml:ro gatehouse
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p gatehouse \
 && install -m 0755 target/release/gatehouse /usr/local/bin/gatehouse

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /var/lib/gatehouse --create-home gatehouse
COPY --from=build /usr/local/bin/gatehouse /usr/local/bin/gatehouse
USER gatehouse
WORKDIR /var/lib/gatehouse
EXPOSE 8443
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/gatehouse"]
CMD ["run", "-c", "/etc/gatehouse/config.yaml", "--log-format", "json"]
