#!/usr/bin/env bash
# Builds the kube-api-lb image on this machine and checks it.
#
#   scripts/build-image.sh [--no-test]
#
# No registry of base images is reachable here, so instead of running the Dockerfile's Debian
# build stage this script compiles the same static binary on the host (it is Debian bookworm with
# the same -dev packages), lays out the same root filesystem with scripts/make-rootfs.sh, and
# builds the Dockerfile's own final stage (FROM scratch; taken from the Dockerfile, with the
# build-stage COPY pointed at that directory) with buildah (vfs storage, chroot isolation).
# Anywhere with internet, `docker build .` / `buildah bud .` builds the same image from scratch.
#
# Then it checks the image: entrypoint and user, the files it holds (binary, /etc/passwd,
# /etc/group, nothing else), `kube-api-lb --version` inside it, and, unless --no-test, runs
# tests/integration/test_image.py against it (drop-in with a Kubespray nginx.conf, and the
# manifest's non-root args and config-file modes, all on loopback). Prints the image size and
# the time taken.
#
# Environment: KAL_IMAGE_DIR (work dir, default <repo>/build-image), KAL_IMAGE_TAG (default
# kube-api-lb:<project version>), KAL_JOBS (parallel compile jobs, default nproc).
# Everything lives under KAL_IMAGE_DIR (build tree, context, buildah storage): rm -rf it to
# start over. Needs root (buildah) and, if buildah is missing, apt-get.
set -euo pipefail

start=$(date +%s)
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=${KAL_IMAGE_DIR:-$repo/build-image}
run_tests=1
for arg in "$@"; do
  case $arg in
  --no-test) run_tests=0 ;;
  -h | --help)
    sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  *)
    echo "build-image: unknown argument: $arg" >&2
    exit 2
    ;;
  esac
done

version=$(sed -n 's/^project(kube-api-lb VERSION \([0-9.]*\).*/\1/p' "$repo/CMakeLists.txt")
if [ -z "$version" ]; then
  echo "build-image: cannot read the project version from CMakeLists.txt" >&2
  exit 1
fi
tag=${KAL_IMAGE_TAG:-kube-api-lb:$version}

step() { printf '\n== %s (%ss)\n' "$*" "$(($(date +%s) - start))"; }

if ! command -v buildah >/dev/null; then
  step "installing buildah"
  apt-get install -y buildah >/dev/null
fi
buildah=(buildah --root "$work/containers" --runroot "$work/run" --storage-driver vfs)

step "compiling the static binary in $work/build"
cmake -S "$repo" -B "$work/build" -G "Unix Makefiles" -DKAL_STATIC=ON \
  -DCMAKE_BUILD_TYPE=Release >/dev/null
# Twice: the second pass recompiles anything whose sources were edited while the first ran (a
# shared working tree), so no object is built against a stale header.
for pass in 1 2; do
  if ! cmake --build "$work/build" --target kube-api-lb -j"${KAL_JOBS:-$(nproc)}" \
    >"$work/build-$pass.log" 2>&1; then
    tail -40 "$work/build-$pass.log" >&2
    echo "build-image: compiling failed; full log: $work/build-$pass.log" >&2
    exit 1
  fi
done
# (glibc's "Using 'getaddrinfo' in statically linked applications" link warnings are expected.)

step "laying out the root filesystem"
context=$work/context
"$repo/scripts/make-rootfs.sh" "$work/build/kube-api-lb" "$context/rootfs"
# The Dockerfile's final stage, verbatim except that the build stage's output comes from the
# context directory.
awk '/^FROM scratch/ {final = 1} final' "$repo/Dockerfile" |
  sed 's|^COPY --from=build /rootfs/ /$|COPY rootfs/ /|' >"$context/Dockerfile.final"
if ! grep -q '^COPY rootfs/ /$' "$context/Dockerfile.final" ||
  grep -q -- '--from=' "$context/Dockerfile.final"; then
  echo "build-image: the Dockerfile's final stage changed; update build-image.sh:" >&2
  cat "$context/Dockerfile.final" >&2
  exit 1
fi

step "building $tag with buildah (vfs, chroot)"
"${buildah[@]}" bud --quiet --isolation chroot --layers=false -f "$context/Dockerfile.final" \
  -t "$tag" "$context" >/dev/null

step "checking the image"
entrypoint=$("${buildah[@]}" inspect --type image --format '{{.OCIv1.Config.Entrypoint}}' "$tag")
user=$("${buildah[@]}" inspect --type image --format '{{.OCIv1.Config.User}}' "$tag")
if [ "$entrypoint" != "[/kube-api-lb]" ] || [ -n "$user" ]; then
  echo "build-image: expected ENTRYPOINT [/kube-api-lb] and no USER, got $entrypoint user=$user" >&2
  exit 1
fi
ctr=$("${buildah[@]}" from --name "kal-build-image-$$" "$tag")
cleanup() { "${buildah[@]}" rm "$ctr" >/dev/null 2>&1 || true; }
trap cleanup EXIT
mnt=$("${buildah[@]}" mount "$ctr")
files=$(cd "$mnt" && find . -type f | sort | tr '\n' ' ')
image_bytes=$(du -sb "$mnt" | cut -f1)
"${buildah[@]}" umount "$ctr" >/dev/null
if [ "$files" != "./etc/group ./etc/passwd ./kube-api-lb " ]; then
  echo "build-image: unexpected files in the image: $files" >&2
  exit 1
fi
got=$("${buildah[@]}" run --isolation chroot "$ctr" -- /kube-api-lb --version)
if [ "$got" != "kube-api-lb $version" ]; then
  echo "build-image: kube-api-lb --version in the image printed \"$got\"" >&2
  exit 1
fi
echo "files: $files"
echo "inside the image: $got"

if [ "$run_tests" = 1 ]; then
  step "running tests/integration/test_image.py against $tag"
  KAL_IMAGE="$tag" KAL_IMAGE_DIR="$work" KAL_SOURCE_DIR="$repo" PYTHONDONTWRITEBYTECODE=1 \
    python3 "$repo/tests/integration/test_image.py"
fi

size=$("${buildah[@]}" images --format '{{.Size}}' "$tag")
printf '\nimage %s: %s (root filesystem %s bytes, uncompressed); built and checked in %ss\n' \
  "$tag" "$size" "$image_bytes" "$(($(date +%s) - start))"
echo "storage: ${buildah[*]}"
echo "export:  ${buildah[*]} push $tag oci-archive:$work/kube-api-lb-$version.tar"
