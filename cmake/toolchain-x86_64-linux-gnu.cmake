# Cross-compiles kube-api-lb for linux/amd64 on an arm64 Debian machine (a `docker buildx build
# --platform linux/amd64,linux/arm64` on an arm64 builder: the Dockerfile's build stage installs
# crossbuild-essential-amd64 and the :amd64 -dev packages of libuv, OpenSSL, yaml-cpp and nghttp2;
# the header-only libraries are shared). The mirror of toolchain-aarch64-linux-gnu.cmake.
#
#   cmake -S . -B build-amd64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-x86_64-linux-gnu.cmake \
#         -DKAL_STATIC=ON -DCMAKE_BUILD_TYPE=Release
#
# On an amd64 machine the same file builds natively through the triplet-named tools: that is how
# it was tried (the command above, then the binary's --version and file(1)), no arm64 builder
# being at hand.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR x86_64)
set(CMAKE_C_COMPILER x86_64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER x86_64-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE x86_64-linux-gnu)
# pkgconf's cross wrapper reads only the amd64 .pc files.
find_program(PKG_CONFIG_EXECUTABLE x86_64-linux-gnu-pkg-config REQUIRED)
find_program(CMAKE_CROSSCOMPILING_EMULATOR qemu-x86_64-static)
