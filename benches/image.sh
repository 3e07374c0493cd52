#!/usr/bin/env bash
# Image benchmarks, side by side with git in one run (issue: the image).
#
#   bash benches/image.sh [MODULES] [DEFS_MODULES]
#
# MODULES (default 10000): the generated tree for build / rebuild / status comparisons.
# DEFS_MODULES (default 57200, about 1,000,000 definitions): the tree for the `show` latency.
# Needs git and GNU time (/usr/bin/time). Prints a Markdown table; BENCHMARKS.md holds the last
# figures. Each timing is the median of RUNS runs (default 5; SMALL_RUNS, default 21, for the
# quick commands), wall clock in milliseconds, whole process.
set -euo pipefail
cd "$(dirname "$0")/.."
MODULES=${1:-10000}
SMALL_RUNS=${SMALL_RUNS:-21}
DEFS_MODULES=${2:-57200}
RUNS=${RUNS:-5}
source benches/common.sh

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; $(git --version)"
echo
"$BIN" gen --modules "$MODULES" "$WORK/tree" 2>/dev/null
echo "tree: $MODULES modules, $(du -sm "$WORK/tree" | cut -f1) MB"
echo
echo "| what | median wall | median CPU | peak memory |"
echo "| --- | --- | --- | --- |"
cd "$WORK/tree"
# No automatic gc: after a commit of 10,000 loose objects git would pack them in the
# background, taking a core from whatever is timed next.
measure "git add -A (fresh repository)" \
  'rm -rf .git && git init -q && git config gc.auto 0 && git config maintenance.auto false' \
  git add -A
measure "spry-image build (fresh image)" 'rm -rf .spry-image' "$BIN" build .
git add -A && git -c user.email=b@b -c user.name=b commit -qm tree
"$BIN" build . >/dev/null
sleep 2   # let the stamps age past the file system's time granularity
"$BIN" build . >/dev/null
# The tree, git's objects and the images written above are still being written back to disk
# for a while; a command timed meanwhile competes with that. Flush first.
sync
sleep 3
RUNS=$SMALL_RUNS measure "git status (nothing changed)" ':' git status --short
RUNS=$SMALL_RUNS measure "spry-image build (nothing changed)" ':' "$BIN" build .
RUNS=$SMALL_RUNS measure "spry-image show one definition (10k modules)" ':' "$BIN" show Mod04242::_meta

cd "$WORK"
rm -rf tree
"$BIN" gen --modules "$DEFS_MODULES" "$WORK/big" 2>/dev/null
cd "$WORK/big"
"$BIN" build . --json >"$WORK/big.json"
DEFS=$("$BIN" ls --json | python3 -c 'import sys, json; print(sum(json.loads(l)["definitions"] for l in sys.stdin))')
echo
echo "big image: $DEFS_MODULES modules, $DEFS definitions, $(du -sm .spry-image | cut -f1) MB image"
echo
echo "| what | median wall | median CPU | peak memory |"
echo "| --- | --- | --- | --- |"
RUNS=$SMALL_RUNS measure "spry-image show one definition ($DEFS definitions)" ':' "$BIN" show Mod31415::_meta
