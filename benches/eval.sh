# The evaluator against the issue's programs: wall time and peak memory of `spry-image run`.
# Usage (from the repository's root): bash benches/eval.sh   (RUNS=3 by default)
set -euo pipefail
RUNS=${RUNS:-3}
source benches/common.sh
echo '| program | median | peak RSS |'
echo '| --- | --- | --- |'
for program in factorial methods select; do
  measure "$program" ":" "$BIN" run "benches/eval/$program.spry"
done
