"""What every electra_jax command shares: --config and --workdir, a quiet console, and user errors
as one line with a non-zero exit instead of a traceback."""

import logging as std_logging
import sys
from typing import Callable

from absl import app, flags, logging
import jax
import ml_collections
from ml_collections import config_flags

from electra_jax.errors import UserError

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Config file, e.g. configs/base.py; fields can be overridden as --config.a.b=v.',
    lock_config=True)
_WORKDIR = flags.DEFINE_string(
    'workdir', None, 'Directory for checkpoints, metrics.jsonl, tensorboard/ and results; running '
    'the same command again resumes from it.')


def run(job: Callable[[ml_collections.ConfigDict, str], object]) -> None:
  """Parses the flags and runs job(config, workdir)."""
  flags.mark_flags_as_required(['config', 'workdir'])

  def main(argv):
    if len(argv) > 1:
      raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
    # Libraries (orbax above all) narrate at INFO; keep the console for our progress.
    logging.get_absl_handler().python_handler.addFilter(
        lambda record: record.levelno >= std_logging.WARNING or '/electra_jax/' in record.pathname)
    if jax.process_index() != 0:
      logging.set_verbosity(logging.WARNING)
    try:
      job(_CONFIG.value, _WORKDIR.value)
    except UserError as e:
      sys.exit(f'error: {e}')

  app.run(main)
