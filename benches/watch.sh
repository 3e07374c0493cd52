#!/usr/bin/env bash
# Watch benchmarks (issue: watch).
#
#   bash benches/watch.sh [MODULES] [SAVES] [BURST] [IDLE_SECONDS]
#
# Generates a tree of MODULES modules (default 10000), builds it, starts
# `spry-image watch --json` on it, then:
# - SAVES (default 1000) single-file saves, one at a time, each a different module: the file
#   rewritten in place as an editor does; the latency of each is from just before the write
#   to the arrival of the JSON line of the batch that committed it (debounce included);
# - a burst of BURST (default 1000) files changed at once: the time from the first write until
#   every one of them is committed, and in how many batches;
# - IDLE_SECONDS (default 5) of idle: the CPU time the watcher used meanwhile, from
#   /proc/PID/stat (utime + stime, in clock ticks).
# SETTLE (seconds, default 3) is the wait before the idle measurement, for the store to finish
# its background work after the burst. Needs python3. Prints a Markdown table; BENCHMARKS.md
# holds the last figures.
set -euo pipefail
cd "$(dirname "$0")/.."
MODULES=${1:-10000}
SAVES=${2:-1000}
BURST=${3:-1000}
IDLE=${4:-5}
cargo build --release --quiet
BIN=$PWD/target/release/spry-image
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$BIN" gen --modules "$MODULES" "$WORK/tree" >/dev/null 2>&1
"$BIN" build "$WORK/tree" >/dev/null
sleep 2   # let the stamps age past the file system's time granularity
"$BIN" build "$WORK/tree" >/dev/null
echo "tree: $MODULES modules, $(du -sm --exclude=.spry-image "$WORK/tree" | cut -f1) MB"
echo

python3 - "$BIN" "$WORK/tree" "$SAVES" "$BURST" "$IDLE" <<'EOF'
import json, math, os, random, select, signal, subprocess, sys, time

bin, tree, saves, burst, idle = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
files = []
for d, _, names in os.walk(tree):
    if '.spry-image' in d:
        continue
    files += [os.path.relpath(os.path.join(d, n), tree) for n in names if n.endswith('.spry')]
files.sort()
random.seed(42)
picked = random.sample(files, min(len(files), saves + burst))
save_files, burst_files = picked[:saves], picked[saves:saves + burst]

proc = subprocess.Popen([bin, 'watch', '--json', tree], stdout=subprocess.PIPE,
                        stderr=open(os.path.join(os.path.dirname(tree), 'stderr'), 'w'))
out = proc.stdout
buf = b''

def line(timeout=30.0):
    """The next JSON line, read without Python's buffering so that arrival times are exact."""
    global buf
    deadline = time.perf_counter() + timeout
    while b'\n' not in buf:
        left = deadline - time.perf_counter()
        if left <= 0 or not select.select([out], [], [], left)[0]:
            sys.exit('no line from watch within %.0f s' % timeout)
        chunk = os.read(out.fileno(), 1 << 20)
        if not chunk:
            sys.exit('watch exited')
        buf += chunk
    text, buf = buf.split(b'\n', 1)
    return json.loads(text), time.perf_counter()

first, _ = line(60)
assert 'watching' in first, first

def save(rel, n):
    path = os.path.join(tree, rel)
    with open(path, 'rb') as f:
        text = f.read()
    with open(path, 'wb') as f:  # in place: truncate and write, as an editor saving
        f.write(text + b'# save %d\n' % n)

lat = []
batches_seen = 0
for n, rel in enumerate(save_files):
    t0 = time.perf_counter()
    save(rel, n)
    while True:
        batch, t1 = line()
        batches_seen += 1
        if batch.get('generation') is not None and rel in batch.get('paths', []):
            break
    lat.append((t1 - t0) * 1000)
lat.sort()
def pct(p):  # nearest rank
    return lat[max(0, math.ceil(p / 100 * len(lat)) - 1)]

# The burst: every file written at once.
pending = set(burst_files)
modules = {}
t0 = time.perf_counter()
for n, rel in enumerate(burst_files):
    save(rel, saves + n)
burst_batches = 0
while pending:
    batch, t1 = line()
    burst_batches += 1
    failed = {f['path'] for f in batch.get('failed', [])}
    for p in batch.get('paths', []):
        if p not in failed:
            pending.discard(p)
    if batch.get('rescan'):
        pending.clear()
burst_ms = (t1 - t0) * 1000

# Idle: let the store settle, then measure the CPU the process uses doing nothing.
time.sleep(float(os.environ.get("SETTLE", "3")))
def cpu():
    with open('/proc/%d/stat' % proc.pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime, clock ticks
def run_ns():  # every thread's time on a CPU, in nanoseconds, and its wake-ups
    ns = wakes = 0
    for task in os.listdir('/proc/%d/task' % proc.pid):
        try:
            with open('/proc/%d/task/%s/schedstat' % (proc.pid, task)) as f:
                run, _, slices = f.read().split()
            ns += int(run); wakes += int(slices)
        except OSError:
            pass
    return ns, wakes
tick = os.sysconf('SC_CLK_TCK')
c0 = cpu(); n0, w0 = run_ns(); time.sleep(idle); c1 = cpu(); n1, w1 = run_ns()
idle_ms = (c1 - c0) * 1000 / tick
idle_run_ms, idle_wakes = (n1 - n0) / 1e6, w1 - w0

proc.send_signal(signal.SIGTERM)
code = proc.wait(timeout=30)

print('| what | result |')
print('| --- | --- |')
print('| %d single-file saves: save-to-commit latency p50 | %.1f ms |' % (len(lat), pct(50)))
print('| p90 / p99 / max | %.1f / %.1f / %.1f ms |' % (pct(90), pct(99), lat[-1]))
print('| batches read for the saves (a save seen half written adds one) | %d |' % batches_seen)
print('| burst of %d files: first write to last commit | %.0f ms (%d batches) |' % (len(burst_files), burst_ms, burst_batches))
print('| idle CPU over %.0f s, /proc/PID/stat | %.0f ms (%d ticks of %d Hz) |' % (idle, idle_ms, c1 - c0, tick))
print('| idle CPU over %.0f s, schedstat | %.1f ms = %.2f%% of a core, %d wake-ups |' % (idle, idle_run_ms, idle_run_ms / (idle * 10), idle_wakes))
print('| exit on SIGTERM | %d |' % code)
EOF
