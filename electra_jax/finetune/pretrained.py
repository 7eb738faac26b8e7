"""Where fine-tuning starts: a pre-training --workdir (config.init_checkpoint) or a Hugging Face
ELECTRA or ModernBERT folder (config.init_from_hf). Either gives the model sizes, the tokenizer and
the weights of the embeddings and the discriminator's encoder; never the generator or optimizer
state.
"""

import dataclasses
import os
from typing import Callable

import ml_collections

from electra_jax import checkpoint, model, pretrainer, workdir
from electra_jax.data import tokenizer as tokenizer_lib, wordpiece
from electra_jax.errors import UserError
from electra_jax.hf import config_json, folder, load


@dataclasses.dataclass(frozen=True)
class Pretrained:
  directory: str
  config: ml_collections.ConfigDict  # `model` (sizes) and `data` (tokenizer options) sections.
  tokenizer: tokenizer_lib.Tokenizer
  # The fine-tuning state's abstract params -> {'embeddings', 'electra'} (ModernBERT: 'model' and
  # 'head'), placed as they say.
  read_encoder: Callable[[dict], dict]
  # Which weights read_encoder reads, as JSON: the pre-training run's checkpoint step, or the digest
  # of the HF folder's weights (read only when asked: only a seed that starts needs it). Every seed
  # of a fine-tuning run must start from the same. None where no weights are read (from_scratch).
  origin: Callable[[], dict] | None


def describe(origin: dict) -> str:
  if 'step' in origin:
    return f'the checkpoint of step {origin["step"]} of {origin["init_checkpoint"]}'
  return f'the weights in {origin["init_from_hf"]} (sha256 {origin["sha256"][:12]})'


def open_source(config: ml_collections.ConfigDict) -> Pretrained:
  if config.init_checkpoint and config.init_from_hf:
    raise UserError('set one of config.init_checkpoint and config.init_from_hf, not both')
  if config.init_from_hf:
    return _open_hf(config.init_from_hf, not config.from_scratch)
  if not config.init_checkpoint:
    raise UserError('config.init_checkpoint is not set; give the --workdir of a pre-training run, '
                    'e.g. --config.init_checkpoint=runs/tiny, or a Hugging Face folder as '
                    '--config.init_from_hf')
  return open_workdir(config.init_checkpoint, not config.from_scratch)


def open_workdir(path: str, weights: bool = True) -> Pretrained:
  """The pre-training run at `path`; with `weights`, its newest checkpoint, which read_encoder reads
  however many newer ones the run saves meanwhile."""
  run = workdir.open_run(path, 'config.init_checkpoint')
  if run.tokenizer is None:
    raise UserError(f'config.init_checkpoint={path} has no tokenizer: it was pre-trained on the '
                    f'{run.config.data.source!r} source, which has no text to fine-tune with; '
                    'pre-train on text (builtin, text:GLOB or tfds:NAME)')
  step = checkpoint.latest_step(os.path.join(run.directory, 'checkpoints'))
  if step is None and weights:
    raise UserError(f'config.init_checkpoint={path} has no checkpoint yet; fine-tune once its '
                    'pre-training has saved one')
  gdes = run.config.model.get('embedding_sharing') == 'gdes'
  return Pretrained(run.directory, run.config, run.tokenizer,
                    lambda abstract: _restore_encoder(run.directory, abstract, gdes, step),
                    (lambda: {'init_checkpoint': run.directory, 'step': step}) if weights else None)


def _restore_encoder(directory: str, abstract_params: dict, gdes: bool, step: int) -> dict:
  """The discriminator's embeddings (with a GDES delta folded in) and encoder of checkpoint `step`
  (`electra`, or ModernBERT's `model` and `head`)."""
  checkpoints = checkpoint.Checkpoints(os.path.join(directory, 'checkpoints'),
                                       every=1, keep=1, read_only=True)
  try:
    if step not in checkpoints.steps():
      raise UserError(f'config.init_checkpoint={directory} no longer holds the checkpoint of step '
                      f'{step} that this fine-tuning run started from (pre-training keeps its newest '
                      'config.train.keep_checkpoints); fine-tune into another --workdir')
    # ELECTRA's encoder, or ModernBERT's and its prediction head where the task has one (as
    # transformers reads `head` from the discriminator's folder into its task classes).
    reused = ('model', 'head') if 'model' in abstract_params else ('electra',)
    reused = [name for name in reused if name in abstract_params]
    part = {'embeddings': abstract_params['embeddings'],
            'discriminator': {name: abstract_params[name] for name in reused}}
    if gdes:
      embeddings = abstract_params['embeddings']
      table = next(name for name in model.TOKEN_TABLES if name in embeddings)
      part['embedding_delta'] = {'embedding': embeddings[table]['embedding']}
    params = pretrainer.fold_embedding_delta(checkpoints.restore_part({'params': part}, step)['params'])
  finally:
    checkpoints.close()
  return {'embeddings': params['embeddings'], **params['discriminator']}


def _open_hf(path: str, weights: bool) -> Pretrained:
  directory = load.encoder_folder(path)
  tokenizer = folder.read_tokenizer(directory)
  if tokenizer is None:
    raise UserError(f'config.init_from_hf={path} has no tokenizer.model, vocab.txt or tokenizer.json')
  model_config = config_json.model_config(ml_collections.ConfigDict(),
                                          folder.read_config(directory), None, path)
  options = ({'lowercase': tokenizer.lowercase, 'strip_accents': tokenizer.strip_accents}
             if isinstance(tokenizer, wordpiece.WordPiece) else {})
  config = ml_collections.ConfigDict({'model': model_config.to_dict(), 'data': options})
  return Pretrained(directory, config, tokenizer,
                    lambda abstract: load.encoder_params(directory, abstract, model_config),
                    (lambda: {'init_from_hf': directory, 'sha256': folder.weights_digest(directory)})
                    if weights else None)
