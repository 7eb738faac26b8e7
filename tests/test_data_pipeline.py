import json

import numpy as np
import pytest

from electra_jax.data import pipeline
from electra_jax.errors import UserError


class _Rows:
  """A stand-in for the TFDS source: row i is [2, 10 + i % 50 ..., 3], of varying length."""

  def __init__(self, n):
    self._n = n

  def __len__(self):
    return self._n

  def __getitems__(self, indices):
    rows = []
    for i in indices:
      ids = np.array([2] + [10 + i % 50] * (i % 7 + 1) + [3], np.int32)
      rows.append({'input_ids': ids, 'segment_ids': np.zeros_like(ids)})
    return rows


def _batches(n=100, **kwargs):
  args = dict(dataset_key='k', batch_size=8, rows=np.arange(8), seed=0)
  return pipeline.TrainBatches(n, pipeline.reader(_Rows(n), 12), **{**args, **kwargs})


def test_batches_are_padded_and_masked():
  batch = next(_batches())
  assert {k: v.shape for k, v in batch.items()} == {k: (8, 12) for k in (
      'input_ids', 'segment_ids', 'input_mask')}
  lengths = batch['input_mask'].sum(1)
  for row, n in zip(batch['input_ids'], lengths):
    assert row[0] == 2 and row[n - 1] == 3 and not row[n:].any()


def test_an_epoch_sees_every_example_once_then_reshuffles():
  it = _batches(n=96)
  first = [tuple(r) for _ in range(12) for r in next(it)['input_ids']]
  second = [tuple(r) for _ in range(12) for r in next(it)['input_ids']]
  assert sorted(first) == sorted(second) and first != second
  assert len(set(first)) == len({(i % 50, i % 7) for i in range(96)})


def test_resuming_from_the_state_continues_with_the_next_batch():
  reference = _batches()
  expected = [next(reference) for _ in range(25)]  # More than one epoch.
  interrupted = _batches()
  for _ in range(10):
    next(interrupted)
  state = json.loads(json.dumps(interrupted.get_state()))  # As the checkpoint stores it.
  resumed = _batches()
  resumed.set_state(state)
  for want in expected[10:]:
    got = next(resumed)
    for key in want:
      np.testing.assert_array_equal(got[key], want[key])


def test_a_state_from_other_data_is_rejected():
  state = _batches().get_state()
  with pytest.raises(UserError, match='trained on dataset k but the config now gives other'):
    _batches(dataset_key='other').set_state(state)


def test_processes_read_their_rows_of_one_global_order():
  whole = next(_batches())['input_ids']
  rows = [np.array([0, 1, 2, 3]), np.array([4, 5, 6, 7]), np.array([1, 6])]
  for part in rows:
    np.testing.assert_array_equal(next(_batches(rows=part))['input_ids'], whole[part])


def test_eval_batches_are_fixed_full_global_batches():
  def batches(rows):
    return pipeline.eval_batches(_Rows(39), batch_size=8, rows=rows, max_length=12,
                                 max_batches=10)
  first, again = batches(np.arange(4)), batches(np.arange(4))
  assert len(first) == 39 // 8
  for a, b in zip(first, again):
    np.testing.assert_array_equal(a['input_ids'], b['input_ids'])
  whole, second_half = batches(np.arange(8)), batches(np.arange(4, 8))
  for w, a, b in zip(whole, first, second_half):
    np.testing.assert_array_equal(np.concatenate([a['input_ids'], b['input_ids']]), w['input_ids'])


def test_word_starts_come_with_a_table_only():
  table = np.arange(64) % 3 != 1  # Ids 1, 4, 7... continue a word.
  batch = next(pipeline.TrainBatches(100, pipeline.reader(_Rows(100), 12, table), dataset_key='k',
                                     batch_size=8, rows=np.arange(8), seed=0))
  np.testing.assert_array_equal(batch['word_starts'], table[batch['input_ids']])
  assert batch['word_starts'].dtype == bool
  evaluated = pipeline.eval_batches(_Rows(16), batch_size=8, rows=np.arange(8), max_length=12,
                                    max_batches=1, word_starts=table)
  np.testing.assert_array_equal(evaluated[0]['word_starts'], table[evaluated[0]['input_ids']])
  assert 'word_starts' not in next(_batches())
