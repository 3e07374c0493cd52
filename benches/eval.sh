# The evaluator against the issue's programs: median wall time, median CPU (user) time and
# peak memory of `spry-image run`, and of the reference VM beside it when SPRY_REF names a
# binary that runs a Spry file (see BENCHMARKS.md, "Evaluator", for how to build one).
# Usage (from the repository's root): [SPRY_REF=/path/to/spry] bash benches/eval.sh
# (RUNS=3 by default; needs GNU time.)
set -euo pipefail
RUNS=${RUNS:-3}
source benches/common.sh

# Prints "median wall ms, median user ms, peak KB" of RUNS runs of the command.
timed() {
  local walls=() users=() peak=0
  for _ in $(seq "$RUNS"); do
    /usr/bin/time -f "%e %U %M" -o "$WORK/time" "$@" >/dev/null 2>&1 || true
    read -r wall user rss < <(tail -1 "$WORK/time")
    walls+=("$(awk -v s="$wall" 'BEGIN {printf "%d", s * 1000}')")
    users+=("$(awk -v s="$user" 'BEGIN {printf "%d", s * 1000}')")
    (( rss > peak )) && peak=$rss
  done
  median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
  echo "$(median "${walls[@]}") $(median "${users[@]}") $peak"
}

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg), runs: $RUNS"
if [[ -n ${SPRY_REF:-} ]]; then
  echo '| program | wall | CPU (user) | peak RSS | CPU, interpreted | reference wall | reference CPU | reference RSS | CPU ratio |'
  echo '| --- | --- | --- | --- | --- | --- | --- | --- | --- |'
else
  echo '| program | wall | CPU (user) | peak RSS | CPU, interpreted |'
  echo '| --- | --- | --- | --- | --- |'
fi
for program in factorial methods select closures nested_closures; do
  read -r wall user rss < <(timed "$BIN" run "benches/eval/$program.spry")
  # The same run with no function compiled (`--no-compile`): what the interpreter alone does.
  read -r _ iuser _ < <(timed "$BIN" run --no-compile "benches/eval/$program.spry")
  row="| $program | $wall ms | $user ms | $((rss / 1024)) MB | $iuser ms |"
  if [[ -n ${SPRY_REF:-} ]]; then
    read -r rwall ruser rrss < <(timed "$SPRY_REF" "benches/eval/$program.spry")
    ratio=$(awk -v a="$ruser" -v b="$user" 'BEGIN {printf "%.1fx", (b > 0 ? a / b : 0)}')
    row="$row $rwall ms | $ruser ms | $((rrss / 1024)) MB | $ratio |"
  fi
  echo "$row"
done
