# kube-api-lb image: a static binary on an empty filesystem (no shell, no package manager).
#
#   docker build -t kube-api-lb:0.1.0 .                       (or: buildah bud, podman build)
#   docker build --build-arg BASE_IMAGE=<your mirror>/debian:bookworm -t kube-api-lb:0.1.0 .
#
# With no arguments the binary auto-detects /etc/kube-api-lb/config.yaml, then
# /etc/nginx/nginx.conf, then /usr/local/etc/haproxy/haproxy.cfg, so the image is a drop-in for
# Kubespray's nginx-proxy image (nginx_image_repo / nginx_image_tag). No USER is set: Kubespray's
# /etc/nginx is 0700 root. The manifest from `kube-api-lb manifest` runs it as 65532 instead.
# Without network access to a base image, scripts/build-image.sh builds the same final stage
# from a binary compiled on the host.

ARG BASE_IMAGE=debian:bookworm

FROM ${BASE_IMAGE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      g++ make cmake pkg-config binutils python3 \
      libuv1-dev libnghttp2-dev libssl-dev libyaml-cpp-dev nlohmann-json3-dev libcli11-dev \
      doctest-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -DKAL_STATIC=ON -DCMAKE_BUILD_TYPE=Release \
 && cmake --build /build --target kube-api-lb -j"$(nproc)" \
 && scripts/make-rootfs.sh /build/kube-api-lb /rootfs \
 && /rootfs/kube-api-lb --version

FROM scratch
COPY --from=build /rootfs/ /
ENTRYPOINT ["/kube-api-lb"]
