#!/bin/bash
# 1 vs 2 processes (gloo, CPU) on a run that learns: phantom n=120 at 128 px, demo preset,
# the student without KD, 8 epochs, global batch 8.  Usage: benchmarks/ddp_one_vs_two.sh [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-ddp-one-vs-two}
PY=${PY:-.venv/bin/python}
export PYTHONPATH=$PWD OMP_NUM_THREADS=1
[ -d "$W/data" ] || $PY -c "from btseg.data.phantom import synthesize; synthesize('$W/data', n=120, size=128, seed=0, workers=1)"
rm -rf "$W/one" "$W/two"
ARGS="student --kd none --data $W/data --preset demo --epochs 8 --device cpu --no-progress"
$PY -m btseg.cli.distill $ARGS --threads 1 --out "$W/one" > /dev/null
$PY -m torch.distributed.run --nproc_per_node 2 --master-port 29677 -m btseg.cli.distill $ARGS --out "$W/two" > /dev/null
for r in one two; do
  $PY -c "import json; c = json.load(open('$W/$r/student/model.json')); t, m = c['training'], c['metrics']
print('$r', 'world', t['world_size'], 'global batch', t['global_batch'], 'best epoch', t['best_epoch'],
      'val dice %.4f' % m['val']['overall']['dice']['mean'], 'test dice %.4f' % m['test']['overall']['dice']['mean'])"
done
