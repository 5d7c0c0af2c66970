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
cd "$pkg"
# Start from the pristine source each time so a changed patch applies cleanly.
if [ -f src/faiss.cc.orig-upnext ]; then cp src/faiss.cc.orig-upnext src/faiss.cc; else cp src/faiss.cc src/faiss.cc.orig-upnext; fi
patch -s -p1 < "$src/upnext-faiss-node.patch"
cp "$src/binding.gyp" "$src/upnext_compat.h" .
rm -f CMakeLists.txt
t0=$(date +%s)
"$root/node_modules/.bin/node-gyp" rebuild --nodedir=/usr --jobs=2 > "$pkg/build.log" 2>&1 || { tail -40 "$pkg/build.log" >&2; exit 1; }
echo "$want" > "$stamp"
echo "faiss-node built in $(( $(date +%s) - t0 )) s"
