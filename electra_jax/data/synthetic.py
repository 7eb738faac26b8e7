"""A learnable synthetic corpus for benchmarks and tests: no files, no tokenizer, no I/O.

Token sequences follow a fixed random bigram chain in which every token has a few likely successors,
so a generator can learn to predict masked tokens and a discriminator can learn which replacements do
not fit. Batch i is a pure function of (seed, i), which makes the iterator state one integer.
"""

import numpy as np

from electra_jax.data import unigram

# The chain is the "corpus": fixed across runs; config.train.seed only changes the order of batches.
_CHAIN_SEED = 1234
_SUCCESSORS = 4
_SUCCESSOR_PROBS = np.array([0.55, 0.25, 0.12, 0.08])
_NUM_SPECIAL = 5  # Ids below this are left to [PAD], [UNK], [CLS], [SEP], [MASK].
_WORD_START_FRACTION = 2 / 3  # Of the ids, those that begin a word (for whole word masking).


class SyntheticSource:
  """Iterator of process-local batches of `[CLS] A [SEP] B [SEP] [PAD]...` examples."""

  def __init__(self, *, vocab_size: int, max_seq_length: int, global_batch_size: int, seed: int,
               pad_id: int, cls_id: int, sep_id: int, rows: np.ndarray | None = None,
               word_starts: bool = False):
    """`rows`: this process's rows of each global batch (data.Placement.rows); None = all.
    `word_starts`: batches also have `word_starts` (as data.pipeline.reader gives them), from a fixed
    table of which ids begin a word; the special ids do."""
    self._length = max_seq_length
    self._global_batch = global_batch_size
    self._rows = np.arange(global_batch_size) if rows is None else rows
    self._seed = seed
    self._pad_id, self._cls_id, self._sep_id = pad_id, cls_id, sep_id
    self._first_token = _NUM_SPECIAL if vocab_size > 2 * _NUM_SPECIAL else 0
    chain = np.random.default_rng(_CHAIN_SEED)
    self._successors = chain.integers(self._first_token, vocab_size, size=(vocab_size, _SUCCESSORS))
    self._vocab_size = vocab_size
    self._word_starts = None
    if word_starts:
      self._word_starts = chain.random(vocab_size) < _WORD_START_FRACTION
      self._word_starts[[pad_id, cls_id, sep_id]] = True
    self._next_batch = 0

  def __iter__(self):
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    batch = self.batch(self._next_batch)
    self._next_batch += 1
    return batch

  def get_state(self) -> dict:
    return {'next_batch': self._next_batch}

  def set_state(self, state: dict) -> None:
    self._next_batch = int(state['next_batch'])

  def unigram_entropy(self) -> float:
    """The chain's unigram entropy (data/unigram.py), of its tokens' distribution averaged over the
    positions after [CLS] of a full-length row; the [SEP]s and shorter rows are left out, which moves
    it by little, as the tokens' distribution changes little after the first few positions."""
    position = np.zeros(self._vocab_size)
    position[self._first_token:] = 1 / (self._vocab_size - self._first_token)  # The first, uniform.
    total = np.zeros(self._vocab_size)
    for _ in range(1, self._length):
      position = np.bincount(self._successors.ravel(), minlength=self._vocab_size,
                             weights=(position[:, None] * _SUCCESSOR_PROBS).ravel())
      total += position
    return unigram.entropy(total)

  def batch(self, index: int) -> dict[str, np.ndarray]:
    """The process-local rows of global batch `index`."""
    rng = np.random.default_rng([self._seed, index])
    rows, length = self._global_batch, self._length
    tokens = np.empty((rows, length), np.int32)
    tokens[:, 0] = rng.integers(self._first_token, self._vocab_size, size=rows)
    choices = rng.choice(_SUCCESSORS, size=(rows, length), p=_SUCCESSOR_PROBS)
    for t in range(1, length):
      tokens[:, t] = self._successors[tokens[:, t - 1], choices[:, t]]

    # A quarter of the examples are shorter than max_seq_length, so padding is always exercised.
    lengths = np.where(rng.random(rows) < 0.25, rng.integers(3, length + 1, size=rows), length)
    first_sep = 1 + (rng.random(rows) * (lengths - 2)).astype(np.int32)
    positions = np.arange(length)[None, :]
    input_mask = (positions < lengths[:, None]).astype(np.int32)
    segment_ids = ((positions > first_sep[:, None]) & (input_mask > 0)).astype(np.int32)
    tokens[:, 0] = self._cls_id
    tokens[np.arange(rows), first_sep] = self._sep_id
    tokens[np.arange(rows), lengths - 1] = self._sep_id
    tokens[input_mask == 0] = self._pad_id
    batch = {'input_ids': tokens[self._rows], 'segment_ids': segment_ids[self._rows],
             'input_mask': input_mask[self._rows]}
    if self._word_starts is not None:
      batch['word_starts'] = self._word_starts[batch['input_ids']]
    return batch
