# Shared by the benchmark scripts (sourced, from the repository's root): builds the release
# binary, makes a scratch directory, and defines `measure`.
cargo build --release --quiet
BIN=$PWD/target/release/spry-image
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# Prints the median wall time (ms, whole process), the median CPU time (user + system, ms) and
# the highest peak RSS of RUNS runs. Wall time on a shared machine carries waiting; CPU time
# does not.
measure() {
  local label=$1; shift
  local setup=$1; shift
  local times=() cpus=() peak=0
  for _ in $(seq "$RUNS"); do
    eval "$setup"
    local start end rss
    start=$(date +%s%N)
    /usr/bin/time -f "%M %U %S" -o "$WORK/time" "$@" >/dev/null 2>&1 || true
    end=$(date +%s%N)
    times+=("$(( (end - start) / 1000000 ))")
    read -r rss user sys < <(tail -1 "$WORK/time")
    cpus+=("$(awk -v u="$user" -v s="$sys" 'BEGIN {printf "%d", (u + s) * 1000}')")
    (( rss > peak )) && peak=$rss
  done
  local median cpu
  median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  cpu=$(printf '%s\n' "${cpus[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  printf '| %s | %s ms | %s ms | %s MB |\n' "$label" "$median" "$cpu" "$((peak / 1024))"
}
