#!/usr/bin/env bash
# Scores an `lstm-ae eval nab` results tree with NAB's own Python scorer, as a
# cross-check of the Rust scorer (src/eval/nab/rule.rs). Optional: CI does not run it.
#
#   scripts/nab-python-score.sh NAB_CHECKOUT EVAL_OUT [DETECTOR]
#
# NAB_CHECKOUT  a checkout of the numenta/NAB repository (its run.py, nab/,
#               data/, labels/, config/ and results/null/ are used; nothing in
#               it is modified). lstm-ae does not ship NAB's code.
# EVAL_OUT      the --out folder of `lstm-ae eval nab` (holds results/DETECTOR/).
# DETECTOR      the detector name in that tree (default lstmAe).
#
# Python: NAB's scorer needs pandas (before 3.0: NAB writes into arrays that
# pandas 3's copy-on-write makes read-only), simplejson and python-dateutil. They are
# installed with pip into a virtual environment under
# ${NAB_VENV:-~/.cache/lstm-ae/nab-venv} the first time. NAB_CPUS (default 2)
# worker processes.
#
# What runs: NAB's `run.py --optimize --score --normalize` for DETECTOR on a
# temporary copy of the results tree, with NAB's null-detector totals for the
# normalisation. It prints NAB's final scores per profile; they should equal
# the ones `lstm-ae eval nab` printed (its "full" scores) to the second decimal.
set -euo pipefail

die() {
    echo "nab-python-score: $*" >&2
    exit 1
}

[ $# -ge 2 ] || die "usage: $0 NAB_CHECKOUT EVAL_OUT [DETECTOR]"
nab=$(cd "$1" && pwd) || die "no folder $1"
out=$(cd "$2" && pwd) || die "no folder $2"
detector=${3:-lstmAe}

[ -f "$nab/run.py" ] && [ -d "$nab/nab" ] || die "$nab is not a NAB checkout (no run.py, nab/)"
for f in standard reward_low_FP_rate reward_low_FN_rate; do
    [ -f "$nab/results/null/null_${f}_scores.csv" ] ||
        die "$nab/results/null/null_${f}_scores.csv missing (NAB's null detector totals)"
done
[ -d "$out/results/$detector" ] || die "$out/results/$detector missing: run lstm-ae eval nab --out $2 first"

venv=${NAB_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/lstm-ae/nab-venv}
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
fi
if ! "$venv/bin/python" -c 'import pandas, simplejson, dateutil; assert int(pandas.__version__.split(".")[0]) < 3' 2>/dev/null; then
    "$venv/bin/python" -m pip install --quiet 'pandas<3' simplejson python-dateutil
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/results/null"
cp "$nab"/results/null/null_*_scores.csv "$work/results/null/"
cp -R "$out/results/$detector" "$work/results/$detector"
# Score files of an earlier run are outputs, not series.
rm -f "$work/results/$detector"/*_scores.csv
echo '{}' >"$work/thresholds.json"

(
    cd "$nab"
    "$venv/bin/python" run.py -d "$detector" --optimize --score --normalize \
        --skipConfirmation --resultsDir "$work/results" \
        --thresholdsFile "$work/thresholds.json" -n "${NAB_CPUS:-2}"
)
echo "NAB's thresholds (raw score at each):"
cat "$work/thresholds.json"
echo
echo "NAB's final scores:"
cat "$work/results/final_results.json"
echo
