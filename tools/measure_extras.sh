#!/bin/bash
# fresh venvs as a cart vendor / a trainer would make them; sizes and what runs
set -x
SRC=${1:-$(cd "$(dirname "$0")/.." && pwd)}
rm -rf /tmp/xv; mkdir -p /tmp/xv; cd /tmp/xv
for spec in "" "[openvino]"; do
  name=v$(echo "$spec" | tr -d '[]'); python3 -m venv $name
  t0=$(date +%s)
  $name/bin/python -m pip install -q "$SRC$spec" 2>&1 | grep -v "is ignored" | tail -3
  t1=$(date +%s)
  echo "RESULT $name install_s=$((t1-t0)) size=$(du -sm $name | cut -f1)MB torch=$($name/bin/python -c 'import importlib.util as u; print(u.find_spec("torch") is not None)')"
  mkdir -p /tmp/xv/pred-$name
  (cd /tmp/xv && $name/bin/btseg-predict --out /tmp/xv/pred-$name > /tmp/xv/pred-$name.log 2>&1; echo "RESULT $name predict rc=$?"; tail -3 /tmp/xv/pred-$name.log)
  $name/bin/btseg-distill all --data x --out y; echo "RESULT $name distill rc=$?"
  $name/bin/btseg-export; echo "RESULT $name export rc=$?"
done
