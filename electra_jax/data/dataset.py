"""Built pre-training data: a TFDS builder that stores examples as array_record, cached by fingerprint.

The cache key covers the corpus fingerprint, the tokenizer, the sequence length and the build settings,
so a change to any of them builds a new dataset next to the old one instead of mixing the two. TFDS
writes into a temporary directory and renames it when complete: a killed build never looks finished,
and the next build of that dataset removes what it left. One process builds a dataset at a time.
Reading needs no TensorFlow (array_record + numpy decoding). The dataset's metadata holds the unigram
entropy of its pieces (data/unigram.py), counted while building.
"""

import contextlib
import dataclasses
import hashlib
import io
import json
import multiprocessing
import os
import shutil
import time
from typing import Iterator

from absl import logging
from array_record.python import array_record_module
import numpy as np
import tensorflow_datasets as tfds

from electra_jax import files
from electra_jax.data import corpus, examples, unigram
from electra_jax.data import tokenizer as tokenizer_lib
from electra_jax.errors import UserError

NAME = 'electra_examples'
VERSION = '1.0.0'  # Bump when the example format or the building algorithm changes.
UNIGRAM_ENTROPY = 'unigram_entropy'  # Its key in the dataset's metadata.
_COUNT_ROWS = 4096  # Examples read per call when counting the pieces of a dataset already built.


@dataclasses.dataclass(frozen=True)
class BuildPlan:
  corpus: corpus.Corpus
  tokenizer: tokenizer_lib.Tokenizer
  max_length: int
  seed: int
  eval_fraction: float
  max_eval_examples: int
  processes: int

  @property
  def key(self) -> str:
    settings = [VERSION, self.corpus.fingerprint, self.tokenizer.fingerprint, self.max_length,
                self.seed, self.eval_fraction, self.max_eval_examples]
    return hashlib.sha256(json.dumps(settings).encode()).hexdigest()[:16]

  @property
  def holds_out(self) -> bool:
    return self.eval_fraction > 0 and self.max_eval_examples > 0


# Worker processes build one task at a time with the tokenizer they were started with.
_worker: dict = {}


def _init_worker(tokenizer: tokenizer_lib.Tokenizer, settings: dict) -> None:
  _worker.update(tokenizer=tokenizer, settings=settings)


def _build_task(indexed_task):
  before = corpus.counts()
  result = examples.build(indexed_task[1], indexed_task[0], _worker['tokenizer'],
                          **_worker['settings'])
  return result, {name: count - before[name] for name, count in corpus.counts().items()}


class ElectraExamples(tfds.core.GeneratorBasedBuilder):
  """Train (and validation) splits of unpadded `[CLS] A [SEP] B [SEP]` examples."""

  VERSION = tfds.core.Version(VERSION)

  def __init__(self, *, plan: BuildPlan | None = None, **kwargs):
    self._plan = plan
    self._held_out: list[dict] = []
    self._train_done = False
    self._pieces = 0  # Piece counts of every example, both splits.
    self.stats = {'text_bytes': 0, 'train': 0, 'validation': 0, **dict.fromkeys(corpus.counts(), 0)}
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    ids = tfds.features.Tensor(shape=(None,), dtype=np.int32,
                               encoding=tfds.features.Encoding.BYTES)
    return tfds.core.DatasetInfo(
        builder=self,
        description='ELECTRA pre-training examples built by electra_jax.',
        features=tfds.features.FeaturesDict({'input_ids': ids, 'segment_ids': ids}),
        metadata=tfds.core.MetadataDict(),  # Written with the dataset: a build has it or is not done.
        # The loader shuffles globally with the run's seed; building order stays the corpus order.
        disable_shuffling=True)

  def _split_generators(self, dl_manager):
    del dl_manager
    splits = {'train': self._generate_examples('train')}
    if self._plan.holds_out:
      splits['validation'] = self._generate_examples('validation')
    return splits

  def _generate_examples(self, split: str):
    if split == 'validation':
      # TFDS writes the splits in the order _split_generators lists them: train has run.
      assert self._train_done, 'the train split must be generated first'
      yield from enumerate(self._held_out)
      return
    key = 0
    for result in self._task_results():
      for i in range(len(result.held_out)):
        example = result.example(i)
        if result.held_out[i] and len(self._held_out) < self._plan.max_eval_examples:
          self._held_out.append(example)
        else:
          yield key, example
          key += 1
    self.stats.update(train=key, validation=len(self._held_out))
    self.info.metadata[UNIGRAM_ENTROPY] = unigram.piece_entropy(self._pieces,
                                                                self._plan.tokenizer.special_ids)
    if not key:
      raise UserError(f'the corpus {self._plan.corpus.name} is too small: it gave '
                      f'{len(self._held_out)} examples, all held out for validation')
    self._train_done = True

  def _task_results(self) -> Iterator[examples.TaskExamples]:
    plan = self._plan
    settings = dict(max_length=plan.max_length, seed=plan.seed, eval_fraction=plan.eval_fraction)
    processes = min(plan.processes or os.cpu_count() or 1, len(plan.corpus.tasks))
    tasks = list(enumerate(plan.corpus.tasks))
    progress = _Progress(plan.corpus)
    if processes == 1:
      _init_worker(plan.tokenizer, settings)
      results = map(_build_task, tasks)
      pool = None
    else:  # Spawned, not forked: the parent may already hold JAX's threads.
      pool = multiprocessing.get_context('spawn').Pool(
          processes, _init_worker, (plan.tokenizer, settings))
      results = pool.imap(_build_task, tasks)
    try:
      for result, counted in results:
        self.stats['text_bytes'] += result.text_bytes
        self._pieces += unigram.count(result.tokens, plan.tokenizer.vocab_size)
        for name, count in counted.items():
          self.stats[name] += count
        progress.update(result.text_bytes)
        yield result
    finally:
      if pool is not None:
        pool.terminate()


class _Progress:
  """A log line every few seconds while building: how far, how fast."""

  def __init__(self, c: corpus.Corpus):
    self._tasks = len(c.tasks)
    self._start = self._last = time.perf_counter()
    self._done_mb, self._done_tasks = 0.0, 0

  def update(self, text_bytes: int) -> None:
    self._done_mb += text_bytes / 1e6
    self._done_tasks += 1
    now = time.perf_counter()
    if now - self._last < 5:
      return
    self._last = now
    # Tasks, not bytes, measure how far: compressed files and records have no known text size.
    logging.info('building examples: %d of %d tasks, %.1f MB of text (%.1f MB/s)', self._done_tasks,
                 self._tasks, self._done_mb, self._done_mb / (now - self._start))


def directory(data_dir: str, plan: BuildPlan) -> str:
  root = os.path.join(data_dir, 'datasets', f'{plan.corpus.name}-len{plan.max_length}-{plan.key}')
  return os.path.join(root, NAME, VERSION)


def _built(path: str) -> bool:
  # TFDS renames the finished build to `path`, dataset_info.json written: never a partial one.
  return os.path.exists(os.path.join(path, 'dataset_info.json'))


def build(data_dir: str, plan: BuildPlan) -> str:
  """The directory of the dataset `plan` describes, building it first if it is not cached. One
  process builds it at a time (others wait, then reuse it); what a killed build left is removed. A
  dataset built before its metadata held the unigram entropy has its pieces counted, once."""
  path = directory(data_dir, plan)
  if not _built(path) or unigram_entropy(path) is None:
    root = os.path.dirname(os.path.dirname(path))
    os.makedirs(root, exist_ok=True)
    with files.exclusive(os.path.join(root, 'build'), timeout=-1,
                         waiting=f'waiting for another process that builds the dataset in {root}'):
      if not _built(path):  # Another process may have built it while this one waited.
        _remove_killed_builds(os.path.dirname(path))
        _build(path, plan)
        return path
      if unigram_entropy(path) is None:
        _store_unigram_entropy(path, plan)
  logging.info('reusing the built dataset %s', path)
  return path


def unigram_entropy(path: str) -> float | None:
  """The unigram entropy of the pieces of the built dataset at `path` (data/unigram.py); None for one
  built before its metadata held it."""
  return tfds.builder_from_directory(path).info.metadata.get(UNIGRAM_ENTROPY)


def _store_unigram_entropy(path: str, plan: BuildPlan) -> None:
  """Counts the pieces of every stored example, as a build does, and stores their entropy where a
  build would have (TFDS's metadata file, which only the build itself writes otherwise)."""
  logging.info('counting the pieces of %s once, for its unigram entropy', path)
  pieces = 0
  for split in ('train', 'validation'):
    source = open_split(path, split) or []  # No validation split: nothing held out.
    for first in range(0, len(source), _COUNT_ROWS):
      rows = source.__getitems__(list(range(first, min(first + _COUNT_ROWS, len(source)))))
      pieces += unigram.count(np.concatenate([row['input_ids'] for row in rows]),
                              plan.tokenizer.vocab_size)
  files.write_atomically(os.path.join(path, tfds.core.constants.METADATA_FILENAME), json.dumps(
      {UNIGRAM_ENTROPY: unigram.piece_entropy(pieces, plan.tokenizer.special_ids)}))


def _remove_killed_builds(builder_dir: str) -> None:
  """TFDS builds into `incomplete.<random>_<version>` and renames it when done: under the build lock,
  any such directory is what a killed build left (a dataset's worth of disk, perhaps)."""
  if not os.path.isdir(builder_dir):
    return
  for name in os.listdir(builder_dir):
    if name.startswith(tfds.core.constants.INCOMPLETE_PREFIX):
      logging.warning('removing %s, left by a build that was killed',
                      os.path.join(builder_dir, name))
      shutil.rmtree(os.path.join(builder_dir, name))


def _build(path: str, plan: BuildPlan) -> None:
  logging.info('building the %s dataset (sequence length %d) into %s', plan.corpus.name,
               plan.max_length, path)
  start = time.perf_counter()
  builder = ElectraExamples(plan=plan, data_dir=os.path.dirname(os.path.dirname(path)),
                            file_format='array_record')
  tfds.disable_progress_bar()  # _Progress logs instead; TFDS's bars garble non-terminal logs.
  with contextlib.redirect_stdout(io.StringIO()):  # TFDS prints "Downloading ..." (nothing is).
    builder.download_and_prepare()
  stats = builder.stats
  seconds = time.perf_counter() - start
  if stats['replaced_bytes']:
    logging.warning('the corpus has %d bytes that are not UTF-8; they were read as U+FFFD',
                    stats['replaced_bytes'])
  if stats['bad_records']:
    logging.warning('skipped %d bad records (config.data.skip_bad_records)', stats['bad_records'])
  if stats['empty_records']:
    logging.info('skipped %d records without text', stats['empty_records'])
  logging.info('built %d train and %d validation examples from %.1f MB of text in %.1fs '
               '(%.2f MB/s)', stats['train'], stats['validation'], stats['text_bytes'] / 1e6,
               seconds, stats['text_bytes'] / 1e6 / seconds)


def open_split(path: str, split: str):
  """A random-access source of the split's examples, after checking every file is whole."""
  builder = tfds.builder_from_directory(path)
  if split not in builder.info.splits:
    return None
  info = builder.info.splits[split]
  for filename, expected in zip(info.filenames, info.shard_lengths):
    file_path = os.path.join(path, filename)
    try:
      found = array_record_module.ArrayRecordReader(file_path).num_records()
    except (RuntimeError, OSError, ValueError) as e:
      found = f'unreadable ({str(e).splitlines()[0][:120]})'
    if found != expected:
      raise UserError(f'{file_path} is corrupt or truncated ({found} records, expected {expected});'
                      f' delete {os.path.dirname(os.path.dirname(path))} to rebuild it')
  return builder.as_data_source(split=split)
