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
# new definition, after `rm` of one, and after a mix (a new definition, a new text, the
# removal of that definition and its return at the end), each after an export (the file
# agreed), and a save of one changed definition in the file (what the watcher does on a save:
# `build .` after `sed -i`), also right after `rm` and export. Each timing is the median of RUNS runs
# (default 11), wall clock and CPU (user + system) in milliseconds, whole process; the peak
# memory is the largest of the runs. The first build of the file is measured once. Needs GNU
# time. Sizes above about 1,400,000 definitions make a
# file over 64 MiB, which build reads with `--max-file-size` (given here: 2g); 9,000,000 make
# the 430 MB file of issue 15.
#
#   CORPUS=foreign FOREIGN=DIR bash benches/put.sh [SIZES...]
#
# The same module built from definitions people wrote: the top-level bindings (`name = ...`,
# with the comment lines just above) of the Spry files under DIR (for example clones of
# gokr/spry and gokr/spryvm made with the workplace's fetch tool), each kept only if it reads
# alone as one definition with exactly its text, repeated under new names (`name_N`) until the
# module has SIZE definitions. Nothing else of their texts changes. One definition in the middle
# is this script's (`dN = ...` on one line), so that the edits below are the same for both.
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

# The module of CORPUS=foreign: N definitions taken from the files under $FOREIGN.
foreign_module() {
  local n=$1 cand=$WORK/candidates
  rm -rf "$cand"
  mkdir -p "$cand"
  # Each top-level binding, with the comment lines above it and the lines after it up to the
  # next line at the left margin that does not close a bracket, in a module file of its own.
  python3 - "$FOREIGN" "$cand" <<'PY'
import os, re, sys
root, out = sys.argv[1], sys.argv[2]
head = re.compile(rb"^([A-Za-z_][A-Za-z0-9_]*:?) = ")
k = 0
for d, _, files in sorted(os.walk(root)):
    if "/.git" in d:
        continue
    for f in sorted(files):
        if not f.endswith((".sy", ".spry")):
            continue
        lines = open(os.path.join(d, f), "rb").read().split(b"\n")
        for i, line in enumerate(lines):
            if not head.match(line):
                continue
            start = i
            while start > 0 and lines[start - 1].startswith(b"#"):
                start -= 1
            end = i + 1
            while end < len(lines) and (lines[end][:1] in (b" ", b"\t", b"]", b"}", b")")):
                end += 1
            text = b"\n".join(lines[start:end]).rstrip()
            k += 1
            with open(os.path.join(out, "c%d.spry" % k), "wb") as o:
                o.write(b"{\n_meta = {name = 'C%d}\n" % k + text + b"\n}\n")
PY
  (cd "$cand" && "$BIN" build . >/dev/null 2>&1) || true
  # Kept: the modules that read as `_meta` and one definition whose size is the text's.
  for file in "$cand"/c*.spry; do
    local m
    m=C$(basename "$file" .spry | tr -d c)
    (cd "$cand" && "$BIN" ls --json "$m" 2>/dev/null) | python3 -c '
import json, re, sys
rows = [json.loads(l) for l in sys.stdin if l.strip()]
text = open(sys.argv[1], "rb").read().split(b"\n", 2)[2].rsplit(b"\n}", 1)[0]
names = [r["name"] for r in rows if r["name"] != "_meta"]
ok = len(rows) == 2 and len(names) == 1 and rows[[r["name"] for r in rows].index(names[0])]["size"] == len(text)
print(sys.argv[1] if ok else "")' "$file"
  done | grep . >"$WORK/kept" || true
  python3 - "$n" "$WORK/kept" <<'PY'
import re, sys
n, kept = int(sys.argv[1]), open(sys.argv[2]).read().split()
texts = [open(p, "rb").read().split(b"\n", 2)[2].rsplit(b"\n}", 1)[0] for p in kept]
if not texts:
    sys.exit("no definition of FOREIGN reads alone")
head = re.compile(rb"^([A-Za-z_][A-Za-z0-9_]*)(:?) = ", re.M)
out = sys.stdout.buffer
out.write(b"{\n_meta = {name = 'Big}\n")
for i in range(n):
    if i == n // 2:
        out.write(b"d%d = func [:x x + %d]\n" % (i, i))
        continue
    t = texts[i % len(texts)]
    out.write(head.sub(lambda m: m.group(1) + b"_%d" % i + m.group(2) + b" = ", t, count=1) + b"\n")
out.write(b"}\n")
PY
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
  if [ "${CORPUS:-gen}" = foreign ]; then
    : "${FOREIGN:?CORPUS=foreign needs FOREIGN=DIR holding .sy/.spry files}"
    foreign_module "$n" >"$tree/big.spry"
  else
    module "$n" >"$tree/big.spry"
  fi
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
    '"$BIN" export >/dev/null; next_text; "$BIN" put "Big::d$mid" --file "$WORK/def" >/dev/null' \
    "$BIN" export
  measure "$size | export after put of one new definition" \
    '"$BIN" rm Big::extra >/dev/null 2>&1 || true; "$BIN" export >/dev/null; "$BIN" put Big::extra --file "$WORK/extra" >/dev/null' \
    "$BIN" export
  measure "$size | export after rm of one definition" \
    '"$BIN" put Big::extra --file "$WORK/extra" >/dev/null 2>&1 || true; "$BIN" export >/dev/null; "$BIN" rm Big::extra >/dev/null' \
    "$BIN" export
  measure "$size | export after a mix (new definition, new text, rm, put back)" \
    '"$BIN" rm Big::extra >/dev/null 2>&1 || true; "$BIN" export >/dev/null; "$BIN" put Big::extra --file "$WORK/extra" >/dev/null; next_text; "$BIN" put "Big::d$mid" --file "$WORK/def" >/dev/null; "$BIN" rm "Big::d$mid" >/dev/null; next_text; "$BIN" put "Big::d$mid" --file "$WORK/def" >/dev/null' \
    "$BIN" export
  measure "$size | save of one changed definition after rm and export (build)" \
    '"$BIN" put Big::extra --file "$WORK/extra" >/dev/null 2>&1 || true; "$BIN" export >/dev/null; "$BIN" rm Big::extra >/dev/null; "$BIN" export >/dev/null; I=$((I + 1)); sed -i "s/^\\( *\\)d$mid = .*/\\1d$mid = func [:x x + $I]/" big.spry' \
    "$BIN" build --max-file-size 2g .
  measure "$size | save of one changed definition (build)" \
    'I=$((I + 1)); sed -i "s/^\\( *\\)d$mid = .*/\\1d$mid = func [:x x + $I]/" big.spry' \
    "$BIN" build --max-file-size 2g .
  cd - >/dev/null
done
