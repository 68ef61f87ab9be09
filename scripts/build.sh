#!/usr/bin/env bash
# Builds kube-api-lb into build/ (or $BUILD_DIR; BUILD_TARGET=kube-api-lb for the binary alone)
# with extra CMake arguments passed through.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}" "$@" >/dev/null
cmake --build "$BUILD_DIR" -j"$(nproc)" ${BUILD_TARGET:+--target "$BUILD_TARGET"}
