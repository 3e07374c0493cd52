#!/usr/bin/env bash
# `parse --canonical` beside Spry's reference parser doing the same (read a file, parse it, print
# its canonical form), side by side in one run (issue 15: at least 10x).
#
#   SPRY_PARSE_REF=/path/to/driver bash benches/reference.sh [FILE...]
#
# FILEs default to `gen`'s 20 MB module (written here); pass others too, such as a corpus the
# project did not write (BENCHMARKS.md says how the figures were made). SPRY_PARSE_REF is a
# program that takes a file's path and prints its canonical form to stdout, built from Spry's
# reference VM (gokr/spryvm) as BENCHMARKS.md describes; none of it is in this repository.
# Without it only our side is measured. Each figure is the best of RUNS runs (default 5), wall
# clock, whole process, output to /dev/null, the two programs taking turns.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
source benches/common.sh
BIN=${SPRY_BIN:-$BIN}
REF=${SPRY_PARSE_REF:-}

FILES=("$@")
if [ ${#FILES[@]} -eq 0 ]; then
  "$BIN" gen --megabytes 20 "$WORK/gen20.sy" >/dev/null
  FILES=("$WORK/gen20.sy")
fi

# Best wall time in ms of RUNS runs of "$@" (stdout to /dev/null), one run per call of `turn`.
declare -A BEST
turn() {
  local key=$1; shift
  local start end ms
  start=$(date +%s%N)
  "$@" >/dev/null
  end=$(date +%s%N)
  ms=$(( (end - start) / 1000000 ))
  if [ -z "${BEST[$key]:-}" ] || (( ms < BEST[$key] )); then BEST[$key]=$ms; fi
}

mbps() { awk -v b="$1" -v ms="$2" 'BEGIN { printf "%.1f", (ms > 0 ? b / 1e6 / (ms / 1000) : 0) }'; }

echo "machine: $(nproc) cores, load before $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| file | size | spry-image parse --canonical | reference | ratio |"
echo "| --- | --- | --- | --- | --- |"
for file in "${FILES[@]}"; do
  bytes=$(stat -c %s "$file")
  for _ in $(seq "$RUNS"); do
    turn "ours $file" "$BIN" parse --canonical "$file"
    [ -n "$REF" ] && turn "ref $file" "$REF" "$file"
  done
  ours=${BEST["ours $file"]}
  if [ -n "$REF" ]; then
    ref=${BEST["ref $file"]}
    ratio=$(awk -v a="$ref" -v b="$ours" 'BEGIN { printf "%.1fx", (b > 0 ? a / b : 0) }')
    printf '| %s | %s MB | %s ms = %s MB/s | %s ms = %s MB/s | **%s** |\n' \
      "$(basename "$file")" "$(mbps "$bytes" 1000)" "$ours" "$(mbps "$bytes" "$ours")" \
      "$ref" "$(mbps "$bytes" "$ref")" "$ratio"
  else
    printf '| %s | %s MB | %s ms = %s MB/s | (SPRY_PARSE_REF not set) | |\n' \
      "$(basename "$file")" "$(mbps "$bytes" 1000)" "$ours" "$(mbps "$bytes" "$ours")"
  fi
done
echo
echo "load after $(cut -d' ' -f1-3 /proc/loadavg)"
