#!/usr/bin/env bash
# Runs electra_jax on this machine's CPU split into N fake devices, so that a mesh layout
# (data x fsdp x tensor) can be tried on a laptop before it goes to a TPU pod or GPU cluster.
set -euo pipefail
usage() {
  cat <<USAGE
usage: launch/local.sh N [electra_jax.main flags...]

Example: launch/local.sh 8 --config=configs/tiny.py --workdir=runs/mesh \\
           --config.mesh.data=2 --config.mesh.fsdp=4
USAGE
}
if [[ $# -lt 1 || "$1" == "--help" || "$1" == "-h" ]]; then usage; exit 0; fi
if ! [[ "$1" =~ ^[1-9][0-9]*$ ]]; then
  echo "error: N must be a positive number of devices, got '$1'" >&2; usage >&2; exit 2
fi
devices=$1; shift
cd "$(dirname "$0")/.."
python=python3
[[ -x .venv/bin/python ]] && python=.venv/bin/python
XLA_FLAGS="--xla_force_host_platform_device_count=${devices} ${XLA_FLAGS:-}" \
  JAX_PLATFORMS=cpu exec "$python" -m electra_jax.main "$@"
