#!/usr/bin/env bash
# Export, status and diff benchmarks, side by side with git in one run (issue: from image to files).
#
#   bash benches/export.sh [MODULES]
#
# MODULES (default 10000): the generated tree. Needs git and GNU time (/usr/bin/time). Prints a
# Markdown table; BENCHMARKS.md holds the last figures. Each timing is the median of RUNS runs
# (default 5; SMALL_RUNS, default 21, for the quick commands), wall clock in milliseconds, whole
# process.
set -euo pipefail
cd "$(dirname "$0")/.."
MODULES=${1:-10000}
SMALL_RUNS=${SMALL_RUNS:-21}
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
git init -q && git config gc.auto 0 && git config maintenance.auto false
git add -A && git -c user.email=b@b -c user.name=b commit -qm tree
"$BIN" build . >/dev/null
sleep 2   # let the stamps age past the file system's time granularity
"$BIN" build . >/dev/null
git status --short >/dev/null
# The tree, git's objects and the images written above are still being written back to disk
# for a while; a command timed meanwhile competes with that. Flush first.
sync
sleep 3
RUNS=$SMALL_RUNS measure "git status (nothing changed)" ':' git status --short
RUNS=$SMALL_RUNS measure "spry-image status (nothing changed)" ':' "$BIN" status
RUNS=$SMALL_RUNS measure "spry-image export (nothing changed)" ':' "$BIN" export
RUNS=$SMALL_RUNS measure "spry-image diff (nothing changed)" ':' "$BIN" diff
# The files must be the same as before: an export with nothing to do writes nothing.
git status --short | grep -q . && { echo "export changed the tree" >&2; exit 1; }
measure "git checkout into an empty work tree" "rm -rf '$WORK/co' && mkdir '$WORK/co'" \
  git --work-tree="$WORK/co" checkout -f HEAD -- .
measure "spry-image export into an empty directory" "rm -rf '$WORK/ex'" \
  "$BIN" export --to "$WORK/ex"
diff -r -x .spry-image -x .git "$WORK/tree" "$WORK/ex" >/dev/null && echo && echo "export into an empty directory: byte-identical tree (diff -r clean)"
