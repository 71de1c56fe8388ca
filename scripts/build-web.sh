#!/usr/bin/env bash
# Build the Yew dashboard into web/dist: wasm (size-optimised), its JS glue, the chart bridge,
# uPlot itself (from node_modules: no CDN), Tailwind CSS, and gzip-compressed copies that the
# server sends to browsers accepting gzip.
# Installs what it needs on first use: the wasm32 target (or Debian's rustc-web, see
# scripts/wasm-env.sh), wasm-bindgen-cli at the version web/Cargo.toml pins, and the npm tools.
set -euo pipefail
cd "$(dirname "$0")/.."

WASM_BINDGEN_VERSION=$(sed -n 's/^wasm-bindgen = "=\([0-9.]*\)".*/\1/p' web/Cargo.toml)
if ! wasm-bindgen --version 2>/dev/null | grep -qx "wasm-bindgen $WASM_BINDGEN_VERSION"; then
  echo "build-web: installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (a few minutes, once)" >&2
  # Not --locked: the registry snapshot here lacks one of its locked dependencies.
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" >&2
fi
if [ ! -x web/node_modules/.bin/tailwindcss ] || [ ! -f web/node_modules/uplot/dist/uPlot.iife.min.js ]; then
  (cd web && npm ci --no-audit --no-fund >&2)
fi

# shellcheck source=scripts/wasm-env.sh
source scripts/wasm-env.sh
"$WASM_CARGO" build --profile wasm --target wasm32-unknown-unknown -p microdash-web --target-dir target/wasm

rm -rf web/dist.new && mkdir -p web/dist.new
wasm-bindgen --target web --no-typescript --remove-name-section --remove-producers-section --out-dir web/dist.new \
  target/wasm/wasm32-unknown-unknown/wasm/microdash_web.wasm
cp web/static/index.html web/static/prefetch.js web/static/boot.js web/static/chart-bridge.js web/dist.new/
cp web/node_modules/uplot/dist/uPlot.iife.min.js web/node_modules/uplot/dist/uPlot.min.css web/dist.new/
(cd web && node_modules/.bin/tailwindcss -i static/app.css -o dist.new/app.css --minify 2>/dev/null)
find web/dist.new -type f \( -name '*.wasm' -o -name '*.js' -o -name '*.css' -o -name '*.html' \) -exec gzip -9 -k -n {} +
rm -rf web/dist && mv web/dist.new web/dist
ls -l web/dist >&2
