"""Joining a multi-process job: JAX's own multi-controller runtime, one process per host.

Every process runs the same program on its own devices; `jax.distributed.initialize` connects them
so that jitted steps see all devices of all hosts as one mesh. It must run before JAX touches a
device. On CPU the cross-process collectives are gloo (JAX's default for CPU).
"""

from typing import Callable, TypeVar

from absl import logging
import jax
from jax.experimental import multihost_utils
import numpy as np

from electra_jax.errors import UserError

T = TypeVar('T')

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


def on_process_0(fn: Callable[[], T]) -> T | None:
  """fn() on process 0 only (None elsewhere), and its failure on every process: the others raise too,
  instead of waiting in the job's next collective for a process that has exited."""
  result, failure = None, None
  if jax.process_index() == 0:
    try:
      result = fn()
    except BaseException as e:  # pylint: disable=broad-exception-caught  (raised again below)
      failure = e
  if jax.process_count() > 1:
    failed = int(multihost_utils.broadcast_one_to_all(np.int32(failure is not None)))
    if failed and failure is None:
      raise UserError('process 0 failed; its error says why')
  if failure is not None:
    raise failure
  return result
