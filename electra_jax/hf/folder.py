"""Hugging Face model folders on disk: config.json, the weights, and the tokenizer files.

Weights are read from model.safetensors (or its sharded index), or from pytorch_model.bin through
torch's weights-only loader, which refuses arbitrary pickled objects; torch is needed for that case
only. Writing always produces safetensors with the metadata transformers checks for.
"""

import hashlib
import json
import os

import numpy as np
import safetensors
import safetensors.numpy

from electra_jax.data import tokenizer as tokenizer_lib
from electra_jax.errors import UserError

CONFIG = 'config.json'
SAFETENSORS = 'model.safetensors'
SAFETENSORS_INDEX = 'model.safetensors.index.json'
TORCH_BIN = 'pytorch_model.bin'
TOKENIZER_CONFIG = 'tokenizer_config.json'


def _read_json(path: str) -> dict:
  try:
    with open(path, encoding='utf-8') as f:
      return json.load(f)
  except (OSError, ValueError) as e:
    raise UserError(f'cannot read {path}: {e}') from e


def read_config(folder: str) -> dict:
  path = os.path.join(folder, CONFIG)
  if not os.path.isfile(path):
    raise UserError(f'{folder} has no {CONFIG}: it is not a Hugging Face model folder')
  return _read_json(path)


def read_tensors(folder: str) -> dict[str, np.ndarray]:
  """Every tensor of the folder's weights, by name."""
  path = os.path.join(folder, SAFETENSORS)
  index = os.path.join(folder, SAFETENSORS_INDEX)
  try:
    if os.path.isfile(path):
      return safetensors.numpy.load_file(path)
    if os.path.isfile(index):
      shards = sorted(set(_read_json(index)['weight_map'].values()))
      return {name: value for shard in shards
              for name, value in safetensors.numpy.load_file(os.path.join(folder, shard)).items()}
  except (OSError, KeyError, TypeError, safetensors.SafetensorError) as e:
    raise UserError(f'cannot read the safetensors weights in {folder}: {e}') from e
  path = os.path.join(folder, TORCH_BIN)
  if os.path.isfile(path):
    return _read_torch(path)
  raise UserError(f'{folder} has no {SAFETENSORS}, {SAFETENSORS_INDEX} or {TORCH_BIN}')


def _read_torch(path: str) -> dict[str, np.ndarray]:
  try:
    import torch  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    raise UserError(f'reading {path} needs torch (pip install torch), or convert the folder to '
                    'safetensors') from e
  try:
    state = torch.load(path, map_location='cpu', weights_only=True)
  except Exception as e:  # pylint: disable=broad-except
    first_line = (str(e).strip().splitlines() or [type(e).__name__])[0]
    raise UserError(f'torch refuses to load {path} as plain weights: {first_line[:300]}') from e
  return {name: tensor.float().numpy() for name, tensor in state.items()}


def weights_digest(folder: str) -> str:
  """The sha256 of the folder's weight files (safetensors, their index, or pytorch_model.bin), read
  in name order: it changes with the weights, not with a copy or a download of the same ones."""
  digest = hashlib.sha256()
  for name in sorted(os.listdir(folder)):
    if name.endswith(('.safetensors', '.safetensors.index.json', '.bin')):
      with open(os.path.join(folder, name), 'rb') as f:
        digest.update(hashlib.file_digest(f, 'sha256').digest())
  return digest.hexdigest()


def read_tokenizer(folder: str) -> tokenizer_lib.Tokenizer | None:
  """The folder's tokenizer (our tokenizer.model, or a WordPiece vocab.txt with the lower-casing
  and accent stripping its tokenizer_config.json asks for), or None."""
  path = os.path.join(folder, TOKENIZER_CONFIG)
  options = _read_json(path) if os.path.isfile(path) else {}
  return tokenizer_lib.load_from_dir(folder, options.get('do_lower_case', True),
                                     options.get('strip_accents'))


def write(folder: str, config: dict, tensors: dict[str, np.ndarray],
          tokenizer_files: dict[str, bytes]) -> None:
  """A model folder that transformers' from_pretrained loads; `folder` must be new (export.py
  writes into a temporary directory and renames it when complete)."""
  os.makedirs(folder)
  with open(os.path.join(folder, CONFIG), 'w', encoding='utf-8') as f:
    json.dump(config, f, indent=2)
  safetensors.numpy.save_file(tensors, os.path.join(folder, SAFETENSORS), metadata={'format': 'pt'})
  for name, contents in tokenizer_files.items():
    with open(os.path.join(folder, name), 'wb') as f:
      f.write(contents)
