"""Pre-training examples from lines of text, as the original build_pretraining_dataset.py makes them.

Lines accumulate until they reach a target length; a document end flushes them. 10% of examples have a
single segment; otherwise segment A aims at half the length. 5% of examples get a random shorter target.
The layout is `[CLS] A [SEP] B [SEP]`, stored unpadded: padding and the input mask come at load time.
Everything random is drawn from a generator seeded per task, so a build is reproducible for a seed no
matter how many processes run it.
"""

import dataclasses
import random

import numpy as np

from electra_jax.data import corpus
from electra_jax.data.tokenizer import Tokenizer

_ENCODE_LINES = 4096  # Lines tokenized per SentencePiece call (it is much faster in batches).
EVAL_BLOCK = 8  # Held-out data is chosen in blocks of this many consecutive examples of a document.


class ExampleBuilder:
  """Feed it a document's tokenized lines; it returns (input_ids, first_segment_end) when one is done."""

  def __init__(self, max_length: int, cls_id: int, sep_id: int, rng: random.Random):
    self._max_length = max_length
    self._target_length = max_length
    self._cls, self._sep = cls_id, sep_id
    self._rng = rng
    self._sentences: list[list[int]] = []
    self._length = 0

  def add_line(self, ids: list[int]):
    self._sentences.append(ids)
    self._length += len(ids)
    return self._create_example() if self._length >= self._target_length else None

  def end_document(self):
    return self._create_example() if self._length else None

  def _create_example(self):
    rng = self._rng
    # -3 leaves room for [CLS] and two [SEP]s; a huge target keeps everything in segment A.
    first_target = 100_000 if rng.random() < 0.1 else (self._target_length - 3) // 2
    first, second = [], []
    for sentence in self._sentences:
      # A line goes to A if A is empty, if it fits, or half the time while B is empty and A is short.
      if (not first or len(first) + len(sentence) < first_target or
          (not second and len(first) < first_target and rng.random() < 0.5)):
        first += sentence
      else:
        second += sentence
    first = first[:self._max_length - 2]
    second = second[:max(0, self._max_length - len(first) - 3)]

    self._sentences, self._length = [], 0
    self._target_length = (rng.randint(5, self._max_length) if rng.random() < 0.05
                           else self._max_length)
    ids = [self._cls, *first, self._sep, *second, self._sep] if second else [
        self._cls, *first, self._sep]
    return ids, len(first) + 2


@dataclasses.dataclass
class TaskExamples:
  """A task's examples, concatenated: example i is tokens[offsets[i]:offsets[i + 1]]."""
  tokens: np.ndarray  # int32
  offsets: np.ndarray  # int64, one more than the examples.
  first_segment_ends: np.ndarray  # int32: positions from here on are segment 1.
  held_out: np.ndarray  # bool: proposed for the validation split.
  text_bytes: int  # UTF-8 bytes of the lines read.

  def example(self, i: int) -> dict[str, np.ndarray]:
    input_ids = self.tokens[self.offsets[i]:self.offsets[i + 1]]
    segment_ids = (np.arange(len(input_ids)) >= self.first_segment_ends[i]).astype(np.int32)
    return {'input_ids': input_ids, 'segment_ids': segment_ids}


def build(task: corpus.Task, task_index: int, tokenizer: Tokenizer, *, max_length: int,
          seed: int, eval_fraction: float) -> TaskExamples:
  """All examples of one task, in order.

  A document's examples are grouped in blocks of EVAL_BLOCK; every round(1 / eval_fraction)-th block of
  the task, starting with its first, is proposed for the validation split.
  """
  builder = ExampleBuilder(max_length, tokenizer.special_ids['cls_id'],
                           tokenizer.special_ids['sep_id'], random.Random(f'{seed}/{task_index}'))
  eval_stride = round(1 / eval_fraction) if eval_fraction > 0 else 0
  examples, ends, held_out = [], [], []
  state = {'block': 0, 'in_document': 0, 'bytes': 0}

  def emit(example) -> None:
    if example is None:
      return
    if state['in_document'] and state['in_document'] % EVAL_BLOCK == 0:
      state['block'] += 1
    state['in_document'] += 1
    examples.append(example[0])
    ends.append(example[1])
    held_out.append(bool(eval_stride) and state['block'] % eval_stride == 0)

  def end_document() -> None:
    emit(builder.end_document())
    if state['in_document']:
      state['block'] += 1
    state['in_document'] = 0

  def flush(batch: list[str]) -> None:
    texts = [line for line in batch if line]
    state['bytes'] += sum(len(line.encode('utf-8')) + 1 for line in batch)
    encoded = iter(tokenizer.encode(texts))
    for line in batch:
      if line:
        emit(builder.add_line(next(encoded)))
      else:
        end_document()

  batch = []
  for line in corpus.lines(task):
    batch.append(line)
    if len(batch) == _ENCODE_LINES:
      flush(batch)
      batch = []
  flush(batch)
  end_document()  # The end of a task ends its last document.

  lengths = np.array([len(e) for e in examples], np.int64)
  return TaskExamples(
      tokens=np.fromiter((t for e in examples for t in e), np.int32, int(lengths.sum())),
      offsets=np.concatenate([[0], np.cumsum(lengths)]),
      first_segment_ends=np.array(ends, np.int32),
      held_out=np.array(held_out, bool),
      text_bytes=state['bytes'])
