#!/usr/bin/env bash
# Builds the kube-api-lb image for linux/amd64 and linux/arm64 on this (amd64) machine, one
# manifest list (OCI index) over both, and checks them.
#
#   scripts/build-image.sh [--no-test]
#
# No registry of base images is reachable here, so instead of running the Dockerfile's Debian
# build stage this script compiles the same static binary on the host (Debian bookworm with the
# same -dev packages; arm64 cross-compiled by scripts/build-static.sh with Debian's multiarch
# packages), lays out the same root filesystem with scripts/make-rootfs.sh, and builds the
# Dockerfile's own final stage (FROM scratch; taken from the Dockerfile, with the build-stage COPY
# pointed at that directory) with buildah (vfs storage, chroot isolation), once per architecture
# (--platform: the architecture is recorded in each image's config). Anywhere with a registry,
# `docker buildx build --platform linux/amd64,linux/arm64 .` builds the same from scratch.
#
# Images: TAG-amd64 and TAG-arm64, and TAG, the manifest list holding both (what a node pulls:
# each picks its own). The list is exported with both images to
# KAL_IMAGE_DIR/kube-api-lb-<version>.oci.tar, ready for `skopeo copy --all` (docs/kubespray.md).
#
# Checks, per architecture: os/architecture in the image config, entrypoint and no user, the files
# (binary, /etc/passwd, /etc/group, nothing else), the binary's ELF machine and static linking,
# `kube-api-lb --version` from the image (arm64 under qemu-aarch64-static); then the archive read
# back (one index, one image per architecture, platforms matching the configs). Unless --no-test,
# runs tests/integration/test_image.py (drop-in with a Kubespray nginx.conf, the manifest's
# non-root args and config-file modes, all on loopback; the arm64 image under emulation).
# Prints the image sizes and the time taken.
#
# Environment: KAL_IMAGE_DIR (work dir, default <repo>/build-image), KAL_IMAGE_TAG (default
# kube-api-lb:<project version>), KAL_JOBS (parallel compile jobs, default nproc).
# Everything lives under KAL_IMAGE_DIR (build trees, contexts, buildah storage, the archive): rm -rf
# it to start over. Needs root (buildah) and, if buildah is missing, apt-get.
set -euo pipefail

start=$(date +%s)
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=${KAL_IMAGE_DIR:-$repo/build-image}
run_tests=1
for arg in "$@"; do
  case $arg in
  --no-test) run_tests=0 ;;
  -h | --help)
    sed -n '2,32p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
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
arches=(amd64 arm64)
sizes=()

step() { printf '\n== %s (%ss)\n' "$*" "$(($(date +%s) - start))"; }

if ! command -v buildah >/dev/null || ! command -v skopeo >/dev/null; then
  step "installing buildah and skopeo"
  apt-get update -qq
  apt-get install -y buildah skopeo >/dev/null
fi
buildah=(buildah --root "$work/containers" --runroot "$work/run" --storage-driver vfs)

# The binary's ELF header: machine and static linking (no program interpreter).
check_elf() { # FILE ARCH
  local machine
  machine=$(readelf -hW "$1" | sed -n 's/^ *Machine: *//p')
  case "$2/$machine" in
  amd64/"Advanced Micro Devices X86-64" | arm64/AArch64) ;;
  *)
    echo "build-image: $1 is for \"$machine\", not $2" >&2
    exit 1
    ;;
  esac
  if readelf -lW "$1" | grep -q 'INTERP'; then
    echo "build-image: $1 is dynamically linked" >&2
    exit 1
  fi
}

# Runs the image's binary: natively for amd64 (buildah run, chroot), under qemu-aarch64-static for
# arm64 (from the mounted image; no binfmt registration needed).
run_in_image() { # ARCH CONTAINER MOUNTPOINT ARGS...
  local arch=$1 ctr=$2 mnt=$3
  shift 3
  if [ "$arch" = "$host_arch" ]; then
    "${buildah[@]}" run --isolation chroot "$ctr" -- /kube-api-lb "$@"
  else
    qemu-aarch64-static "$mnt/kube-api-lb" "$@"
  fi
}

host_arch=$(dpkg --print-architecture)
ctrs=()
cleanup() {
  for c in "${ctrs[@]}"; do "${buildah[@]}" rm "$c" >/dev/null 2>&1 || true; done
}
trap cleanup EXIT
for arch in "${arches[@]}"; do
  step "$arch: compiling the static binary in $work/build-$arch"
  "$repo/scripts/build-static.sh" "$arch" "$work/build-$arch" kube-api-lb
  check_elf "$work/build-$arch/kube-api-lb" "$arch"

  step "$arch: laying out the root filesystem"
  context=$work/context-$arch
  "$repo/scripts/make-rootfs.sh" "$work/build-$arch/kube-api-lb" "$context/rootfs"
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

  step "$arch: building $tag-$arch with buildah (vfs, chroot)"
  # FROM scratch with no RUN: nothing executes, so no emulation is needed to build either one;
  # --platform records the architecture in the image's config.
  "${buildah[@]}" bud --quiet --isolation chroot --layers=false --platform "linux/$arch" \
    -f "$context/Dockerfile.final" -t "$tag-$arch" "$context" >/dev/null

  step "$arch: checking the image"
  cfg=$("${buildah[@]}" inspect --type image --format \
    '{{.OCIv1.OS}}/{{.OCIv1.Architecture}} {{.OCIv1.Config.Entrypoint}} user={{.OCIv1.Config.User}}' \
    "$tag-$arch")
  if [ "$cfg" != "linux/$arch [/kube-api-lb] user=" ]; then
    echo "build-image: expected linux/$arch [/kube-api-lb] user= (ENTRYPOINT, no USER), got: $cfg" >&2
    exit 1
  fi
  ctr=$("${buildah[@]}" from --platform "linux/$arch" --name "kal-build-image-$arch-$$" "$tag-$arch")
  ctrs+=("$ctr")
  mnt=$("${buildah[@]}" mount "$ctr")
  files=$(cd "$mnt" && find . -type f | sort | tr '\n' ' ')
  image_bytes=$(du -sb "$mnt" | cut -f1)
  if [ "$files" != "./etc/group ./etc/passwd ./kube-api-lb " ]; then
    echo "build-image: unexpected files in the $arch image: $files" >&2
    exit 1
  fi
  check_elf "$mnt/kube-api-lb" "$arch"
  got=$(run_in_image "$arch" "$ctr" "$mnt" --version)
  if [ "$got" != "kube-api-lb $version" ]; then
    echo "build-image: kube-api-lb --version in the $arch image printed \"$got\"" >&2
    exit 1
  fi
  "${buildah[@]}" umount "$ctr" >/dev/null
  echo "$cfg; files: $files"
  echo "inside the image: $got"
  sizes+=("$arch: $("${buildah[@]}" images --format '{{.Size}}' "$tag-$arch") (root filesystem $image_bytes bytes, binary $(stat -c %s "$context/rootfs/kube-api-lb") bytes)")
done

step "the manifest list $tag (amd64 + arm64) and its OCI archive"
# A previous run's list, or a single-architecture image of that name, makes way.
"${buildah[@]}" manifest rm "$tag" >/dev/null 2>&1 || true
"${buildah[@]}" rmi "$tag" >/dev/null 2>&1 || true
"${buildah[@]}" manifest create "$tag" >/dev/null
for arch in "${arches[@]}"; do
  # By image ID: nothing to resolve against a registry.
  id=$("${buildah[@]}" images --no-trunc --quiet "$tag-$arch")
  "${buildah[@]}" manifest add "$tag" "containers-storage:${id#sha256:}" >/dev/null
done
# Earlier builds' images, untagged by this one.
"${buildah[@]}" rmi --prune >/dev/null 2>&1 || true
archive=$work/kube-api-lb-$version.oci.tar
rm -f "$archive"
"${buildah[@]}" manifest push --quiet --all --format oci "$tag" "oci-archive:$archive:$tag"
# Read back from the archive: one index naming $tag, holding one image per architecture, each
# image's config recording its own os/architecture.
python3 - "$archive" "$tag" "${arches[@]}" <<'PY'
import json, sys, tarfile
archive, tag, arches = sys.argv[1], sys.argv[2], sys.argv[3:]
with tarfile.open(archive) as t:
    def blob(desc):
        algo, hexd = desc["digest"].split(":")
        return json.load(t.extractfile(f"blobs/{algo}/{hexd}"))
    top = json.load(t.extractfile("index.json"))
    assert len(top["manifests"]) == 1, top
    ref = top["manifests"][0].get("annotations", {}).get("org.opencontainers.image.ref.name")
    assert ref == tag, f"archive names {ref!r}, not {tag!r}"
    index = blob(top["manifests"][0])
    got = {}
    for m in index["manifests"]:
        cfg = blob(blob(m)["config"])
        plat = f'{m["platform"]["os"]}/{m["platform"]["architecture"]}'
        assert plat == f'{cfg["os"]}/{cfg["architecture"]}', (plat, cfg["os"], cfg["architecture"])
        assert cfg["config"]["Entrypoint"] == ["/kube-api-lb"], cfg["config"]
        got[plat] = m["digest"]
    want = sorted(f"linux/{a}" for a in arches)
    assert sorted(got) == want, f"the index holds {sorted(got)}, not {want}"
    for plat, digest in sorted(got.items()):
        print(f"  {plat}: {digest}")
PY
# The way docs/kubespray.md publishes it: skopeo copies the archive, every architecture, to another
# OCI layout (each blob's digest verified on the way), and the copy holds both images again.
step "copying the archive with skopeo copy --all, as docs/kubespray.md pushes it"
copy=$work/skopeo-copy
rm -rf "$copy"
skopeo copy --quiet --all "oci-archive:$archive:$tag" "oci:$copy:$tag"
python3 - "$copy" "${arches[@]}" <<'PY'
import json, os, sys
d, arches = sys.argv[1], sys.argv[2:]
def blob(desc):
    algo, hexd = desc["digest"].split(":")
    with open(os.path.join(d, "blobs", algo, hexd)) as f:
        return json.load(f)
with open(os.path.join(d, "index.json")) as f:
    top = json.load(f)
index = blob(top["manifests"][0])
got = sorted(f'{m["platform"]["os"]}/{m["platform"]["architecture"]}' for m in index["manifests"])
want = sorted(f"linux/{a}" for a in arches)
assert got == want, f"skopeo's copy holds {got}, not {want}"
for m in index["manifests"]:
    assert blob(blob(m)["config"])["config"]["Entrypoint"] == ["/kube-api-lb"], m
print(f"  skopeo copy --all: {', '.join(got)}, every blob verified")
PY

if [ "$run_tests" = 1 ]; then
  step "running tests/integration/test_image.py against $tag"
  KAL_IMAGE="$tag" KAL_IMAGE_DIR="$work" KAL_SOURCE_DIR="$repo" PYTHONDONTWRITEBYTECODE=1 \
    python3 "$repo/tests/integration/test_image.py"
fi

printf '\nimages (uncompressed):\n'
printf '  %s\n' "${sizes[@]}"
printf '%s (amd64 + arm64) built and checked in %ss\n' "$tag" "$(($(date +%s) - start))"
echo "storage: ${buildah[*]}"
echo "archive: $archive (an OCI index and both images; see docs/kubespray.md to push it)"
echo "push:    skopeo copy --all oci-archive:$archive docker://registry.example/kube-api-lb:$version"
echo "     or: ${buildah[*]} manifest push --all $tag docker://registry.example/kube-api-lb:$version"
