#!/usr/bin/env bash
# Image benchmarks, side by side with git in one run (issue: the image).
#
#   bash benches/image.sh [MODULES] [DEFS_MODULES]
#
# MODULES (default 10000): the generated tree for build / rebuild / status comparisons.
# DEFS_MODULES (default 57200, about 1,000,000 definitions): the tree for the `show` latency.
# Needs git and GNU time (/usr/bin/time). Prints a Markdown table; BENCHMARKS.md holds the last
# figures. Each timing is the median of RUNS runs (default 5), wall clock, whole process.
set -euo pipefail
cd "$(dirname "$0")/.."
MODULES=${1:-10000}
DEFS_MODULES=${2:-57200}
RUNS=${RUNS:-5}
cargo build --release --quiet
BIN=$PWD/target/release/spry-image
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# median of wall seconds; also records peak RSS (KB) of the slowest run in $PEAK
measure() {
  local label=$1; shift
  local setup=$1; shift
  local times=() peak=0
  for _ in $(seq "$RUNS"); do
    eval "$setup"
    local out
    out=$( { /usr/bin/time -f "%e %M" "$@" >/dev/null 2>/dev/null; } 2>&1 | tail -1)
    times+=("${out% *}")
    local rss=${out#* }
    (( rss > peak )) && peak=$rss
  done
  local median
  median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  printf '| %s | %s s | %s MB |\n' "$label" "$median" "$((peak / 1024))"
}

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; $(git --version)"
echo
"$BIN" gen --modules "$MODULES" "$WORK/tree" 2>/dev/null
echo "tree: $MODULES modules, $(du -sm "$WORK/tree" | cut -f1) MB"
echo
echo "| what | median wall | peak memory |"
echo "| --- | --- | --- |"
cd "$WORK/tree"
measure "git add -A (fresh repository)" 'rm -rf .git && git init -q' git add -A
measure "spry-image build (fresh image)" 'rm -rf .spry-image' "$BIN" build .
git add -A && git -c user.email=b@b -c user.name=b commit -qm tree
"$BIN" build . >/dev/null
sleep 2   # let the stamps age past the file system's time granularity
"$BIN" build . >/dev/null
measure "git status (nothing changed)" ':' git status --short
measure "spry-image build (nothing changed)" ':' "$BIN" build .
measure "spry-image show one definition (10k modules)" ':' "$BIN" show Mod04242::_meta

cd "$WORK"
rm -rf tree
"$BIN" gen --modules "$DEFS_MODULES" "$WORK/big" 2>/dev/null
cd "$WORK/big"
"$BIN" build . --json >"$WORK/big.json"
DEFS=$("$BIN" ls --json | python3 -c 'import sys, json; print(sum(json.loads(l)["definitions"] for l in sys.stdin))')
echo
echo "big image: $DEFS_MODULES modules, $DEFS definitions, $(du -sm .spry-image | cut -f1) MB image"
echo
echo "| what | median wall | peak memory |"
echo "| --- | --- | --- |"
measure "spry-image show one definition ($DEFS definitions)" ':' "$BIN" show Mod31415::_meta
