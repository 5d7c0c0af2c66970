#!/usr/bin/env bash
# Opt-in: builds faiss 1.7.3 (Debian's source, with Debian's patches) for AVX2+FMA and a second
# faiss-node addon linked against it. Debian's libfaiss.a targets baseline x86-64, where faiss's
# fast-scan PQ kernels fall back to emulated SIMD and flat scans use SSE (see
# reports/README.md / ENVIRONMENT.md). The item shard loads this addon at run time when it exists
# and the CPU has avx2+fma (actors/item-shard/faiss.ts); nothing else depends on it, and CI never
# builds it.
#
# Output (git-ignored cache): native/faiss-avx2/
#   src/                         unpacked Debian source package
#   build/                       CMake build tree
#   lib/libfaiss_avx2.a          the static library        (stamp: lib/upnext.stamp)
#   addon/build/Release/faiss-node.node  the AVX2 addon    (stamp: addon/build/upnext.stamp)
# Idempotent: each phase is skipped when its stamp matches its inputs. The library compile took
# 75 s on the idle 2-vCPU dev machine (222 s with other jobs running; nice -n 10, -j2); the addon 5 s.
set -euo pipefail
# apt needs root: sudo when not already root.
sudo_cmd=""; if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
root=$(cd "$(dirname "$0")/.." && pwd)
cache="$root/native/faiss-avx2"
patchdir="$root/native/faiss-node"
pkg="$root/node_modules/faiss-node"
version="1.7.3"
# Parallelism and niceness: the build machine is shared; override with FAISS_AVX2_JOBS.
jobs="${FAISS_AVX2_JOBS:-2}"

if [ ! -d "$pkg" ]; then echo "faiss-node is not installed (run npm install first)" >&2; exit 1; fi
if ! grep -qw avx2 /proc/cpuinfo || ! grep -qw fma /proc/cpuinfo; then
  echo "note: this CPU lacks avx2/fma; the addon will be built but never loaded here" >&2
fi
mkdir -p "$cache/lib"

# Build tools this script needs beyond what `make install` brings (cmake, dpkg-source, g++, patch).
tools=()
for tool in cmake dpkg-dev build-essential patch; do dpkg -s "$tool" >/dev/null 2>&1 || tools+=("$tool"); done
if [ ${#tools[@]} -gt 0 ]; then
  echo "apt packages for the AVX2 build: ${tools[*]}"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${tools[@]}" >/dev/null
fi

# ---- phase 1: the faiss source ----
fetch_source() {
  local dl="$cache/download"
  mkdir -p "$dl"
  if ls "$dl"/faiss_${version}-*.dsc >/dev/null 2>&1; then return; fi
  # apt-get source needs a deb-src entry: add one mirroring the binary entry (same mirror, suite).
  if ! grep -rqs '^Types:.*deb-src\|^deb-src ' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    local bin=/etc/apt/sources.list.d/debian.sources
    local uri suite
    if [ ! -f "$bin" ]; then echo "no $bin to mirror for a deb-src entry: add one for faiss and rerun" >&2; exit 1; fi
    uri=$(awk '/^URIs:/ {print $2; exit}' "$bin")
    suite=$(awk '/^Suites:/ {print $2; exit}' "$bin")
    echo "adding deb-src entry for $uri $suite (needs root)"
    printf 'Types: deb-src\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "$uri" "$suite" | $sudo_cmd tee /etc/apt/sources.list.d/src.sources >/dev/null
    $sudo_cmd apt-get update -qq
  fi
  (cd "$dl" && apt-get source --download-only faiss)
  if ! ls "$dl"/faiss_${version}-*.dsc >/dev/null 2>&1; then
    echo "apt-get source fetched $(ls "$dl"/*.dsc), not faiss $version: this script and the patch target $version" >&2
    exit 1
  fi
}

fetch_source
dsc=$(ls "$cache"/download/faiss_${version}-*.dsc | head -1)
cmake_flags=(-DFAISS_OPT_LEVEL=avx2 -DFAISS_ENABLE_GPU=OFF -DFAISS_ENABLE_PYTHON=OFF -DFAISS_ENABLE_C_API=OFF
  -DBUILD_TESTING=OFF -DBUILD_SHARED_LIBS=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_POSITION_INDEPENDENT_CODE=ON)
# The stamp covers the source package and the CMake flags (not this script, so editing the addon
# phase below does not recompile faiss).
lib_want=$( (cat "$dsc"; echo "${cmake_flags[*]}") | sha256sum | cut -c1-16)
lib="$cache/lib/libfaiss_avx2.a"

# ---- phase 2: libfaiss_avx2.a ----
if [ -f "$cache/lib/upnext.stamp" ] && [ "$(cat "$cache/lib/upnext.stamp")" = "$lib_want" ] && [ -f "$lib" ]; then
  echo "libfaiss_avx2.a is up to date"
else
  if [ ! -f "$cache/src/CMakeLists.txt" ]; then
    rm -rf "$cache/src"
    dpkg-source -x "$dsc" "$cache/src" >/dev/null   # applies Debian's patches
  fi
  echo "compiling faiss $version for AVX2 (1-4 min on 2 cores); log: $cache/build.log"
  t0=$(date +%s)
  cmake -S "$cache/src" -B "$cache/build" "${cmake_flags[@]}" > "$cache/build.log" 2>&1 \
    || { tail -40 "$cache/build.log" >&2; exit 1; }
  nice -n 10 make -C "$cache/build" -j"$jobs" faiss_avx2 >> "$cache/build.log" 2>&1 \
    || { tail -40 "$cache/build.log" >&2; exit 1; }
  cp "$cache/build/faiss/libfaiss_avx2.a" "$lib"
  echo "$lib_want" > "$cache/lib/upnext.stamp"
  echo "libfaiss_avx2.a built in $(( $(date +%s) - t0 )) s"
fi

# ---- phase 3: the AVX2 faiss-node addon ----
# A copy of faiss-node's source with upnext's patch and the same binding.gyp; the library is swapped
# through UPNEXT_FAISS_LIB / UPNEXT_FAISS_CFLAGS, which binding.gyp reads.
addon="$cache/addon"
stamp="$addon/build/upnext.stamp"
want=$(cat "$patchdir/upnext-faiss-node.patch" "$patchdir/binding.gyp" "$patchdir/upnext_compat.h" "$lib" | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -f "$addon/build/Release/faiss-node.node" ]; then
  echo "AVX2 faiss-node addon is up to date"
  exit 0
fi
echo "building the AVX2 faiss-node addon (about a minute)..."
rm -rf "$addon"
mkdir -p "$addon/src"
# Pristine source: build-faiss-node.sh keeps the unpatched file as faiss.cc.orig-upnext.
if [ -f "$pkg/src/faiss.cc.orig-upnext" ]; then cp "$pkg/src/faiss.cc.orig-upnext" "$addon/src/faiss.cc"
else cp "$pkg/src/faiss.cc" "$addon/src/faiss.cc"; fi
cp "$pkg/package.json" "$addon/"
(cd "$addon" && patch -s -p1 < "$patchdir/upnext-faiss-node.patch")
cp "$patchdir/binding.gyp" "$patchdir/upnext_compat.h" "$addon/"
# node-addon-api is resolved from the addon folder; point it at the project's copy.
mkdir -p "$addon/node_modules"
ln -sfn "$root/node_modules/node-addon-api" "$addon/node_modules/node-addon-api"
t0=$(date +%s)
(cd "$addon" && UPNEXT_FAISS_LIB="$lib" UPNEXT_FAISS_CFLAGS="-mavx2 -mfma -mf16c -mpopcnt" \
  nice -n 10 "$root/node_modules/.bin/node-gyp" rebuild --nodedir=/usr --jobs="$jobs" > "$addon/build.log" 2>&1) \
  || { tail -40 "$addon/build.log" >&2; exit 1; }
echo "$want" > "$stamp"
echo "AVX2 faiss-node addon built in $(( $(date +%s) - t0 )) s"
