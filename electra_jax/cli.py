"""What the electra_jax commands share. Every command is `python -m electra_jax.<module>` with absl
flags and `run_command`: no positional arguments, a quiet console, user errors as one line with a
non-zero exit instead of a traceback. `run` adds what the training commands share: --config,
--workdir and --wait_for_lock, joining a multi-process job, and a stop on SIGTERM or SIGINT as one
line with exit 0."""

import logging as std_logging
import sys
from typing import Callable

from absl import app, flags, logging
import jax
import ml_collections
from ml_collections import config_flags

from electra_jax import distributed, preemption
from electra_jax.errors import UserError


def quiet_libraries() -> None:
  """Libraries (orbax above all) narrate at INFO; keep the console for our progress and warnings."""
  logging.get_absl_handler().python_handler.addFilter(
      lambda record: record.levelno >= std_logging.WARNING or '/electra_jax/' in record.pathname)


def run(job: Callable[[ml_collections.ConfigDict, str, bool], object]) -> None:
  """Parses the flags and runs job(config, workdir, wait_for_lock)."""
  # Defined here, not on import, so that other commands (export) can import this module.
  config_flag = config_flags.DEFINE_config_file(
      'config', None, 'Config file, e.g. configs/base.py; fields can be overridden as '
      '--config.a.b=v.', lock_config=True)
  workdir_flag = flags.DEFINE_string(
      'workdir', None, 'Directory for checkpoints, metrics.jsonl, tensorboard/ and results; '
      'running the same command again resumes from it.')
  flags.mark_flags_as_required(['config', 'workdir'])
  wait_flag = flags.DEFINE_bool(
      'wait_for_lock', False, 'When another run holds --workdir but has stopped renewing its lock (a '
      'machine lost, a process killed on another host), wait for the lock to expire (at most 5 '
      'minutes, with a countdown) instead of exiting. A lock renewed meanwhile belongs to a live run, '
      'and the command exits as without the flag. The launchers in launch/ set it for relaunches.')
  coordinator_flag = flags.DEFINE_string(
      'coordinator_address', None, 'Multi-process jobs: HOST:PORT of process 0, which every process '
      'connects to. Not needed on Cloud TPU VMs, GKE TPU pods, or under SLURM with one process per '
      'GPU, where JAX finds the job itself.')
  processes_flag = flags.DEFINE_integer('num_processes', None, 'Multi-process jobs: how many.')
  process_id_flag = flags.DEFINE_integer(
      'process_id', None, 'Multi-process jobs: this process, from 0 to --num_processes - 1.')

  def command():
    distributed.initialize(coordinator_flag.value, processes_flag.value, process_id_flag.value)
    if jax.process_index() != 0:
      logging.set_verbosity(logging.WARNING)
    try:
      job(config_flag.value, workdir_flag.value, wait_flag.value)
    except preemption.Stopped as e:
      if jax.process_index() == 0:
        print(e, flush=True)

  run_command(command)


def run_command(command: Callable[[], object]) -> None:
  """Parses the flags (defined beforehand) and runs command(), which reads them."""

  def main(argv):
    if len(argv) > 1:
      raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
    quiet_libraries()
    try:
      command()
    except UserError as e:
      sys.exit(f'error: {e}')

  app.run(main)
