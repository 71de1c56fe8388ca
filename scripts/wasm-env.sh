#!/usr/bin/env bash
# Sourced by the build and test scripts: makes `cargo build --target wasm32-unknown-unknown`
# work. rustup's wasm32 target is used when it can be added; where it cannot (a machine whose
# rustup reaches no download server), Debian's Rust with the standard library's source builds
# std for wasm32 (see the toolchain notes in shared/toolchain/wasm.md).
# After sourcing: $WASM_CARGO is the cargo to call; the environment is set for it.

if timeout 120 rustup target add wasm32-unknown-unknown >/dev/null 2>&1; then
  WASM_CARGO=cargo
else
  if ! dpkg -s rustc-web cargo-web rust-web-src lld-22 >/dev/null 2>&1; then
    echo "wasm-env.sh: installing Debian's rustc-web toolchain for wasm32" >&2
    apt-get update >/dev/null && apt-get install -y rustc-web cargo-web rust-web-src lld-22 >/dev/null
  fi
  export PATH=/usr/bin:$PATH RUSTC_BOOTSTRAP=1 CARGO_UNSTABLE_BUILD_STD=std,panic_abort
  WASM_CARGO=/usr/bin/cargo
fi
export WASM_CARGO
