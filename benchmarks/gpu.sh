#!/usr/bin/env bash
# The GPU check in one command: the whole benchmark table on CUDA, then `atml run all` at default
# sizes with random weights (the GPU machine has no internet) on FashionMNIST, MNIST's test split
# standing in for the GAN's and VAE's training set, then the report. Everything it writes goes
# under one folder, with each step's log and seconds.
#
#   bash benchmarks/gpu.sh [OUT]           # on a CUDA machine: OUT defaults to gpu-results
#   bash benchmarks/gpu.sh --smoke [OUT]   # anywhere, on CPU at smoke sizes: tests this script
#
# Data: the datasets under DATA (default: data/, torchvision's layout: data/MNIST/raw,
# data/FashionMNIST/raw), or wherever atml finds them (`atml data check` is logged first). The
# project's device machine has only the working tree: copy the IDX files into data/ and carry it.
set -euo pipefail

smoke=() device=cuda
if [[ "${1:-}" == "--smoke" ]]; then
    smoke=(--smoke) device=cpu
    shift
fi
out=${1:-gpu-results}
data=${DATA:-data}
mkdir -p "$out"

step() {  # step NAME COMMAND...: runs it, its output in OUT/NAME.log, its seconds in OUT/steps.txt
    local name=$1 started=$SECONDS
    shift
    echo "== $name: $*"
    if "$@" >"$out/$name.log" 2>&1; then
        echo "$name: $((SECONDS - started)) s, ok" | tee -a "$out/steps.txt"
    else
        echo "$name: $((SECONDS - started)) s, FAILED (exit $?; see $out/$name.log)" | tee -a "$out/steps.txt"
        tail -5 "$out/$name.log"
    fi
}

: >"$out/steps.txt"
{ nvidia-smi 2>/dev/null || echo "no nvidia-smi"; python -c "import torch; print('torch', torch.__version__)"; } \
    >"$out/machine.txt" 2>&1
step data-check python -m atml data check --root "$data"
step benchmarks python -m benchmarks "${smoke[@]}" --device "$device" --out "$out/RESULTS.md"
step run-all python -m atml run all "${smoke[@]}" --device "$device" --out "$out/runs" \
    --set "data.root=$data" --set data.dataset=fashion-mnist --set model.weights=none \
    --set data.train_split=test
step report python -m atml report --outputs "$out/runs" --to "$out/report"
echo "results in $out: steps.txt, RESULTS.md, runs/, report/"
! grep -q FAILED "$out/steps.txt"
