#!/usr/bin/env bash
# Sourced by the build and test scripts: system packages the native build needs.
# paho-mqtt builds its bundled C client with CMake.
if ! command -v cmake >/dev/null; then
  echo "build-deps.sh: installing cmake (for paho-mqtt's bundled C client)" >&2
  apt-get update >/dev/null && apt-get install -y cmake >/dev/null
fi
