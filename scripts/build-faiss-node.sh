#!/usr/bin/env bash
# Builds faiss-node 0.5.1 against Debian's libfaiss (npm's install script would download a prebuild
# or clone faiss, neither possible offline). Applies upnext's patch (Float32Array paths, explicit ids,
# setParam for nprobe/efSearch/efConstruction, per-thread constructors for worker threads).
# Idempotent: skips when the built addon matches the patch's checksum.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
pkg="$root/node_modules/faiss-node"
src="$root/native/faiss-node"
stamp="$pkg/build/upnext.stamp"
want=$(cat "$src/upnext-faiss-node.patch" "$src/binding.gyp" "$src/upnext_compat.h" | sha256sum | cut -c1-16)

if [ ! -d "$pkg" ]; then echo "faiss-node is not installed (run npm install first)" >&2; exit 1; fi
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -f "$pkg/build/Release/faiss-node.node" ]; then
  exit 0
fi
if [ ! -f /usr/lib/x86_64-linux-gnu/libfaiss.a ] && [ ! -f /usr/lib/libfaiss.a ] && ! ls /usr/lib/*/libfaiss.a >/dev/null 2>&1; then
  echo "libfaiss-dev is missing: apt-get install libfaiss-dev" >&2; exit 1
fi
echo "building faiss-node against libfaiss (about a minute)..."
# Build in a staging copy and swap the finished .node in with a rename: other processes on this
# machine may be loading the addon meanwhile (node-gyp rebuild would delete build/ for a minute).
stage="$pkg/build-upnext-staging"
rm -rf "$stage"
mkdir -p "$stage/src" "$stage/node_modules"
# Start from the pristine source each time so a changed patch applies cleanly.
if [ ! -f "$pkg/src/faiss.cc.orig-upnext" ]; then cp "$pkg/src/faiss.cc" "$pkg/src/faiss.cc.orig-upnext"; fi
cp "$pkg/src/faiss.cc.orig-upnext" "$stage/src/faiss.cc"
cp "$pkg/package.json" "$src/binding.gyp" "$src/upnext_compat.h" "$stage/"
(cd "$stage" && patch -s -p1 < "$src/upnext-faiss-node.patch")
ln -sfn "$root/node_modules/node-addon-api" "$stage/node_modules/node-addon-api"
t0=$(date +%s)
# binding.gyp's library/flags default to Debian's libfaiss; make sure a caller's AVX2 settings
# (scripts/build-faiss-avx2.sh) do not leak into this build.
(cd "$stage" && env -u UPNEXT_FAISS_LIB -u UPNEXT_FAISS_CFLAGS \
  "$root/node_modules/.bin/node-gyp" rebuild --nodedir=/usr --jobs=2 > "$pkg/build.log" 2>&1) \
  || { tail -40 "$pkg/build.log" >&2; exit 1; }
# Keep the package's own copies in step with what was built (read by humans and by tests).
cp "$stage/src/faiss.cc" "$pkg/src/faiss.cc"
cp "$src/binding.gyp" "$src/upnext_compat.h" "$pkg/"
rm -f "$pkg/CMakeLists.txt"
mkdir -p "$pkg/build/Release"
cp "$stage/build/Release/faiss-node.node" "$pkg/build/Release/faiss-node.node.tmp"
mv -f "$pkg/build/Release/faiss-node.node.tmp" "$pkg/build/Release/faiss-node.node"
rm -rf "$stage"
echo "$want" > "$stamp"
echo "faiss-node built in $(( $(date +%s) - t0 )) s"
