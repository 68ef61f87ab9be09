#!/bin/sh
# Lays out the final image's filesystem from a static kube-api-lb binary:
#
#   scripts/make-rootfs.sh BINARY OUTDIR
#
#   OUTDIR/kube-api-lb   the binary, stripped (the image's ENTRYPOINT)
#   OUTDIR/etc/passwd    root and nonroot (65532), so `id`-style lookups and logs show names
#   OUTDIR/etc/group
#
# Used by the Dockerfile's build stage and by scripts/build-image.sh, so both produce the same
# image. Fails if the binary is dynamically linked (a FROM scratch image has no loader or libc).
set -eu
if [ $# -ne 2 ]; then
  echo "usage: $0 BINARY OUTDIR" >&2
  exit 2
fi
bin=$1
out=$2
if [ ! -x "$bin" ]; then
  echo "make-rootfs: $bin: not an executable file" >&2
  exit 1
fi
if readelf -lW "$bin" | grep -q 'INTERP\|Requesting program interpreter'; then
  echo "make-rootfs: $bin is dynamically linked; build with -DKAL_STATIC=ON" >&2
  exit 1
fi
if readelf -dW "$bin" 2>/dev/null | grep -q '(NEEDED)'; then
  echo "make-rootfs: $bin needs shared libraries; build with -DKAL_STATIC=ON" >&2
  exit 1
fi
# The binutils for the binary's architecture: the host's strip cannot read another machine's ELF.
case $(readelf -hW "$bin" | sed -n 's/^ *Machine: *//p') in
AArch64) strip=aarch64-linux-gnu-strip ;;
*) strip=strip ;;
esac
command -v "$strip" >/dev/null || strip=strip
rm -rf "$out"
mkdir -p "$out/etc"
"$strip" --strip-all -o "$out/kube-api-lb" "$bin"
chmod 0755 "$out/kube-api-lb"
printf 'root:x:0:0:root:/:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/:/sbin/nologin\n' \
  >"$out/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$out/etc/group"
chmod 0644 "$out/etc/passwd" "$out/etc/group"
