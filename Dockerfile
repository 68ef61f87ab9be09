# kube-api-lb image: a static binary on an empty filesystem (no shell, no package manager), for
# linux/amd64 and linux/arm64.
#
#   docker build -t kube-api-lb:0.1.0 .                       (or: buildah bud, podman build)
#   docker build --build-arg BASE_IMAGE=<your mirror>/debian:bookworm -t kube-api-lb:0.1.0 .
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     -t registry.example/kube-api-lb:0.1.0 --push .          (one tag, both architectures)
#
# The build stage runs on the builder's own platform (BUILDPLATFORM) and cross-compiles for the
# target (TARGETARCH) with Debian's multiarch packages, so no emulation is needed to compile
# (scripts/build-static.sh picks cmake/toolchain-aarch64-linux-gnu.cmake for arm64 on an amd64
# builder, cmake/toolchain-x86_64-linux-gnu.cmake for amd64 on an arm64 one).
# With no arguments the binary auto-detects /etc/kube-api-lb/config.yaml, then
# /etc/nginx/nginx.conf, then /usr/local/etc/haproxy/haproxy.cfg, so the image is a drop-in for
# Kubespray's nginx-proxy image (nginx_image_repo / nginx_image_tag). No USER is set: Kubespray's
# /etc/nginx is 0700 root. The manifest from `kube-api-lb manifest` runs it as 65532 instead.
# Without network access to a base image, scripts/build-image.sh builds the same final stage
# for both architectures from binaries compiled on the host, and the manifest list over them.

ARG BASE_IMAGE=debian:bookworm

FROM --platform=$BUILDPLATFORM ${BASE_IMAGE} AS build
ARG TARGETARCH
# The target's -dev packages (":$TARGETARCH"; the builder's own when they are the same), and the
# cross compiler when they differ. (libyaml-cpp-dev cannot be installed for two architectures at
# once; here only the target's is.)
RUN build=$(dpkg --print-architecture) && target=${TARGETARCH:-$build} \
 && cross= && if [ "$target" != "$build" ]; then \
      dpkg --add-architecture "$target" && cross="crossbuild-essential-$target"; fi \
 && apt-get update \
 && apt-get install -y --no-install-recommends \
      g++ make cmake pkg-config binutils python3 $cross "pkg-config:$target" \
      "libuv1-dev:$target" "libnghttp2-dev:$target" "libssl-dev:$target" \
      "libyaml-cpp-dev:$target" nlohmann-json3-dev libcli11-dev doctest-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN build=$(dpkg --print-architecture) && target=${TARGETARCH:-$build} \
 && scripts/build-static.sh "$target" /build kube-api-lb \
 && scripts/make-rootfs.sh /build/kube-api-lb /rootfs \
 && if [ "$target" = "$build" ]; then /rootfs/kube-api-lb --version; fi

FROM scratch
COPY --from=build /rootfs/ /
ENTRYPOINT ["/kube-api-lb"]
