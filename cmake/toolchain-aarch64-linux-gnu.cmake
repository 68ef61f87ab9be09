# Cross-compiles kube-api-lb for linux/arm64 on an amd64 Debian machine with Debian's multiarch
# packages (scripts/install-deps.sh installs them: crossbuild-essential-arm64 and the :arm64 -dev
# packages of libuv, OpenSSL, yaml-cpp and nghttp2; the header-only libraries are shared).
#
#   cmake -S . -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-aarch64-linux-gnu.cmake \
#         -DKAL_STATIC=ON -DCMAKE_BUILD_TYPE=Release
#
# The libraries are found in /usr/lib/aarch64-linux-gnu (CMAKE_LIBRARY_ARCHITECTURE) and their
# arch-specific headers in /usr/include/aarch64-linux-gnu (the cross compiler's own search path).
# yaml-cpp's -dev package cannot be installed for two architectures at once, so install-deps.sh
# unpacks its arm64 package into KAL_ARM64_ROOT, searched first.
# CTest runs the arm64 programs under qemu-aarch64-static (Debian's qemu-user-static), called
# directly: no binfmt registration needed.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(KAL_ARM64_ROOT /opt/kube-api-lb/arm64 CACHE PATH "Unpacked arm64 -dev packages (install-deps.sh)")
list(APPEND CMAKE_PREFIX_PATH ${KAL_ARM64_ROOT}/usr)
# pkgconf's cross wrapper reads only the arm64 .pc files.
find_program(PKG_CONFIG_EXECUTABLE aarch64-linux-gnu-pkg-config REQUIRED)
find_program(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64-static)
