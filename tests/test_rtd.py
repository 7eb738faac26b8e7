import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from electra_jax import rtd
from electra_jax.data.synthetic import SyntheticSource

PAD, CLS, SEP, MASK = 0, 2, 3, 4


def _batch(rows=64, length=64, seed=0):
  """Synthetic rows with `word_starts` (about 2 of 3 pieces begin a word)."""
  source = SyntheticSource(vocab_size=100, max_seq_length=length, global_batch_size=rows, seed=seed,
                           pad_id=PAD, cls_id=CLS, sep_id=SEP, word_starts=True)
  return {k: jnp.asarray(v) for k, v in next(source).items()}


@functools.partial(jax.jit, static_argnames=('whole_words', 'mask_prob', 'num_slots'))
def _positions(rng, batch, whole_words: bool, **options):
  """mask_positions, or whole_word_positions with the batch's word starts."""
  if whole_words:
    return rtd.whole_word_positions(rng, batch['input_ids'], batch['input_mask'],
                                    batch['word_starts'], special_ids=(PAD, CLS, SEP), **options)
  return rtd.mask_positions(rng, batch['input_ids'], batch['input_mask'],
                            special_ids=(PAD, CLS, SEP), **options)


def _chosen(batch, whole_words=False):
  """15% of each row's real tokens chosen by key 0, up to 10 slots: (positions, weights)."""
  return _positions(jax.random.key(0), batch, whole_words, mask_prob=0.15, num_slots=10)


@pytest.mark.parametrize('whole_words', [False, True])
@pytest.mark.parametrize('mask_prob,num_slots', [(0.15, 10), (0.5, 8), (0.15, 64)])
def test_mask_positions_count_candidates_and_distinctness(mask_prob, num_slots, whole_words):
  batch = _batch()
  ids, mask = np.asarray(batch['input_ids']), np.asarray(batch['input_mask'])
  assert (mask.sum(1) < ids.shape[1]).any(), 'the batch should contain padding'
  positions, weights = _positions(jax.random.key(1), batch, whole_words, mask_prob=mask_prob,
                                  num_slots=num_slots)
  positions, weights = np.asarray(positions), np.asarray(weights)
  total_expected = total_chosen = 0
  for row in range(ids.shape[0]):
    candidates = mask[row].astype(bool) & ~np.isin(ids[row], [PAD, CLS, SEP])
    expected = min(max(1, min(num_slots, int(np.round(mask[row].sum() * mask_prob)))),
                   candidates.sum())
    chosen = positions[row][weights[row] > 0]
    # Whole words may fall short of the count when only longer words are left.
    assert len(chosen) <= expected if whole_words else len(chosen) == expected
    total_expected, total_chosen = total_expected + expected, total_chosen + len(chosen)
    assert len(set(chosen.tolist())) == len(chosen), 'positions must be drawn without replacement'
    assert candidates[chosen].all(), 'never [CLS], [SEP], [PAD] or padding'
    assert (weights[row][:len(chosen)] == 1).all() and (weights[row][len(chosen):] == 0).all()
  assert total_chosen >= 0.97 * total_expected


@pytest.mark.parametrize('whole_words', [False, True])
def test_mask_positions_cover_candidates_uniformly(whole_words):
  batch = _batch(rows=1, length=32)
  if whole_words:  # Words of one piece each, drawn as tokens are (longer words fit less often).
    batch['word_starts'] = jnp.ones_like(batch['word_starts'])
  keys = jax.random.split(jax.random.key(0), 400)
  positions, weights = jax.vmap(
      lambda rng: _positions(rng, batch, whole_words, mask_prob=0.15, num_slots=5))(keys)
  hits = np.zeros(32)
  np.add.at(hits, np.asarray(positions)[np.asarray(weights) > 0], 1)
  candidates = ~np.isin(np.asarray(batch['input_ids'][0]), [PAD, CLS, SEP])
  assert hits[~candidates].sum() == 0
  frequencies = hits[candidates] / hits.sum()
  assert np.abs(frequencies - 1 / candidates.sum()).max() < 0.35 / candidates.sum()


def _reference_words(ids, mask, word_starts):
  """The words of one row as whole_word_positions defines them, by a loop: each a list of candidate
  positions. A candidate piece starts a word if word_starts says so or if the piece before it is not a
  candidate (or there is none); non-candidates are never chosen, so they are left out."""
  words, previous_is_candidate = [], False
  for position, (token, real, start) in enumerate(zip(ids, mask, word_starts)):
    is_candidate = bool(real) and int(token) not in (PAD, CLS, SEP)
    if is_candidate and (start or not previous_is_candidate):
      words.append([position])
    elif is_candidate:
      words[-1].append(position)
    previous_is_candidate = is_candidate
  return words


def _check_whole_words(ids, mask, word_starts, chosen, mask_prob, num_slots):
  """chosen (one row's positions) against the reference: distinct, a union of whole candidate words,
  at most mask_positions' count, and every word left out too long for what the count had left (BERT's
  rule: a word is skipped only when it does not fit, and what is left only shrinks)."""
  words = _reference_words(ids, mask, word_starts)
  chosen = [int(p) for p in chosen]
  assert len(set(chosen)) == len(chosen)
  taken = [word for word in words if set(word) & set(chosen)]
  assert sorted(chosen) == sorted(p for word in taken for p in word), (chosen, words)
  candidates = sum(len(word) for word in words)
  # float32 and round half to even, as the function computes it.
  rounded = int(np.round(np.float32(int(np.sum(mask))) * np.float32(mask_prob)))
  count = min(max(1, min(num_slots, rounded)), candidates)
  left = count - len(chosen)
  assert left >= 0 and all(len(word) > left for word in words if word not in taken), (
      chosen, words, count)
  return taken


# [CLS] ##a b ##c d e [SEP] ##f ##g h [SEP] [PAD] [PAD], and a row cut at both edges with no [CLS]:
# ##a b [SEP] ##c d ##e f g ... (word_starts' value at a special token must not matter).
_HAND_ROWS = {
    'input_ids': [[CLS, 10, 11, 12, 13, 14, SEP, 15, 16, 17, SEP, PAD, PAD],
                  [20, 21, SEP, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31]],
    'input_mask': [[1] * 11 + [0] * 2, [1] * 13],
    'word_starts': [[1, 0, 1, 0, 1, 1, 1, 0, 0, 1, 1, 0, 0],
                    [0, 1, 0, 0, 1, 0, 1, 1, 1, 1, 1, 1, 1]],
}


def test_reference_words_of_the_hand_rows():
  rows = [_reference_words(*(_HAND_ROWS[k][row] for k in ('input_ids', 'input_mask', 'word_starts')))
          for row in range(2)]
  assert rows == [[[1], [2, 3], [4], [5], [7, 8], [9]],
                  [[0], [1], [3], [4, 5], [6], [7], [8], [9], [10], [11], [12]]]


@pytest.mark.parametrize('mask_prob,num_slots', [(0.15, 13), (0.3, 3)])
def test_whole_word_positions_match_a_reference_and_can_choose_every_word(mask_prob, num_slots):
  batch = {k: jnp.asarray(v) for k, v in _HAND_ROWS.items()}
  keys = jax.random.split(jax.random.key(0), 300)
  positions, weights = jax.vmap(lambda rng: _positions(
      rng, batch, True, mask_prob=mask_prob, num_slots=num_slots))(keys)
  positions, weights = np.asarray(positions), np.asarray(weights)
  for row in range(2):
    row_data = [_HAND_ROWS[k][row] for k in ('input_ids', 'input_mask', 'word_starts')]
    chosen_words = set()
    for draw in range(len(keys)):
      taken = _check_whole_words(*row_data, positions[draw, row][weights[draw, row] > 0], mask_prob,
                                 num_slots)
      chosen_words.update(tuple(word) for word in taken)
    # Every candidate word, the '##' pieces right after [CLS] and [SEP] and at position 0 included.
    assert chosen_words == {tuple(word) for word in _reference_words(*row_data)}


@pytest.mark.parametrize('mask_prob,num_slots', [(0.15, 10), (0.5, 24), (0.15, 2)])
def test_whole_word_positions_match_a_reference_on_random_rows(mask_prob, num_slots):
  rng = np.random.default_rng(0)
  rows, length = 128, 24
  ids = rng.integers(5, 100, (rows, length))
  ids[rng.random((rows, length)) < 0.1] = SEP
  ids[rng.random(rows) < 0.8, 0] = CLS
  real = rng.integers(length // 2, length + 1, rows)
  mask = np.arange(length)[None, :] < real[:, None]
  ids[~mask] = PAD
  word_starts = rng.random((rows, length)) < 0.5
  batch = {'input_ids': jnp.asarray(ids), 'input_mask': jnp.asarray(mask.astype(np.int32)),
           'word_starts': jnp.asarray(word_starts)}
  multi_piece = 0
  for key in range(3):
    positions, weights = (np.asarray(x) for x in _positions(
        jax.random.key(key), batch, True, mask_prob=mask_prob, num_slots=num_slots))
    for row in range(rows):
      _check_whole_words(ids[row], mask[row], word_starts[row], positions[row][weights[row] > 0],
                         mask_prob, num_slots)
      multi_piece += sum(len(w) > 1 for w in _reference_words(ids[row], mask[row], word_starts[row]))
  assert multi_piece > 300, 'the rows should have words of several pieces'


def test_take_while_fits_skips_a_word_that_overflows_and_goes_on():
  sizes = jnp.array([[3, 1, 5, 2, 1], [3, 1, 5, 2, 1], [3, 3, 1, 3, 1], [6, 6, 6, 6, 6]])
  taken = rtd.take_while_fits(sizes, jnp.array([4, 5, 2, 5]))
  np.testing.assert_array_equal(taken, [[1, 1, 0, 0, 0], [1, 1, 0, 0, 1], [0, 0, 1, 0, 1],
                                        [0, 0, 0, 0, 0]])


@pytest.mark.parametrize('whole_words', [False, True])
def test_apply_mask_shows_mask_at_the_configured_rate_and_touches_nothing_else(whole_words):
  batch = _batch(rows=256)
  positions, weights = _chosen(batch, whole_words)
  masked = rtd.apply_mask(jax.random.key(1), batch['input_ids'], positions, weights, mask_id=MASK,
                          mask_token_fraction=0.85)
  ids, out = np.asarray(batch['input_ids']), np.asarray(masked.input_ids)
  chosen = np.zeros_like(ids, bool)
  rows = np.nonzero(np.asarray(weights) > 0)
  chosen[rows[0], np.asarray(positions)[rows]] = True
  assert (out[~chosen] == ids[~chosen]).all()
  shown = (out[chosen] == MASK).mean()
  assert 0.82 < shown < 0.88
  assert (out[chosen][out[chosen] != MASK] == ids[chosen][out[chosen] != MASK]).all()
  np.testing.assert_array_equal(np.asarray(masked.targets)[rows], ids[rows[0], np.asarray(positions)[rows]])


def test_sampling_the_original_token_is_labelled_original():
  ids = jnp.array([[CLS, 10, 11, 12, SEP, PAD]])
  positions = jnp.array([[1, 3, 0]])
  weights = jnp.array([[1.0, 1.0, 0.0]])
  corrupted, labels = rtd.corrupt(ids, positions, weights, sampled=jnp.array([[10, 40, 77]]))
  np.testing.assert_array_equal(corrupted, [[CLS, 10, 11, 40, SEP, PAD]])
  np.testing.assert_array_equal(labels, [[0, 0, 0, 1, 0, 0]])  # Unused slot (weight 0) writes nothing.


def test_sample_replacements_disallow_correct_and_temperature():
  targets = jnp.zeros((500, 1), jnp.int32)
  logits = jnp.zeros((500, 1, 5)).at[..., 0].set(10.0)
  sampled = rtd.sample_replacements(jax.random.key(0), logits, targets, temperature=1.0,
                                    disallow_correct=False)
  assert (np.asarray(sampled) == 0).mean() > 0.99
  sampled = rtd.sample_replacements(jax.random.key(0), logits, targets, temperature=1.0,
                                    disallow_correct=True)
  assert (np.asarray(sampled) != 0).all()
  hot = rtd.sample_replacements(jax.random.key(0), logits, targets, temperature=100.0,
                                disallow_correct=False)
  assert 0.1 < (np.asarray(hot) == 0).mean() < 0.4


@pytest.mark.parametrize('vocab', [5, 300])  # One block of 128 ids, and three (the last partial).
def test_sample_categorical_follows_the_softmax_and_never_draws_impossible_ids(vocab):
  rng = np.random.default_rng(0)
  logits = rng.normal(size=vocab) * 2
  logits[rng.choice(vocab, vocab // 3, replace=False)] = -np.inf  # e.g. the padding ids.
  logits[-1] = -np.inf  # The last id: a threshold rounding up to the total must not reach it.
  rows = 400_000
  drawn = np.asarray(jax.jit(lambda key: rtd.sample_categorical(
      key, jnp.broadcast_to(jnp.asarray(logits, jnp.float32), (rows, vocab))))(jax.random.key(1)))
  counts = np.bincount(drawn, minlength=vocab)
  expected = np.asarray(jax.nn.softmax(jnp.asarray(logits))) * rows
  assert counts[np.isinf(logits)].sum() == 0
  # Each count within 5 standard deviations of its binomial expectation.
  assert (np.abs(counts - expected) <= 5 * np.sqrt(expected) + 1).all()


def test_sample_categorical_with_all_mass_on_one_id():
  logits = jnp.full((64, 3, 200), -jnp.inf).at[:, :, 131].set(0.0)
  np.testing.assert_array_equal(rtd.sample_categorical(jax.random.key(0), logits), 131)


def test_sampling_has_no_gradient():
  grad = jax.grad(lambda logits: rtd.sample_replacements(
      jax.random.key(0), logits, jnp.zeros((1, 1), jnp.int32), temperature=1.0,
      disallow_correct=False).astype(jnp.float32).sum())(jnp.ones((1, 1, 4)))
  assert not np.asarray(grad).any()


def test_losses_match_a_hand_computation():
  logits = jnp.array([[[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [5.0, 5.0, 5.0]]])
  targets = jnp.array([[0, 2, 1]])
  weights = jnp.array([[1.0, 1.0, 0.0]])
  ce0 = -np.log(np.exp(2) / (np.exp(2) + 2))
  ce1 = -np.log(1 / (np.e + 2))
  np.testing.assert_allclose(rtd.mlm_loss(logits, targets, weights), (ce0 + ce1) / 2, rtol=1e-6)

  disc_logits = jnp.array([[1.0, -2.0, 0.5, 9.0]])
  labels = jnp.array([[1.0, 0.0, 0.0, 1.0]])
  input_mask = jnp.array([[1, 1, 1, 0]])
  per_token = [np.log1p(np.exp(-1.0)), np.log1p(np.exp(-2.0)), np.log1p(np.exp(0.5))]
  np.testing.assert_allclose(rtd.disc_loss(disc_logits, labels, input_mask), np.mean(per_token),
                             rtol=1e-6)

  metrics = rtd.disc_metrics(disc_logits, labels, input_mask)
  # Predictions on real tokens: replaced, original, replaced; labels: 1, 0, 0.
  np.testing.assert_allclose(metrics['disc_accuracy'], 2 / 3, rtol=1e-6)
  np.testing.assert_allclose(metrics['disc_precision'], 1 / 2, rtol=1e-6)
  np.testing.assert_allclose(metrics['disc_recall'], 1.0, rtol=1e-6)
  np.testing.assert_allclose(metrics['replaced_fraction'], 1 / 3, rtol=1e-6)
  np.testing.assert_allclose(metrics['disc_base_rate_entropy'], rtd.base_rate_entropy(1 / 3),
                             rtol=1e-6)


def test_max_predictions_matches_the_original(config):
  config.objective.mask_prob = 0.15
  # int(0.155 * 512) = 79; ELECTRA_REFERENCE.md's "77" is round(0.15 * 512), not its own formula.
  for length, expected in ((128, 19), (512, 79)):
    config.data.max_seq_length = length
    assert rtd.max_predictions(config) == expected
  config.objective.max_predictions = 7
  assert rtd.max_predictions(config) == 7


def test_health_metrics_match_a_hand_computation():
  # Real tokens: logits 1, -2, 0.5 with labels 1, 0, 0 (the fourth is padding).
  metrics = rtd.disc_metrics(jnp.array([[1.0, -2.0, 0.5, 9.0]]), jnp.array([[1.0, 0.0, 0.0, 1.0]]),
                             jnp.array([[1, 1, 1, 0]]))
  np.testing.assert_allclose(metrics['disc_accuracy_replaced'], 1.0, rtol=1e-6)
  np.testing.assert_allclose(metrics['disc_accuracy_original'], 1 / 2, rtol=1e-6)
  np.testing.assert_allclose(metrics['disc_auc'], 1.0, rtol=1e-6)  # 1 beats -2 and 0.5.


def test_auc_is_exact_with_ties_and_weights():
  rng = np.random.default_rng(0)
  scores = rng.normal(size=2000).round(1)  # Many ties.
  labels = (rng.random(2000) < 0.2).astype(np.float32)
  weights = (rng.random(2000) < 0.9).astype(np.float32)
  pos = scores[(labels > 0) & (weights > 0)]
  neg = scores[(labels == 0) & (weights > 0)]
  expected = (((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum())
              / (len(pos) * len(neg)))
  np.testing.assert_allclose(rtd.auc(scores, labels, weights), expected, rtol=1e-6)
  assert float(rtd.auc(np.zeros(6), np.array([1, 0, 1, 0, 0, 0]), np.ones(6))) == 0.5  # All tied.
  assert float(rtd.auc(scores, np.zeros(2000), weights)) == 0.5  # One class only.
  np.testing.assert_allclose(rtd.auc(-scores, labels, weights), 1 - expected, rtol=1e-5)


def test_spread_is_zero_when_every_token_has_one_vector():
  hidden = jax.random.normal(jax.random.key(0), (4, 16, 32))
  mask = jnp.ones((4, 16)).at[:, 12:].set(0)
  assert float(rtd.spread(hidden, mask)) > 0.9
  same = jnp.broadcast_to(hidden[:1, :1], hidden.shape) + 3.0
  assert float(rtd.spread(same, mask)) < 1e-3
  # Padding positions are ignored: changing them changes nothing.
  np.testing.assert_allclose(rtd.spread(hidden.at[:, 12:].set(100.0), mask),
                             rtd.spread(hidden, mask), rtol=1e-6)


def test_the_base_rate_entropy_is_the_loss_of_answering_the_replaced_fraction_everywhere():
  for p in (0.01, 0.147, 0.5, 0.9):
    labels = np.arange(10_000) < p * 10_000
    constant = rtd.disc_loss(jnp.full(10_000, np.log(p / (1 - p))), labels.astype(np.float32),
                             jnp.ones(10_000))
    np.testing.assert_allclose(rtd.base_rate_entropy(p), constant, rtol=1e-5)
  np.testing.assert_allclose(rtd.base_rate_entropy(0.5), np.log(2), rtol=1e-6)
  assert float(rtd.base_rate_entropy(0.0)) == float(rtd.base_rate_entropy(1.0)) == 0  # Not nan.


_FIRST = {'step': 50, 'split': 'train', 'loss': 34.1, 'gen_loss': 6.93}
_LAST = {'step': 1000, 'split': 'eval', 'loss': 32.3, 'gen_loss': 5.38, 'unigram_entropy': 5.7,
         'disc_loss': 0.5387, 'disc_base_rate_entropy': 0.557, 'replaced_fraction': 0.242,
         'disc_auc': 0.5726}


def test_the_summary_says_whether_each_model_ended_under_its_yardstick():
  assert rtd.summary('rtd', _FIRST, _LAST) == (
      "generator loss 6.93 at step 50 -> 5.38 at step 1000 (eval), 0.32 nats under the corpus's "
      'unigram entropy 5.7: it learned; discriminator loss 0.5387, 3.3% under the base-rate entropy '
      '0.5570 of 24.2% replaced: it learned; disc_auc 0.573')
  guessing = rtd.summary('rtd', _FIRST, {**_LAST, 'split': 'train', 'gen_loss': 5.9,
                                         'disc_loss': 0.56})
  assert ('-> 5.9 at step 1000, 0.20 nats over the corpus\'s unigram entropy 5.7: no better than '
          'guessing pieces by their frequency; discriminator loss 0.5600, 0.5% over the base-rate '
          'entropy 0.5570 of 24.2% replaced: no better than guessing the replaced fraction') in guessing
  mlm = {'step': 1000, 'split': 'eval', 'loss': 5.1, 'unigram_entropy': 5.7, 'mlm_accuracy': 0.2}
  assert rtd.summary('mlm', {'step': 50, 'split': 'train', 'loss': 6.9}, mlm) == (
      "masked LM loss 6.9 at step 50 -> 5.1 at step 1000 (eval), 0.60 nats under the corpus's "
      'unigram entropy 5.7: it learned; mlm_accuracy 0.200')


def test_health_warning_names_the_symptom_and_the_knobs():
  assert rtd.health_warning({'disc_auc': 0.8, 'disc_spread': 0.7}) is None
  warning = rtd.health_warning({"disc_auc": 0.51, 'disc_spread': 0.7})
  assert 'disc_auc 0.510' in warning and 'learning_rate' in warning and '\n' not in warning
  warning = rtd.health_warning({'disc_auc': 0.8, 'disc_spread': 0.1})
  assert 'disc_spread 0.100' in warning and 'disc_auc' not in warning
  assert rtd.health_warning({'loss': 3.0}) is None  # The MLM baseline has no discriminator.


@pytest.mark.parametrize('whole_words', [False, True])
def test_apply_mask_with_random_tokens_follows_80_10_10(whole_words):
  batch = _batch(rows=512)
  positions, weights = _chosen(batch, whole_words)
  masked = rtd.apply_mask(jax.random.key(1), batch['input_ids'], positions, weights, mask_id=MASK,
                          mask_token_fraction=0.8, random_token_fraction=0.1, vocab_size=100)
  ids, out = np.asarray(batch['input_ids']), np.asarray(masked.input_ids)
  rows = np.nonzero(np.asarray(weights) > 0)
  chosen_in, chosen_out = ids[rows[0], np.asarray(positions)[rows]], out[rows[0], np.asarray(positions)[rows]]
  assert 0.77 < (chosen_out == MASK).mean() < 0.83
  random_shown = (chosen_out != MASK) & (chosen_out != chosen_in)
  # A random id equals the original 1 time in 100 (or is [MASK]), so slightly under 10% show another.
  assert 0.08 < random_shown.mean() < 0.115
  assert (0 <= chosen_out).all() and (chosen_out < 100).all()
  kept = np.ones_like(ids, bool)
  kept[rows[0], np.asarray(positions)[rows]] = False
  assert (out[kept] == ids[kept]).all()


def test_the_default_masking_draws_exactly_as_before_random_tokens_existed():
  batch = _batch()
  positions, weights = _chosen(batch)
  masked = rtd.apply_mask(jax.random.key(1), batch['input_ids'], positions, weights, mask_id=MASK,
                          mask_token_fraction=0.85)
  show = jax.random.uniform(jax.random.key(1), positions.shape) < 0.85
  targets = jnp.take_along_axis(batch['input_ids'], positions, axis=1)
  expected = rtd.scatter(batch['input_ids'], positions, weights, jnp.where(show, MASK, targets))
  np.testing.assert_array_equal(masked.input_ids, expected)


@pytest.mark.parametrize('kind,expected', [('rtd', (0.85, 0.0)), ('mlm', (0.8, 0.1))])
def test_masking_fractions_are_the_kinds_unless_set(config, kind, expected):
  """ELECTRA's generator sees 85% [MASK] and 15% kept; the BERT baseline BERT's 80/10/10."""
  config.objective.kind = kind
  assert rtd.masking_fractions(config.objective) == expected
  resolved = rtd.with_masking_fractions(config).objective
  assert (resolved.mask_token_fraction, resolved.random_token_fraction) == expected
  assert config.objective.mask_token_fraction is None  # The caller's config is left as it was.
  config.objective.random_token_fraction = 0.05
  assert rtd.masking_fractions(config.objective) == (expected[0], 0.05)
  config.objective.mask_token_fraction = 0.9
  resolved = rtd.with_masking_fractions(config).objective
  assert (resolved.mask_token_fraction, resolved.random_token_fraction) == (0.9, 0.05)
