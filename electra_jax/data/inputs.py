"""Pre-training input: resolve the tokenizer, build or find the dataset, read batches, place them.

The sources, the batch contract and the stages are described in data/__init__.py."""

import dataclasses
import os

from absl import logging
import jax
from jax.experimental import multihost_utils
import ml_collections
import numpy as np

from electra_jax import sharding as sharding_lib
from electra_jax.data import builtin, corpus, dataset, pipeline
from electra_jax.data import tokenizer as tokenizer_lib
from electra_jax.data.synthetic import SyntheticSource
from electra_jax.errors import UserError


@dataclasses.dataclass
class Data:
  config: ml_collections.ConfigDict  # The run's config, special ids set from the tokenizer.
  train: object
  eval: list[dict[str, np.ndarray]]
  tokenizer: tokenizer_lib.Tokenizer | None  # None for the synthetic source, which has no text.
  unigram_entropy: float  # Of the pieces (data/unigram.py): the generator's yardstick.


def cache_dir(configured: str = '') -> str:
  """Where built corpora, tokenizers and datasets are cached: `configured` (config.data.data_dir),
  else $ELECTRA_JAX_DATA_DIR, else ~/.cache/electra_jax."""
  return os.path.abspath(os.path.expanduser(
      configured or os.environ.get('ELECTRA_JAX_DATA_DIR') or '~/.cache/electra_jax'))


def data_dir(config: ml_collections.ConfigDict) -> str:
  return cache_dir(config.data.data_dir)


def load_corpus(config: ml_collections.ConfigDict) -> corpus.Corpus:
  source = config.data.source  # validation.py has checked its form.
  if source == 'builtin':
    return builtin.load(data_dir(config))
  if source.startswith(('text:', 'jsonl:', 'parquet:')):
    kind, _, pattern = source.partition(':')
    return corpus.from_files(kind, pattern, config.data.text_field, config.data.skip_bad_records)
  tfds_dir = corpus.tfds_data_dir(config.data.tfds_data_dir)
  return corpus.from_tfds(source[len('tfds:'):], tfds_dir, config.data.tfds_text_feature)


def load_tokenizer(config: ml_collections.ConfigDict,
                   text: corpus.Corpus) -> tokenizer_lib.Tokenizer:
  """config.data.tokenizer if set; otherwise one trained on the corpus (once, then cached)."""
  if config.data.tokenizer:
    tokenizer = tokenizer_lib.load(os.path.expanduser(config.data.tokenizer), config.data.lowercase,
                                   config.data.strip_accents)
  else:
    vocab_size = config.model.vocab_size
    prefix = os.path.join(data_dir(config), 'tokenizers',
                          f'{text.name}-{text.fingerprint[:12]}-v{vocab_size}')
    if os.path.exists(prefix + '.model'):
      tokenizer = tokenizer_lib.load(prefix + '.model')
    else:
      logging.info('training a %d-piece sentencepiece tokenizer on the %s corpus -> %s.model',
                   vocab_size, text.name, prefix)
      tokenizer = tokenizer_lib.train(tokenizer_lib.corpus_lines(text), vocab_size, prefix)
  if tokenizer.vocab_size > config.model.vocab_size:
    raise UserError(f'the tokenizer has {tokenizer.vocab_size} pieces but config.model.vocab_size='
                    f'{config.model.vocab_size}; set --config.model.vocab_size={tokenizer.vocab_size}'
                    ' (or more)')
  return tokenizer


def with_special_ids(config: ml_collections.ConfigDict,
                     tokenizer: tokenizer_lib.Tokenizer) -> ml_collections.ConfigDict:
  """config with config.data's special ids (pad_id, cls_id, sep_id, mask_id) the tokenizer's."""
  config = config.copy_and_resolve_references()
  for key, token_id in tokenizer.special_ids.items():
    if key in config.data:
      config.data[key] = token_id
  return config


@dataclasses.dataclass(frozen=True)
class Text:
  """A source with text, resolved: its corpus and the tokenizer for it."""
  corpus: corpus.Corpus
  tokenizer: tokenizer_lib.Tokenizer


def _text(config: ml_collections.ConfigDict) -> Text:
  text = load_corpus(config)
  return Text(text, load_tokenizer(config, text))


def resolve(config: ml_collections.ConfigDict) -> tuple[ml_collections.ConfigDict, Text | None]:
  """(config with the tokenizer's special ids, the corpus and its tokenizer: loaded, or trained on
  the corpus once and cached, process 0 first). The synthetic source has no text: (config, None)."""
  if config.data.source == 'synthetic':
    return config, None
  text = _in_turn(lambda: _text(config))
  return with_special_ids(config, text.tokenizer), text


def build(config: ml_collections.ConfigDict, text: Text) -> str:
  """Builds (or finds) the dataset of `text` for config; returns its directory."""
  plan = dataset.BuildPlan(
      corpus=text.corpus, tokenizer=text.tokenizer, max_length=config.data.max_seq_length,
      seed=config.data.build_seed, eval_fraction=config.data.eval_fraction,
      max_eval_examples=config.data.max_eval_examples, processes=config.data.build_processes)
  return dataset.build(data_dir(config), plan)


def _in_turn(fn):
  """fn() on process 0, then on the others: a cache that several hosts share (NFS, one machine's
  disk) is built once, by process 0, and found by the rest; on separate disks each builds its own."""
  if jax.process_count() == 1:
    return fn()
  result = fn() if jax.process_index() == 0 else None
  multihost_utils.sync_global_devices('electra_jax: process 0 prepared the data')
  return fn() if jax.process_index() != 0 else result


def prepare(config: ml_collections.ConfigDict, rows: np.ndarray | None = None,
            text: Text | None = None) -> Data:
  """The train iterator and eval batches of this process: `rows` of every global batch
  (Placement.rows; None = all, for a single process). `text` is what resolve(config) returned
  for a config it resolved (config then holds its special ids); without it, prepare resolves."""
  rows = np.arange(config.train.batch_size) if rows is None else rows
  max_length = config.data.max_seq_length
  if config.data.source == 'synthetic':
    def synthetic(seed):
      return SyntheticSource(
          vocab_size=config.model.vocab_size, max_seq_length=max_length,
          global_batch_size=config.train.batch_size, seed=seed, pad_id=config.data.pad_id,
          cls_id=config.data.cls_id, sep_id=config.data.sep_id, rows=rows,
          word_starts=config.objective.whole_word_masking)
    held_out, train = synthetic(config.train.seed + 1), synthetic(config.train.seed)
    return Data(config, train, [held_out.batch(i) for i in range(config.train.eval_batches)],
                tokenizer=None, unigram_entropy=train.unigram_entropy())

  if text is None:
    config, text = resolve(config)
  path = _in_turn(lambda: build(config, text))
  word_starts = text.tokenizer.word_starts() if config.objective.whole_word_masking else None
  train_split = dataset.open_split(path, 'train')
  train = pipeline.TrainBatches(
      len(train_split), pipeline.reader(train_split, max_length, word_starts),
      dataset_key=os.path.basename(os.path.dirname(os.path.dirname(path))),
      batch_size=config.train.batch_size, rows=rows, seed=config.train.seed,
      read_threads=config.data.read_threads)
  eval_split = dataset.open_split(path, 'validation')
  eval_batches = [] if eval_split is None else pipeline.eval_batches(
      eval_split, batch_size=config.train.batch_size, rows=rows, max_length=max_length,
      max_batches=config.train.eval_batches, word_starts=word_starts)
  logging.info('data: %d train examples (%.1f steps per epoch), %d eval batches', len(train_split),
               len(train_split) / config.train.batch_size, len(eval_batches))
  if config.train.eval_every and not eval_batches:
    logging.warning('no evaluation: the validation split has fewer than %d examples (one batch)',
                    config.train.batch_size)
  return Data(config, train, eval_batches, text.tokenizer, dataset.unigram_entropy(path))


class Placement:
  """Where this process's rows of every `size`-row global batch go: it reads exactly the rows its
  devices hold (`rows`), so the global batch, its order included, is the same for any number of
  processes and any mesh layout, and a checkpoint's data position means the same batch everywhere."""

  def __init__(self, batch_sharding: jax.sharding.NamedSharding, size: int):
    self.sharding, self.size = batch_sharding, size
    self.rows = sharding_lib.process_rows(batch_sharding, size)

  def place(self, local_batch: dict[str, np.ndarray]) -> dict[str, jax.Array]:
    """The process's rows (in `rows` order) -> global arrays laid out by the batch sharding."""
    return {key: sharding_lib.host_to_global(value, self.sharding, self.rows, self.size)
            for key, value in local_batch.items()}
