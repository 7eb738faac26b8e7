"""Reading a pre-training --workdir: its config, its tokenizer and its discriminator's weights.

python -m electra_jax.main leaves config.json and tokenizer.model beside checkpoints/ (train.py); only
the embeddings and the discriminator's encoder are read back, never the generator or optimizer state.
"""

import dataclasses
import json
import os

import ml_collections

from electra_jax import checkpoint, train
from electra_jax.data import tokenizer as tokenizer_lib
from electra_jax.errors import UserError


@dataclasses.dataclass(frozen=True)
class Pretrained:
  directory: str
  config: ml_collections.ConfigDict  # The pre-training run's resolved config.
  tokenizer: tokenizer_lib.Tokenizer


def open_workdir(path: str) -> Pretrained:
  if not path:
    raise UserError('config.init_checkpoint is not set; give the --workdir of a pre-training run, '
                    'e.g. --config.init_checkpoint=runs/tiny')
  directory = os.path.abspath(os.path.expanduser(path))
  config_path = os.path.join(directory, train.CONFIG_FILE)
  if not os.path.isfile(config_path):
    raise UserError(f'config.init_checkpoint={path} has no {train.CONFIG_FILE}: it is not the '
                    '--workdir of a python -m electra_jax.main run')
  try:
    with open(config_path, encoding='utf-8') as f:
      config = ml_collections.ConfigDict(json.load(f))
  except ValueError as e:
    raise UserError(f'{config_path} is not a pre-training config ({e})') from e
  if 'model' not in config or 'data' not in config:
    raise UserError(f'{config_path} is not a pre-training config (it has no model or data section)')
  tokenizer_path = os.path.join(directory, train.TOKENIZER_FILE)
  if not os.path.isfile(tokenizer_path):
    raise UserError(f'config.init_checkpoint={path} has no {train.TOKENIZER_FILE}: it was '
                    f'pre-trained on the {config.data.source!r} source, which has no text to '
                    'fine-tune with; pre-train on text (builtin, text:GLOB or tfds:NAME)')
  return Pretrained(directory, config, tokenizer_lib.load(tokenizer_path))


def restore_encoder(pretrained: Pretrained, abstract_params: dict) -> dict:
  """The fine-tuning model's `embeddings` and `electra` parameters from the newest checkpoint, laid
  out as `abstract_params` (the fine-tuning state's) says."""
  part = {'params': {'embeddings': abstract_params['embeddings'],
                     'discriminator': {'electra': abstract_params['electra']}}}
  checkpoints = checkpoint.Checkpoints(os.path.join(pretrained.directory, 'checkpoints'),
                                       every=1, keep=1, read_only=True)
  try:
    params = checkpoints.restore_part(part)['params']
  finally:
    checkpoints.close()
  return {'embeddings': params['embeddings'], 'electra': params['discriminator']['electra']}
