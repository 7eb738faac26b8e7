"""`config.init_from_hf`: start pre-training or fine-tuning from a Hugging Face ELECTRA folder.

Pre-training continues a generator + discriminator pair, so PATH holds `discriminator/` and
`generator/` (what export writes; for Google's releases, download electra-*-discriminator and
electra-*-generator into those two names). Fine-tuning needs the discriminator only: PATH is its folder
(or a pair, whose `discriminator/` is used). Model sizes and the tokenizer come from the folder, and
every weight is placed straight into the run's sharded layout.
"""

import os

from absl import logging
import jax
import ml_collections
import numpy as np

from electra_jax import checkpoint, sharding
from electra_jax import workdir as workdir_lib
from electra_jax.data import wordpiece
from electra_jax.errors import UserError
from electra_jax.hf import convert, folder

# Heads of transformers' ELECTRA classes that a fine-tuning model does not have; the original
# discards the discriminator's replaced-token head the same way.
_HEADS = ('discriminator_predictions.', 'generator_predictions.', 'generator_lm_head.',
          'classifier.', 'qa_outputs.')
_TIED_LM_HEAD = 'generator_lm_head.weight'
_WORD_EMBEDDINGS = 'electra.embeddings.word_embeddings.weight'


def _pair(path: str) -> tuple[str, str]:
  root = os.path.abspath(os.path.expanduser(path))
  pair = os.path.join(root, 'discriminator'), os.path.join(root, 'generator')
  if not all(os.path.isdir(d) for d in pair):
    raise UserError(f'config.init_from_hf={path} must hold discriminator/ and generator/ folders '
                    '(as python -m electra_jax.export writes them) to continue pre-training')
  return pair


def place(arrays: dict, abstract: dict) -> dict:
  """Host numpy arrays -> global jax.Arrays with the shardings of `abstract`; each process supplies
  the shards its devices hold."""
  return jax.tree.map(lambda value, spec: sharding.host_to_global(value, spec.sharding), arrays,
                      abstract)


def pretraining_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """config with the model sizes and the tokenizer of the pair at config.init_from_hf."""
  disc_dir, gen_dir = _pair(config.init_from_hf)
  config = ml_collections.ConfigDict(config.to_dict())
  config.model = convert.model_config(config.model, folder.read_config(disc_dir),
                                      folder.read_config(gen_dir), config.init_from_hf)
  tokenizer = folder.read_tokenizer(disc_dir)
  if tokenizer is None:
    raise UserError(f'{disc_dir} has no tokenizer.model or vocab.txt')
  path = os.path.join(disc_dir, tokenizer.file_name)
  if config.data.tokenizer and os.path.abspath(os.path.expanduser(config.data.tokenizer)) != path:
    raise UserError('config.init_from_hf brings its own tokenizer; leave config.data.tokenizer unset')
  config.data.tokenizer = path
  if isinstance(tokenizer, wordpiece.WordPiece):
    config.data.lowercase, config.data.strip_accents = tokenizer.lowercase, tokenizer.strip_accents
  logging.info('model sizes and tokenizer from %s', config.init_from_hf)
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
  for name in convert.FOLDER_FIELDS:
    config.model[name] = run.config.model[name]
  config.data.tokenizer = os.path.join(run.directory, run.tokenizer.file_name)
  for name in ('lowercase', 'strip_accents'):
    config.data[name] = run.config.data.get(name, config.data[name])
  logging.info('continuing the run that started from %s with its model sizes and tokenizer',
               run.config.init_from_hf)
  return config


def pretrainer_params(config: ml_collections.ConfigDict, abstract: dict) -> dict:
  """The pre-training model's parameters from the pair at config.init_from_hf, placed as
  `abstract` (the train state's abstract params) says."""
  disc_dir, gen_dir = _pair(config.init_from_hf)
  params = convert.from_hf(folder.read_tensors(disc_dir), abstract, convert.DISCRIMINATOR,
                           vocab_size=config.model.vocab_size, where=disc_dir)
  gen_tensors = folder.read_tensors(gen_dir)
  tied = gen_tensors.pop(_TIED_LM_HEAD, None)
  if tied is not None and not np.array_equal(tied, gen_tensors.get(_WORD_EMBEDDINGS)):
    raise UserError(f'{gen_dir}: {_TIED_LM_HEAD} differs from the word embeddings; ELECTRA ties '
                    'them and so do we')
  generator = convert.from_hf(gen_tensors, abstract, convert.generator_blocks(config.model),
                              vocab_size=config.model.vocab_size, where=gen_dir)
  if config.model.embedding_sharing in ('shared', 'gdes'):
    gen_embeddings = generator.pop('embeddings')
    if config.model.embedding_sharing == 'gdes':
      # Export folds the delta into the discriminator's table; the generator's is the shared one.
      disc_words = params['embeddings'].pop('word_embeddings')['embedding']
      params['embeddings']['word_embeddings'] = gen_embeddings.pop('word_embeddings')
      params['embedding_delta'] = {
          'embedding': disc_words - params['embeddings']['word_embeddings']['embedding']}
    differ = [name for name, value in gen_embeddings.items()
              if not all(np.array_equal(a, b) for a, b in
                         zip(jax.tree.leaves(value), jax.tree.leaves(params['embeddings'][name])))]
    if differ:
      raise UserError(f'{config.init_from_hf}: the generator\'s and discriminator\'s embeddings '
                      f'differ ({", ".join(differ)}), so they cannot be shared; add '
                      '--config.model.embedding_sharing=untied')
  params.update(generator)
  logging.info('initialised from %s', config.init_from_hf)
  return place(params, abstract)


def encoder_folder(path: str) -> str:
  """The discriminator folder that fine-tuning reads, given config.init_from_hf."""
  root = os.path.abspath(os.path.expanduser(path))
  if os.path.isdir(os.path.join(root, 'discriminator')):
    return os.path.join(root, 'discriminator')
  if not os.path.isdir(root):
    raise UserError(f'config.init_from_hf={path} is not a directory')
  return root


def encoder_params(directory: str, abstract: dict, vocab_size: int) -> dict:
  """The fine-tuning model's `embeddings` and `electra` from the folder, placed as `abstract` (the
  fine-tuning state's abstract params) says; the folder's heads are left out."""
  tensors = folder.read_tensors(directory)
  left_out = sorted({name.split('.')[0] for name in tensors if name.startswith(_HEADS)})
  params = convert.from_hf(tensors, abstract, convert.ENCODER, vocab_size=vocab_size,
                           where=directory, discard=_HEADS)
  if left_out:
    logging.info('left out of %s: %s (heads the fine-tuning model does not have)', directory,
                 ', '.join(left_out))
  return place(params, {key: abstract[key] for key in params})
