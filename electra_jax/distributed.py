"""Joining a multi-process job: JAX's own multi-controller runtime, one process per host.

Every process runs the same program on its own devices; `jax.distributed.initialize` connects them
so that jitted steps see all devices of all hosts as one mesh. It must run before JAX touches a
device. On CPU the cross-process collectives are gloo (JAX's default for CPU).
"""

from absl import logging
import jax

from electra_jax.errors import UserError

_NOTHING_DETECTED = 'coordinator_address should be defined'


def initialize(coordinator_address: str | None, num_processes: int | None,
               process_id: int | None) -> None:
  """Joins the job that the flags describe; without flags, the one the environment describes
  (Cloud TPU VMs and GKE TPU pods, SLURM, Open MPI, Kubernetes, or $JAX_COORDINATOR_ADDRESS as
  JAX detects them). With neither, the process runs alone and nothing happens."""
  given = {'--coordinator_address': coordinator_address, '--num_processes': num_processes,
           '--process_id': process_id}
  missing = [name for name, value in given.items() if value is None]
  if missing and len(missing) < len(given):
    raise UserError(f'{", ".join(missing)} missing: a multi-process job needs all of '
                    '--coordinator_address=HOST:PORT, --num_processes and --process_id')
  if not missing:
    if num_processes < 1 or not 0 <= process_id < num_processes:
      raise UserError(f'--process_id={process_id} must be in [0, --num_processes={num_processes})')
    # Explicit flags win over whatever cluster the environment suggests, and every local device
    # stays visible (JAX's SLURM detection would otherwise give each process a single GPU).
    jax.distributed.initialize(coordinator_address, num_processes, process_id,
                               cluster_detection_method='deactivate')
  else:
    try:
      jax.distributed.initialize()
    except ValueError as e:
      if _NOTHING_DETECTED not in str(e):
        raise UserError(f'jax.distributed could not start from the environment: {e}') from e
      return
  logging.info('process %d of %d, %d of %d devices here', jax.process_index(), jax.process_count(),
               jax.local_device_count(), jax.device_count())
