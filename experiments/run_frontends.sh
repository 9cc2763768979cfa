#!/usr/bin/env bash
# Run the learnable front-end comparison (docs/frontends.md) in a scratch project DIR:
#   experiments/run_frontends.sh DIR [PARAMS (default experiments/frontends.yaml)] [JOBS (default 2)]
# copies PARAMS to DIR/params.yaml, prepares the data, runs every cell with `musicrep cell`
# (JOBS at a time, seed-major so a stopped run leaves whole seeds), then `musicrep report`.
set -euo pipefail
dir=$1
params=${2:-experiments/frontends.yaml}
jobs=${3:-2}
here=$(cd "$(dirname "$0")/.." && pwd)
mr=${MUSICREP:-$here/.venv/bin/musicrep}
mkdir -p "$dir"
cp "$params" "$dir/params.yaml"
dir=$(cd "$dir" && pwd)
cd "$dir"  # run from the project: a params.yaml in the starting folder would win over --project's
if grep -q fsdd_speakers "$dir/params.yaml"; then  # FSDD with the speakers held out: path and labels CSV
  : "${FSDD_DIR:?set FSDD_DIR to a folder with recordings/*.wav}"
  sed -i "s|/path/to/fsdd|$FSDD_DIR|" "$dir/params.yaml"
  (echo "path,labels"; cd "$FSDD_DIR" && for f in recordings/*.wav; do b=${f##*/}; echo "$f,${b%%_*}"; done) > "$dir/fsdd_labels.csv"
fi
"$mr" --project "$dir" params --check
tasks=$("$here/.venv/bin/python" -c "import yaml,sys; print(' '.join(yaml.safe_load(open(sys.argv[1]))['grid']['tasks']))" "$dir/params.yaml")
for t in $tasks; do
  [ "$t" = fsdd_speakers ] || "$mr" --project "$dir" download "$t"
  "$mr" --project "$dir" segment "$t"
  "$mr" --project "$dir" features "$t"
done
"$here/.venv/bin/python" - "$dir/params.yaml" > cells.txt <<'PY'
import sys, yaml
g = yaml.safe_load(open(sys.argv[1]))["grid"]
for seed in g["seeds"]:
    for task in g["tasks"]:
        for model in g["models"]:
            print(task, model, seed)
PY
mkdir -p "$dir/logs"
xargs -P "$jobs" -L 1 sh -c '/usr/bin/time -f "%e s wall %U s user" "$0" --project "$1" cell "$2" "$3" --seed "$4" > "$1/logs/$2__$3__$4.log" 2>&1' "$mr" "$dir" < cells.txt
"$mr" --project "$dir" report
