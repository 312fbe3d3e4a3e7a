# Builds the three binaries and the frontend into one image.
FROM rust:1.95-bookworm AS build
RUN rustup target add wasm32-unknown-unknown
WORKDIR /src
COPY . .
RUN WB=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/version = |"/,""); print; exit}' Cargo.lock) \
 && cargo install wasm-bindgen-cli --version "$WB" \
 && bash scripts/build-frontend.sh \
 && cargo build --release --bins

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates openssl && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /src/target/release/gridwatch-ingest /src/target/release/gridwatch-backend /src/target/release/gridwatch-sim /src/target/release/gridwatch-admin /src/target/release/gridwatch-notify /usr/local/bin/
COPY --from=build /src/frontend/dist /app/frontend/dist
COPY --from=build /src/data /app/data
COPY --from=build /src/deploy /app/deploy
ENV GRIDWATCH__REGISTRY=/app/data/beilun-registry.json
