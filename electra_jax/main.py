"""ELECTRA pre-training from the command line.

  python -m electra_jax.main --config=configs/tiny.py --workdir=runs/tiny [--config.train.steps=50]

Running the same command again resumes from the newest checkpoint in --workdir.
"""

import logging as std_logging
import sys

from absl import app, flags, logging
import jax
from ml_collections import config_flags

from electra_jax import train
from electra_jax.errors import UserError

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Config file, e.g. configs/base.py; fields can be overridden as --config.a.b=v.',
    lock_config=True)
_WORKDIR = flags.DEFINE_string(
    'workdir', None, 'Directory for checkpoints/, metrics.jsonl and tensorboard/; reused to resume.')
flags.mark_flags_as_required(['config', 'workdir'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  # Libraries (orbax above all) narrate at INFO; keep the console for training progress.
  logging.get_absl_handler().python_handler.addFilter(
      lambda record: record.levelno >= std_logging.WARNING or '/electra_jax/' in record.pathname)
  if jax.process_index() != 0:
    logging.set_verbosity(logging.WARNING)
  try:
    train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except UserError as e:
    sys.exit(f'error: {e}')


if __name__ == '__main__':
  app.run(main)
