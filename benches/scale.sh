#!/usr/bin/env bash
# Growth, not one point (issue 15): each command at three tree sizes, beside git on the same
# tree, in one run, with the slope (how many times longer at the largest size than at the
# smallest, per size step).
#
#   bash benches/scale.sh                       # 10000 30000 100000 modules of `gen`'s corpus
#   SIZES="1000 3000 10000" bash benches/scale.sh   # smaller, for a quick look
#   CORPUS=foreign bash benches/scale.sh        # the same sizes of a corpus `gen` did not write
#
# CORPUS=foreign builds the tree from the Spry sources of gokr/spry and gokr/spryvm (the
# language's own files, written by people): FOREIGN=DIR names a directory holding them (for
# example a clone made with the workplace's fetch tool); each file is copied under new module
# names until the tree has the asked number of files. Each copy ends with a comment line
# naming it (`# copy 17`), so that no two files of the tree are the same, as in a real tree;
# COPIES=identical leaves the copies as they are (git then stores each text once, however
# many files hold it, and spends its time on the index alone). Needs git and GNU time; writes only
# under a temporary directory. 100,000 modules take about 1 GB of disk, twice (tree and image).
# Each figure is the best of RUNS runs (default 3; QUICK_RUNS, default 15, for the no-change
# builds, the statuses and `show`), wall clock, whole process; memory is the highest peak RSS
# seen.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=${SIZES:-"10000 30000 100000"}
RUNS=${RUNS:-3}
CORPUS=${CORPUS:-gen}
cargo build --release --quiet
BIN=$PWD/target/release/spry-image
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# aside PATH: moves PATH out of the way instead of deleting it. ext4 does not reuse an inode
# freed in the last minute and searches past each one, so creating 10,000 files just after
# deleting 10,000 costs several times more than creating them on a quiet disk: whoever ran
# after an `rm -rf` lost (git as much as spry-image). Everything set aside goes with $WORK.
# The fresh builds and adds also start after a `sync`: else each run wrote back what the run
# before it wrote while it ran.
ASIDE=0
aside() {
  if [ -e "$1" ]; then
    ASIDE=$((ASIDE + 1))
    mv "$1" "$WORK/aside.$ASIDE"
  fi
}

# warm: reads every file of the tree (not .git, not the image) into the page cache. A fresh
# build and `git add -A` both read the whole tree; on a machine that trims its page cache
# (this one drops most of it every so often) whichever ran after a trim read from the disk
# and lost by a third. Both start warm, as after a checkout.
warm() {
  find . -path ./.git -prune -o -path ./.spry-image -prune -o -type f -print0 | xargs -0 cat >/dev/null
}

# best LABEL SETUP CMD...: the best wall time (ms) and highest peak RSS (MB) of RUNS runs,
# kept in the associative arrays TIME and MEM under LABEL.
declare -A TIME MEM SIZE_MB
best() {
  local label=$1 setup=$2; shift 2
  local low="" peak=0
  for _ in $(seq "${BEST_RUNS:-$RUNS}"); do
    eval "$setup"
    local start end rss ms
    start=$(date +%s%N)
    /usr/bin/time -f "%M" -o "$WORK/time" "$@" >/dev/null 2>&1 || true
    end=$(date +%s%N)
    ms=$(( (end - start) / 1000000 ))
    rss=$(tail -1 "$WORK/time")
    (( rss > peak )) && peak=$rss
    if [ -z "$low" ] || (( ms < low )); then low=$ms; fi
  done
  TIME[$label]=$low
  MEM[$label]=$((peak / 1024))
}

# best, QUICK_RUNS times (default 15) instead of RUNS: for the commands that take some
# milliseconds, on both sides (a status of 20 ms moves by 5 with whatever else the machine does).
quick() {
  BEST_RUNS=${QUICK_RUNS:-15} best "$@"
}

# The tree of N modules, as CORPUS says.
make_tree() {
  local n=$1 dir=$2
  if [ "$CORPUS" = gen ]; then
    "$BIN" gen --modules "$n" "$dir" >/dev/null 2>&1
    return
  fi
  : "${FOREIGN:?CORPUS=foreign needs FOREIGN=DIR holding .sy/.spry files}"
  # Each copy under a new file name is a new module; a module named inside its file (`_meta`'s
  # `name = 'Foo`) gets the copy's number appended to that name, so that copies do not claim
  # one module twice. Nothing else of the text changes.
  python3 - "$FOREIGN" "$n" "$dir" "${COPIES:-distinct}" <<'PY'
import os, re, sys
root, n, out, copies = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
sources = sorted(
    os.path.join(d, f)
    for d, _, files in os.walk(root) if "/.git" not in d
    for f in files if f.endswith((".sy", ".spry"))
)
texts = [open(p, "rb").read() for p in sources]
named = re.compile(rb"(_meta\s*=\s*\{[^}]*?name\s*=\s*')(\w+)")
for i in range(n):
    text = named.sub(lambda m: m.group(1) + m.group(2) + b"_%d" % i, texts[i % len(texts)], count=1)
    if copies != "identical":
        text += (b"" if text.endswith(b"\n") else b"\n") + b"# copy %d\n" % i
    sub = os.path.join(out, "d%d" % (i // 1000))
    os.makedirs(sub, exist_ok=True)
    with open(os.path.join(sub, "m%d.sy" % i), "wb") as f:
        f.write(text)
PY
}

ROWS=(
  "git add -A (fresh repository)"
  "build (fresh image)"
  "git status (nothing changed)"
  "build (nothing changed)"
  "status (nothing changed)"
  "show one definition"
  "git checkout into an empty directory"
  "export --to an empty directory"
)

for n in $SIZES; do
  tree=$WORK/tree
  aside "$tree"
  aside "$WORK/out"
  make_tree "$n" "$tree"
  mb=$(du -sm "$tree" | cut -f1)
  echo "size $n: $(find "$tree" -type f | wc -l) files, $mb MB" >&2
  SIZE_MB[$n]=$mb
  cd "$tree"
  best "$n git add -A (fresh repository)" \
    'aside .git && git init -q && git config gc.auto 0 && git config maintenance.auto false && warm && sync' \
    git add -A
  git -c user.email=b@b -c user.name=b commit -qm tree
  best "$n build (fresh image)" 'aside .spry-image && warm && sync' "$BIN" build .
  sleep 2   # stamps older than the file system's time granularity
  "$BIN" build . >/dev/null
  sync
  quick "$n git status (nothing changed)" ':' git status --short
  quick "$n build (nothing changed)" ':' "$BIN" build .
  quick "$n status (nothing changed)" ':' "$BIN" status .
  # The middle module's last definition: a point read by key, whatever the image's size.
  module=$("$BIN" ls --json | python3 -c 'import sys, json
held = [m["module"] for m in map(json.loads, sys.stdin) if m["definitions"] > 0]
print(held[len(held) // 2])')
  def=$("$BIN" ls "$module" --json | tail -1 | python3 -c 'import sys, json; print(json.load(sys.stdin)["name"])')
  target="$module::$def"
  quick "$n show one definition" ':' "$BIN" show "$target"
  # Each after a `sync`, as the fresh builds: git leaves what it wrote to be written back
  # later, and export's own `syncfs` would otherwise pay for the checkout run before it.
  best "$n git checkout into an empty directory" "aside '$WORK/out' && mkdir '$WORK/out' && sync" \
    git --work-tree="$WORK/out" checkout -f HEAD -- .
  best "$n export --to an empty directory" "aside '$WORK/out' && mkdir '$WORK/out' && sync" \
    "$BIN" export --to "$WORK/out"
  cd "$WORK"
done

# The table: one row per command, one column per size, the slope, and the ratio to git at the
# largest size where git does the same job.
read -r -a sizes <<<"$SIZES"
first=${sizes[0]}; last=${sizes[${#sizes[@]}-1]}
corpus=$CORPUS
[ "$CORPUS" = foreign ] && corpus+=" (${COPIES:-distinct} copies)"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; load average $(cut -d' ' -f1-3 /proc/loadavg); $(git --version); corpus: $corpus"
echo
header="| command |"; rule="| --- |"
for n in "${sizes[@]}"; do header+=" $n modules (${SIZE_MB[$n]} MB) |"; rule+=" --- |"; done
echo "$header time per module, $last vs $first (1.00 = linear) | vs git at $last |"
echo "$rule --- | --- |"
declare -A PEER=(
  ["build (fresh image)"]="git add -A (fresh repository)"
  ["build (nothing changed)"]="git status (nothing changed)"
  ["status (nothing changed)"]="git status (nothing changed)"
  ["export --to an empty directory"]="git checkout into an empty directory"
)
for row in "${ROWS[@]}"; do
  line="| $row |"
  for n in "${sizes[@]}"; do
    line+=" ${TIME[$n $row]} ms, ${MEM[$n $row]} MB |"
  done
  # Time per module at the largest size over time per module at the smallest: 1.0 is linear.
  slope=$(python3 -c "print(f'{(${TIME[$last $row]} / $last) / max(${TIME[$first $row]} / $first, 1e-9):.2f}')")
  peer=${PEER[$row]:-}
  if [ -n "$peer" ]; then
    ratio=$(python3 -c "print(f'{${TIME[$last $row]} / max(${TIME[$last $peer]}, 1):.2f}x')")
  else
    ratio="-"
  fi
  echo "$line $slope | $ratio |"
done
