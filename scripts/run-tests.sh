#!/usr/bin/env bash
# Runs every compiled test file under dist/test with tap (TAP output kept in run/test.tap) and ends
# with the line CI reads: "N passed, N failed" (counted over top-level test points of every file).
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p run
files=$(find dist/test -name '*.test.js' | sort)
if [ -z "$files" ]; then echo "no test files under dist/test"; echo "0 passed, 1 failed"; exit 1; fi
# shellcheck disable=SC2086
node_modules/.bin/tap --reporter=tap $files 2>&1 | tee run/test.tap
status=${PIPESTATUS[0]}
# Level-1 subtests (one per test() call in a file) are indented 4 spaces in tap's TAP stream.
passed=$(grep -E '^    ok [0-9]+ ' run/test.tap | grep -cv '# SKIP' || true)
skipped=$(grep -E '^    ok [0-9]+ ' run/test.tap | grep -c '# SKIP' || true)
failed=$(grep -cE '^    not ok [0-9]+ ' run/test.tap || true)
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
echo "${passed} passed, ${failed} failed, ${skipped} skipped"
exit "$status"
