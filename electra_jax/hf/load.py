"""`config.init_from_hf`: start pre-training or fine-tuning from a Hugging Face ELECTRA or ModernBERT
folder.

Pre-training continues a generator + discriminator pair, so PATH holds `discriminator/` and
`generator/` (what export writes; for Google's releases, download electra-*-discriminator and
electra-*-generator into those two names). A ModernBERT masked LM (a released one such as
ModernBERT-base, or one of ours) can start both on its own: the discriminator takes its embeddings,
encoder and prediction head (its one-logit classifier starts new, as transformers' token classifier
would), the generator its embeddings, first generator_num_layers layers, final norm, head and
decoder, so both start from what the folder learnt. Fine-tuning needs the
discriminator only: PATH is its folder (or a pair, whose `discriminator/` is used). Model sizes and
the tokenizer come from the folder, and every weight is placed straight into the run's sharded
layout.
"""

import os
import re
from typing import NamedTuple

from absl import logging
import jax
import ml_collections
import numpy as np

from electra_jax import checkpoint, model, sharding
from electra_jax import workdir as workdir_lib
from electra_jax.data import wordpiece
from electra_jax.errors import UserError
from electra_jax.hf import config_json, convert, folder

# Heads of transformers' classes that a fine-tuning model does not have; the original discards the
# discriminator's replaced-token head the same way. ModernBERT's `head` is read where the task's
# model has one (as transformers reads it into its task classes).
_HEADS = {'electra': ('discriminator_predictions.', 'generator_predictions.', 'generator_lm_head.',
                      'classifier.', 'qa_outputs.'),
          'modernbert': ('head.', 'decoder.', 'classifier.', 'qa_outputs.')}
# The masked LM's output weight, tied to the token table (so not a parameter of ours), and the table.
_TIED = {'electra': ('generator_lm_head.weight', 'electra.embeddings.word_embeddings.weight'),
         'modernbert': ('decoder.weight', 'model.embeddings.tok_embeddings.weight')}


class _Source(NamedTuple):
  discriminator: str  # A folder.
  generator: str | None  # None: the discriminator's folder is a masked LM that starts both.


def _source(path: str) -> _Source:
  root = os.path.abspath(os.path.expanduser(path))
  pair = os.path.join(root, 'discriminator'), os.path.join(root, 'generator')
  if all(os.path.isdir(d) for d in pair):
    return _Source(*pair)
  if os.path.isfile(os.path.join(root, folder.CONFIG)):
    hf = folder.read_config(root)
    if (hf.get('model_type') == 'modernbert'
        and 'ModernBertForMaskedLM' in (hf.get('architectures') or ['ModernBertForMaskedLM'])):
      return _Source(root, None)
  raise UserError(f'config.init_from_hf={path} must hold discriminator/ and generator/ folders '
                  '(as python -m electra_jax.export writes them), or be a ModernBertForMaskedLM '
                  'folder, to continue pre-training')


def place(arrays: dict, abstract: dict) -> dict:
  """Host numpy arrays -> global jax.Arrays with the shardings of `abstract`; each process supplies
  the shards its devices hold."""
  return jax.tree.map(lambda value, spec: sharding.host_to_global(value, spec.sharding), arrays,
                      abstract)


def pretraining_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """config with the architecture, model sizes and tokenizer of the folder(s) at
  config.init_from_hf."""
  source = _source(config.init_from_hf)
  config = ml_collections.ConfigDict(config.to_dict())
  config.model = config_json.model_config(
      config.model, folder.read_config(source.discriminator),
      source.generator and folder.read_config(source.generator), config.init_from_hf)
  layers = model.generator_sizes(config.model)[3]
  if source.generator is None and layers > config.model.num_layers:
    raise UserError(f'config.model.generator_num_layers={layers} exceeds the '
                    f'{config.model.num_layers} layers of {config.init_from_hf}, whose first '
                    'layers the generator takes; give at most that many (0 = half)')
  tokenizer = folder.read_tokenizer(source.discriminator)
  if tokenizer is None:
    raise UserError(f'{source.discriminator} has no tokenizer.model, vocab.txt or tokenizer.json')
  path = os.path.join(source.discriminator, tokenizer.file_name)
  if config.data.tokenizer and os.path.abspath(os.path.expanduser(config.data.tokenizer)) != path:
    raise UserError('config.init_from_hf brings its own tokenizer; leave config.data.tokenizer unset')
  config.data.tokenizer = path
  if isinstance(tokenizer, wordpiece.WordPiece):
    config.data.lowercase, config.data.strip_accents = tokenizer.lowercase, tokenizer.strip_accents
  logging.info('architecture, model sizes and tokenizer from %s', config.init_from_hf)
  return config


def continued_config(config: ml_collections.ConfigDict, workdir: str) -> ml_collections.ConfigDict:
  """`config` as a rerun of the run in workdir sees it: a run that started from config.init_from_hf
  continues without it, with the model sizes and tokenizer the folder gave it, as it recorded them
  (the folder may be gone); the rest of the config is compared with the run's as usual."""
  if (config.init_from_hf or not os.path.isfile(os.path.join(workdir, workdir_lib.CONFIG_FILE))
      or not checkpoint.has_checkpoint(os.path.join(workdir, 'checkpoints'))):
    return config
  run = workdir_lib.open_run(workdir, '--workdir')
  if not run.config.get('init_from_hf') or run.tokenizer is None:
    return config
  config = ml_collections.ConfigDict(config.to_dict())
  for name in config_json.folder_fields(run.config.model):
    if name in run.config.model:  # A run recorded before the field existed keeps the default.
      config.model[name] = run.config.model[name]
  config.data.tokenizer = os.path.join(run.directory, run.tokenizer.file_name)
  for name in ('lowercase', 'strip_accents'):
    config.data[name] = run.config.data.get(name, config.data[name])
  logging.info('continuing the run that started from %s with its model sizes and tokenizer',
               run.config.init_from_hf)
  return config


def _untie(tensors: dict, architecture: str, where: str) -> dict:
  """The masked LM's tensors without its tied output weight, checked to be the token table."""
  output, table = _TIED[architecture]
  tied = tensors.pop(output, None)
  if tied is not None and not np.array_equal(tied, tensors.get(table)):
    raise UserError(f'{where}: {output} differs from the token embeddings; we tie them, as '
                    'ELECTRA and ModernBERT do')
  return tensors


def _first_layers(tensors: dict, count: int) -> dict:
  """A ModernBERT masked LM's tensors without its layers from `count` on."""
  def kept(name):
    layer = re.match(r'model\.layers\.(\d+)\.', name)
    return layer is None or int(layer[1]) < count
  return {name: value for name, value in tensors.items() if kept(name)}


def pretrainer_params(config: ml_collections.ConfigDict, params: dict) -> dict:
  """`params` (the pre-training model's, freshly initialised) with what the folder(s) at
  config.init_from_hf hold, placed as the initialised ones are. From one masked-LM folder the
  discriminator's one-logit classifier keeps its initial weights."""
  m = config.model
  kind = model.architecture(m)
  source = _source(config.init_from_hf)
  discriminator, generator = convert.pretraining_exports(m, 'rtd')
  disc_tensors = folder.read_tensors(source.discriminator)
  if source.generator is None:
    gen_dir = source.discriminator
    gen_tensors = _first_layers(_untie(dict(disc_tensors), kind, gen_dir),
                                model.generator_sizes(m)[3])
    read = convert.from_hf(disc_tensors, params, convert.MODERNBERT_FROM_MASKED_LM,
                           vocab_size=m.vocab_size, where=source.discriminator,
                           discard=('decoder.',))
  else:
    gen_dir = source.generator
    gen_tensors = _untie(folder.read_tensors(gen_dir), kind, gen_dir)
    read = convert.from_hf(disc_tensors, params, discriminator.blocks, vocab_size=m.vocab_size,
                           where=source.discriminator)
  gen_read = convert.from_hf(gen_tensors, params, generator.blocks, vocab_size=m.vocab_size,
                             where=gen_dir)
  if m.embedding_sharing in ('shared', 'gdes'):
    gen_embeddings = gen_read.pop('embeddings')
    if m.embedding_sharing == 'gdes':
      table = next(name for name in model.TOKEN_TABLES if name in read['embeddings'])
      # Export folds the delta into the discriminator's table; the generator's is the shared one.
      disc_table = read['embeddings'].pop(table)['embedding']
      read['embeddings'][table] = gen_embeddings.pop(table)
      read['embedding_delta'] = {'embedding': disc_table - read['embeddings'][table]['embedding']}
    differ = [name for name, value in gen_embeddings.items()
              if not all(np.array_equal(a, b) for a, b in
                         zip(jax.tree.leaves(value), jax.tree.leaves(read['embeddings'][name])))]
    if differ:
      raise UserError(f'{config.init_from_hf}: the generator\'s and discriminator\'s embeddings '
                      f'differ ({", ".join(differ)}), so they cannot be shared; add '
                      '--config.model.embedding_sharing=untied')
  read.update(gen_read)
  new = sorted(set(_paths(params)) - set(_paths(read)))
  logging.info('initialised from %s%s', config.init_from_hf,
               f'; new: {", ".join(new)}' if new else '')
  return _overlay(params, place(read, _like(params, read)))


def _paths(tree: dict, prefix: str = '', depth: int = 2):
  """Dotted paths of a nested dict, `depth` levels down."""
  for key, value in tree.items():
    path = f'{prefix}{key}'
    if depth > 1 and isinstance(value, dict):
      yield from _paths(value, f'{path}.', depth - 1)
    else:
      yield path


def _like(tree: dict, part: dict) -> dict:
  """The subtree of `tree` that `part` covers."""
  return {key: _like(tree[key], value) if isinstance(value, dict) else tree[key]
          for key, value in part.items()}


def _overlay(tree: dict, part: dict) -> dict:
  """`tree` with the leaves `part` holds replaced."""
  return {key: (value if key not in part else
                _overlay(value, part[key]) if isinstance(part[key], dict) else part[key])
          for key, value in tree.items()}


def encoder_folder(path: str) -> str:
  """The discriminator folder that fine-tuning reads, given config.init_from_hf."""
  root = os.path.abspath(os.path.expanduser(path))
  if os.path.isdir(os.path.join(root, 'discriminator')):
    return os.path.join(root, 'discriminator')
  if not os.path.isdir(root):
    raise UserError(f'config.init_from_hf={path} is not a directory')
  return root


def encoder_params(directory: str, abstract: dict, model_config) -> dict:
  """The fine-tuning model's embeddings and encoder (ModernBERT's prediction head too, where the
  model and the folder have one) from the folder, placed as `abstract` (the fine-tuning state's
  abstract params) says; the folder's other heads are left out."""
  tensors = folder.read_tensors(directory)
  kind = model.architecture(model_config)
  blocks = [(ours, prefix) for ours, prefix in convert.finetuned_blocks(model_config)
            if ours in abstract and ours != 'classifier']
  if kind == 'modernbert' and not any(name.startswith('head.') for name in tensors):
    blocks = [(ours, prefix) for ours, prefix in blocks if ours != 'head']  # A bare encoder.
  used = tuple(f'{prefix}.' for _, prefix in blocks)
  discard = tuple(head for head in _HEADS[kind] if head not in used)
  left_out = sorted({name.split('.')[0] for name in tensors if name.startswith(discard)})
  params = convert.from_hf(tensors, abstract, blocks, vocab_size=model_config.vocab_size,
                           where=directory, discard=discard)
  if left_out:
    logging.info('left out of %s: %s (heads the fine-tuning model does not have)', directory,
                 ', '.join(left_out))
  return place(params, {key: abstract[key] for key in params})
