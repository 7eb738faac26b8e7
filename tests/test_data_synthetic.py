import numpy as np

from electra_jax.data import unigram
from electra_jax.data.synthetic import SyntheticSource

PAD, CLS, SEP = 0, 2, 3


def _source(**kwargs):
  args = dict(vocab_size=64, max_seq_length=24, global_batch_size=8, seed=3, pad_id=PAD,
              cls_id=CLS, sep_id=SEP)
  return SyntheticSource(**{**args, **kwargs})


def test_examples_have_the_electra_layout():
  batch = _source(global_batch_size=64).batch(0)
  for ids, segments, mask in zip(batch['input_ids'], batch['segment_ids'], batch['input_mask']):
    n = mask.sum()
    assert (mask[:n] == 1).all() and (mask[n:] == 0).all()
    assert ids[0] == CLS and ids[n - 1] == SEP and (ids[n:] == PAD).all()
    seps = np.nonzero(ids[:n] == SEP)[0]
    assert len(seps) == 2 or (len(seps) == 1 and n == 3)
    assert (segments[:seps[0] + 1] == 0).all() and (segments[seps[0] + 1:n] == 1).all()
    assert (segments[n:] == 0).all()
  assert batch['input_ids'].dtype == np.int32


def test_batches_are_deterministic_and_the_state_resumes():
  source = _source()
  first, second = next(source), next(source)
  state = source.get_state()
  third = next(source)
  resumed = _source()
  resumed.set_state(state)
  np.testing.assert_array_equal(next(resumed)['input_ids'], third['input_ids'])
  assert not np.array_equal(first['input_ids'], second['input_ids'])
  np.testing.assert_array_equal(_source().batch(1)['input_ids'], second['input_ids'])


def test_processes_split_the_global_batch():
  whole = _source().batch(5)
  halves = [_source(rows=np.arange(i * 4, i * 4 + 4)).batch(5) for i in range(2)]
  for key in whole:
    np.testing.assert_array_equal(np.concatenate([h[key] for h in halves]), whole[key])



def test_word_starts_are_a_fixed_table_of_ids_when_asked_for():
  assert 'word_starts' not in _source().batch(0)
  batch = _source(global_batch_size=64, word_starts=True).batch(0)
  ids, starts = batch['input_ids'], batch['word_starts']
  assert starts[np.isin(ids, [PAD, CLS, SEP])].all()
  for token in np.unique(ids):  # One answer per id: a property of the vocabulary.
    assert len(np.unique(starts[ids == token])) == 1
  assert 0.5 < starts[batch['input_mask'] == 1].mean() < 0.85


def test_the_unigram_entropy_is_that_of_the_tokens_the_batches_hold():
  source = _source(global_batch_size=512)
  batches = [source.batch(i) for i in range(8)]
  counts = sum(unigram.count(b['input_ids'][b['input_mask'] == 1], 64) for b in batches)
  counted = unigram.piece_entropy(counts, {'pad_id': PAD, 'cls_id': CLS, 'sep_id': SEP})
  assert abs(source.unigram_entropy() - counted) < 0.01
  assert source.unigram_entropy() < np.log(64 - 5) - 0.1  # Not the uniform distribution's.
