"""What a run leaves beside its checkpoints so that its directory stands on its own.

`config.json` is the run's resolved config (model sizes, the tokenizer's special ids and options; for
fine-tuning also a `task` section with the head and label names) and the tokenizer file is
`tokenizer.model` (sentencepiece) or `vocab.txt` (WordPiece). Fine-tuning opens a pre-training run this
way; export opens either kind.
"""

import dataclasses
import json
import os

import jax
import ml_collections

from electra_jax import files
from electra_jax.data import tokenizer as tokenizer_lib
from electra_jax.errors import UserError

CONFIG_FILE = 'config.json'


def record(workdir: str, config: ml_collections.ConfigDict,
           tokenizer: tokenizer_lib.Tokenizer | None) -> None:
  if jax.process_index() != 0:
    return
  files.write_atomically(os.path.join(workdir, CONFIG_FILE), config.to_json(indent=2))
  if tokenizer is not None:
    files.write_atomically(os.path.join(workdir, tokenizer.file_name), tokenizer.file_bytes)


@dataclasses.dataclass(frozen=True)
class Run:
  directory: str
  config: ml_collections.ConfigDict  # The run's resolved config.
  tokenizer: tokenizer_lib.Tokenizer | None  # None for a run on the synthetic source.


def open_run(path: str, flag: str) -> Run:
  """The run in directory `path`, which the user gave as `flag` (named in errors)."""
  directory = os.path.abspath(os.path.expanduser(path))
  config_path = os.path.join(directory, CONFIG_FILE)
  if not os.path.isfile(config_path):
    raise UserError(f'{flag}={path} has no {CONFIG_FILE}: it is not the --workdir of an '
                    'electra_jax run')
  try:
    with open(config_path, encoding='utf-8') as f:
      config = ml_collections.ConfigDict(json.load(f))
  except ValueError as e:
    raise UserError(f'{config_path} is not an electra_jax config ({e})') from e
  if 'model' not in config or 'data' not in config:
    raise UserError(f'{config_path} is not an electra_jax config (it has no model or data section)')
  tokenizer = tokenizer_lib.load_from_dir(directory, config.data.get('lowercase', True),
                                          config.data.get('strip_accents'))
  return Run(directory, config, tokenizer)
