#!/usr/bin/env bash
# Live edits of one definition in one big module, at three sizes (issue 15: an edit costs its
# definition, not its module).
#
#   bash benches/put.sh [SIZES...]
#
# SIZES (default 1000 10000 100000): definitions in the module (about 52 bytes each, as `gen`
# writes them: 100,000 make a 5.2 MB file). For each size: one module file built into an image,
# then `put MODULE::NAME --file F` replacing a definition in the middle (a new text each run),
# `put` of a new definition, `rm` of one, `export` of the one change, `export` after `put` of a
# new definition and after `rm` of one (each after an export: the file agreed), and a save of one changed
# definition in the file (what the watcher does on a save: `build .` after `sed -i`). Each
# timing is the median of RUNS runs (default 11), wall clock and CPU (user + system) in milliseconds, whole process; the first build
# of the file is measured once. Needs GNU time. Sizes above about 1,400,000 definitions make a
# file over 64 MiB, which build reads with `--max-file-size` (given here: 2g); 9,000,000 make
# the 430 MB file of issue 15.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-11}
SIZES=("$@")
[ ${#SIZES[@]} -eq 0 ] && SIZES=(1000 10000 100000)
source benches/common.sh
# SPRY_BIN: another build to measure (an older one, for a before/after comparison).
BIN=${SPRY_BIN:-$BIN}

# One module of N definitions: functions, keyword-named methods, comments above and after.
module() {
  awk -v n="$1" 'BEGIN {
    print "{"
    print "  _meta = {name = '\''Big}"
    for (i = 0; i < n; i++) {
      if (i % 3 == 0) printf "  # Definition %d.\n  d%d = func [:x x + %d]\n", i, i, i
      else if (i % 3 == 1) printf "  d%d = method [:a :b a * b + %d] # product\n", i, i
      else printf "  d%d = \"text %d with ] and # inside\"\n", i, i
    }
    print "}"
  }'
}

# A new text each run, so that every put is a change.
I=0
next_text() {
  I=$((I + 1))
  printf 'd%s = func [:x x * %s]\n' "$mid" "$I" >"$WORK/def"
}

echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| definitions (file) | what | median wall | median CPU | peak memory |"
echo "| --- | --- | --- | --- | --- |"
for n in "${SIZES[@]}"; do
  tree=$WORK/tree-$n
  mkdir -p "$tree"
  module "$n" >"$tree/big.spry"
  size="$n ($(du -k "$tree/big.spry" | cut -f1) KB)"
  start=$(date +%s%N)
  (cd "$tree" && /usr/bin/time -f "%M %U %S" -o "$WORK/time" "$BIN" build --max-file-size 2g . >/dev/null)
  end=$(date +%s%N)
  read -r rss user sys < <(tail -1 "$WORK/time")
  printf '| %s | first build | %s ms | %s ms | %s MB |\n' "$size" "$(( (end - start) / 1000000 ))" \
    "$(awk -v u="$user" -v s="$sys" 'BEGIN {printf "%d", (u + s) * 1000}')" "$((rss / 1024))"
  mid=$((n / 2))
  cd "$tree"
  measure "$size | put of one definition (replaced)" next_text \
    "$BIN" put "Big::d$mid" --file "$WORK/def"
  printf 'extra = func [:x x - 1]\n' >"$WORK/extra"
  measure "$size | put of one new definition (appended)" \
    '"$BIN" rm Big::extra >/dev/null 2>&1 || true' \
    "$BIN" put Big::extra --file "$WORK/extra"
  measure "$size | rm of one definition" \
    '"$BIN" put Big::extra --file "$WORK/extra" >/dev/null' \
    "$BIN" rm Big::extra
  measure "$size | export of one changed definition" \
    'next_text; "$BIN" put "Big::d$mid" --file "$WORK/def" >/dev/null' \
    "$BIN" export
  measure "$size | export after put of one new definition" \
    '"$BIN" rm Big::extra >/dev/null 2>&1 || true; "$BIN" export >/dev/null; "$BIN" put Big::extra --file "$WORK/extra" >/dev/null' \
    "$BIN" export
  measure "$size | export after rm of one definition" \
    '"$BIN" put Big::extra --file "$WORK/extra" >/dev/null 2>&1 || true; "$BIN" export >/dev/null; "$BIN" rm Big::extra >/dev/null' \
    "$BIN" export
  measure "$size | save of one changed definition (build)" \
    'I=$((I + 1)); sed -i "s/^\\( *\\)d$mid = .*/\\1d$mid = func [:x x + $I]/" big.spry' \
    "$BIN" build --max-file-size 2g .
  cd - >/dev/null
done
