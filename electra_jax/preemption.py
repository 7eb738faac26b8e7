"""Stopping on request: SIGTERM (preemption notices, `kill`, SLURM's time limit, a TPU VM shutting
down) or SIGINT (Ctrl-C) make the training loop finish its current step, write a checkpoint and exit 0,
so that running the same command again resumes exactly.

A lone process watches the signals itself. In a multi-process job every process must stop after the
same step, which a local flag cannot promise; there JAX's preemption sync service does it: the
process that receives SIGTERM tells the coordinator, and `reached_preemption_sync_point` turns True on
every process at the same step (the first that none has passed yet).
"""

import os
import signal

from absl import logging
import jax
from jax.experimental import multihost_utils


class Stopped(Exception):
  """Training stopped on request after its checkpoint at `step` was written to `path`."""

  def __init__(self, step: int, path: str):
    super().__init__(f'stopped on request at step {step}: checkpoint saved in {path}; run the same '
                     'command again to resume')


class StopRequests:
  """A context that turns SIGTERM/SIGINT into `requested(step) == True` at a step boundary."""

  def __init__(self):
    self._received = False
    self._previous = {}

  def __enter__(self) -> 'StopRequests':
    # With jax.distributed, the sync service already listens for SIGTERM; Ctrl-C is passed to it.
    self._multi_process = jax.distributed.is_initialized()
    signals = (signal.SIGINT,) if self._multi_process else (signal.SIGINT, signal.SIGTERM)
    self._previous = {signum: signal.signal(signum, self._handle) for signum in signals}
    return self

  def __exit__(self, *exc_info) -> None:
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)

  def _handle(self, signum, frame) -> None:
    del frame
    logging.warning('%s: stopping after the current step with a checkpoint (send it again to stop '
                    'at once, without one)', signal.Signals(signum).name)
    signal.signal(signum, signal.SIG_DFL)
    self.request()

  def request(self) -> None:
    """Asks every process to stop at the same step, as a signal does; once is enough."""
    if self._received:
      return
    self._received = True
    if self._multi_process:  # Through the sync service, which listens for SIGTERM.
      os.kill(os.getpid(), signal.SIGTERM)

  def requested(self, step: int) -> bool:
    """Whether to stop after `step`; call it after every step, on every process."""
    if self._multi_process:
      return multihost_utils.reached_preemption_sync_point(step)
    return self._received
