#!/usr/bin/env bash
# One command for a lent GPU (bench/accelerator.py says what it measures):
#   bash bench/accelerator.sh --prepare              here: wheels/ and the device tool's command
#   bash bench/accelerator.sh                        on the GPU machine: results under $OUT
#   bash bench/accelerator.sh --smoke --output=DIR   the same code paths on CPU at toy sizes
# $PYTHON picks the interpreter (default python3: the GPU machine's, which has JAX).
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python3}" -m bench.accelerator "$@"
