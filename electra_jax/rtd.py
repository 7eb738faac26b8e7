"""Replaced token detection (Clark et al., ICLR 2020, section 2) as pure functions.

One step, in the paper's order:
  mask_positions   choose ~15% of the real tokens, without replacement        (section 2, masking)
                   (or whole_word_positions: whole words, BERT's whole word masking)
  apply_mask       85% of them become [MASK], 15% keep their token
  generator        logits at the chosen positions only -> mlm_loss            (L_MLM)
  sample_replacements  sample from the generator's softmax, no gradient
  corrupt          scatter the samples in; label = corrupted != original
  discriminator    one logit per position -> disc_loss over all real tokens   (L_Disc)
  loss = gen_weight * L_MLM + disc_weight * L_Disc                           (equation 1, lambda = 50)
`rtd_loss` composes them; everything else here is a plain array function. `mlm_objective_loss` is
the paper's BERT baseline with the same positions, shown 80/10/10 unless configured otherwise
(masking_fractions), `health_warning` reads the evaluation metrics for the known failure: a
discriminator that has stopped learning, and `summary` says at the end of a run whether each model
learned, its loss against what guessing scores (YARDSTICKS).
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx
import ml_collections
import optax


class Masked(NamedTuple):
  input_ids: jax.Array  # [batch, length] with the chosen positions masked.
  positions: jax.Array  # [batch, P] int32 positions chosen for prediction.
  targets: jax.Array  # [batch, P] original token ids at `positions`.
  weights: jax.Array  # [batch, P] float32: 1 for a real prediction, 0 for an unused slot.


# (mask_token_fraction, random_token_fraction) of each objective.kind when config.objective leaves
# them unset: ELECTRA's generator input (85% [MASK], 15% kept) and BERT's 80/10/10 for its baseline.
MASKING_DEFAULTS = {'rtd': (0.85, 0.0), 'mlm': (0.8, 0.1)}


def masking_fractions(objective: ml_collections.ConfigDict) -> tuple[float, float]:
  """(mask_token_fraction, random_token_fraction) of config.objective, an unset one (None) its
  kind's default (MASKING_DEFAULTS)."""
  defaults = MASKING_DEFAULTS[objective.kind]
  return tuple(default if value is None else value for value, default in zip(
      (objective.mask_token_fraction, objective.random_token_fraction), defaults))


def with_masking_fractions(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """config with both masking fractions set (masking_fractions), so that the run's config.json says
  what it used and a rerun is compared with that."""
  config = config.copy_and_resolve_references()
  objective = config.objective
  objective.mask_token_fraction, objective.random_token_fraction = masking_fractions(objective)
  return config


def max_predictions(config: ml_collections.ConfigDict) -> int:
  """Prediction slots per sequence: int((mask_prob + 0.005) * length), the original's formula."""
  objective = config.objective
  return objective.max_predictions or int((objective.mask_prob + 0.005) * config.data.max_seq_length)


def _candidates_and_count(input_ids, input_mask, special_ids, mask_prob: float, num_slots: int):
  """The candidates [B, L] (real tokens other than the special ones) and how many positions to choose
  per sequence [B]: max(1, min(num_slots, round(real_tokens * mask_prob))), at most the candidates."""
  candidates = input_mask.astype(bool) & ~jnp.isin(input_ids, jnp.asarray(special_ids))
  real_tokens = input_mask.sum(axis=-1)
  count = jnp.clip(jnp.round(real_tokens * mask_prob), 1, num_slots).astype(jnp.int32)
  return candidates, jnp.minimum(count, candidates.sum(axis=-1))


def mask_positions(rng, input_ids, input_mask, *, special_ids, mask_prob: float, num_slots: int):
  """Chooses max(1, min(num_slots, round(real_tokens * mask_prob))) candidate positions per sequence.

  Candidates are real tokens other than the special ones. Positions are distinct: the top-k of i.i.d.
  noise over the candidates is a uniform draw without replacement (the original drew with replacement,
  so duplicates were scattered twice). Returns (positions [B, P], weights [B, P]).
  """
  candidates, count = _candidates_and_count(input_ids, input_mask, special_ids, mask_prob, num_slots)
  noise = jnp.where(candidates, jax.random.uniform(rng, input_ids.shape), -1.0)
  _, positions = jax.lax.top_k(noise, num_slots)
  weights = jnp.arange(num_slots)[None, :] < count[:, None]
  return jnp.where(weights, positions, 0).astype(jnp.int32), weights.astype(jnp.float32)


def whole_word_positions(rng, input_ids, input_mask, word_starts, *, special_ids, mask_prob: float,
                         num_slots: int):
  """mask_positions' count, chosen as whole words (BERT's whole word masking): every piece of a chosen
  word and no piece of any other. `word_starts` [B, L] is true where a piece begins a word (the
  tokenizer's `word_starts` table, read per batch by the data pipeline). A candidate piece also starts
  a word where its predecessor is not a candidate, or at position 0 (a word cut at the example's edge,
  a '##' piece right after [CLS] or [SEP]); a word runs up to the next start. A non-candidate
  (special token, padding) is a word of its own and never chosen.

  Words are tried in a uniformly random order; each is taken if its pieces still fit in the count,
  and a word that would overflow it is skipped for the next ones (BERT's create_pretraining_data), so
  the count is met exactly unless only longer words are left; a word of more than num_slots pieces is
  never chosen. Returns (positions [B, P], weights [B, P]) as mask_positions does.
  """
  batch, length = input_ids.shape
  candidates, count = _candidates_and_count(input_ids, input_mask, special_ids, mask_prob, num_slots)
  # Else a continuation piece after a special token would join that token's word, never chosen.
  after_non_candidate = jnp.pad(~candidates[:, :-1], ((0, 0), (1, 0)), constant_values=True)
  starts = word_starts.astype(bool) | ~candidates | after_non_candidate
  word_of = jnp.cumsum(starts, axis=-1) - 1  # [B, L]: the word each position belongs to.
  rows = jnp.arange(batch)[:, None]
  pieces = jnp.zeros((batch, length), jnp.int32).at[rows, word_of].add(1)  # [B, words]
  # One uniform score per candidate word, the draw at its first piece; -1 for the other words and for
  # the word slots past a sequence's last word.
  first_piece_of = jnp.where(starts, word_of, length)  # Other positions write nowhere.
  draws = jnp.where(candidates, jax.random.uniform(rng, input_ids.shape), -1.0)
  score = jnp.full((batch, length), -1.0).at[rows, first_piece_of].set(draws, mode='drop')
  _, order = jax.lax.top_k(score, length)  # [B, words] word ids, best score first.
  too_long = length + 1  # Non-candidate words never fit.
  sizes = jnp.take_along_axis(jnp.where(score >= 0, pieces, too_long), order, axis=1)
  taken = take_while_fits(sizes, count)
  chosen_word = jnp.zeros((batch, length), bool).at[rows, order].set(taken)
  chosen = jnp.take_along_axis(chosen_word, word_of, axis=1)  # [B, L]
  _, positions = jax.lax.top_k(chosen.astype(jnp.int32), num_slots)  # The chosen ones first.
  weights = jnp.arange(num_slots)[None, :] < chosen.sum(axis=-1, keepdims=True)
  return jnp.where(weights, positions, 0).astype(jnp.int32), weights.astype(jnp.float32)


def take_while_fits(sizes, budget):
  """BERT's rule over items in order: take each item whose size fits in what is left of the budget,
  skip one that does not. sizes [B, N] positive, budget [B] -> taken [B, N] bool.

  In rounds rather than item by item: a round skips to the next item that fits, then takes the
  longest run of items from there that fits (a cumulative sum). The first round stops at an item
  larger than what is left, and each later one takes at least 1 of what is left, so there are at
  most 1 + (what the first leaves) rounds: 3 for 256 x 512 synthetic tokens, 15% masked.
  """
  rank = jnp.arange(sizes.shape[-1])

  def fitting(state):
    _, next_rank, left = state
    return (rank >= next_rank[:, None]) & (sizes <= left[:, None])

  def take_a_run(state):
    taken, _, left = state
    fits = fitting(state)
    start = jnp.where(fits.any(axis=-1), jnp.argmax(fits, axis=-1), sizes.shape[-1])
    from_start = rank >= start[:, None]
    run = from_start & (jnp.cumsum(jnp.where(from_start, sizes, 0), axis=-1) <= left[:, None])
    return (taken | run, start + run.sum(axis=-1),
            left - jnp.sum(jnp.where(run, sizes, 0), axis=-1))

  start = (jnp.zeros(sizes.shape, bool), jnp.zeros(budget.shape, jnp.int32), budget)
  taken, _, _ = jax.lax.while_loop(lambda state: fitting(state).any(), take_a_run, start)
  return taken


def choose_positions(rng, batch: dict[str, jax.Array], config: ml_collections.ConfigDict):
  """The positions to predict in `batch` as config.objective says: tokens (mask_positions) or whole
  words (whole_word_positions, from the batch's `word_starts`). Returns (positions, weights)."""
  data, objective = config.data, config.objective
  options = dict(special_ids=(data.pad_id, data.cls_id, data.sep_id), mask_prob=objective.mask_prob,
                 num_slots=max_predictions(config))
  if objective.whole_word_masking:
    return whole_word_positions(rng, batch['input_ids'], batch['input_mask'], batch['word_starts'],
                                **options)
  return mask_positions(rng, batch['input_ids'], batch['input_mask'], **options)


def scatter(input_ids, positions, weights, values):
  """input_ids with `values` written at `positions`; unused slots (weight 0) write nothing."""
  rows = jnp.arange(input_ids.shape[0])[:, None]
  out_of_range = input_ids.shape[1]
  cols = jnp.where(weights > 0, positions, out_of_range)
  return input_ids.at[rows, cols].set(values.astype(input_ids.dtype), mode='drop')


def apply_mask(rng, input_ids, positions, weights, *, mask_id: int, mask_token_fraction: float,
               random_token_fraction: float = 0.0, vocab_size: int = 0) -> Masked:
  """Shows each chosen position as [MASK] with probability `mask_token_fraction`, as a uniformly
  random id below `vocab_size` with probability `random_token_fraction` (BERT's 80/10/10 is 0.8
  and 0.1; ELECTRA's 85/0/15 is 0.85 and 0), and as itself otherwise."""
  targets = jnp.take_along_axis(input_ids, positions, axis=1)
  if random_token_fraction:
    rng, random_rng = jax.random.split(rng)
  draw = jax.random.uniform(rng, positions.shape)
  shown = jnp.where(draw < mask_token_fraction, mask_id, targets)
  if random_token_fraction:
    random_ids = jax.random.randint(random_rng, positions.shape, 0, vocab_size, targets.dtype)
    shown = jnp.where((draw >= mask_token_fraction)
                      & (draw < mask_token_fraction + random_token_fraction), random_ids, shown)
  masked = scatter(input_ids, positions, weights, shown)
  return Masked(masked, positions, targets, weights)


def sample_replacements(rng, logits, targets, *, temperature: float, disallow_correct: bool):
  """One token per prediction slot drawn from softmax(logits / temperature), in float32 and with no
  gradient. Tokens whose logit is -inf (padding ids) are never drawn."""
  logits = jax.lax.stop_gradient(logits).astype(jnp.float32) / temperature
  if disallow_correct:
    logits = jnp.where(jax.nn.one_hot(targets, logits.shape[-1], dtype=bool), -jnp.inf, logits)
  return sample_categorical(rng, logits)


def sample_categorical(rng, logits, block: int = 128):
  """Exact categorical sampling by inverting the CDF with one uniform per row, in two levels: the
  block of `block` ids, then the id inside it. Gumbel-max would draw one random number per
  vocabulary entry, which on CPU costs more than the generator's head (and a full cumulative sum
  over the vocabulary is slow there too).

  Every comparison is against a threshold strictly below the running total, so an id of zero
  probability (its cumulative sum equal to its predecessor's) is never chosen.
  """
  vocab = logits.shape[-1]
  probs = jnp.exp(logits - jnp.max(logits, axis=-1, keepdims=True))  # Unnormalised.
  probs = jnp.pad(probs, [(0, 0)] * (probs.ndim - 1) + [(0, -vocab % block)])
  blocks = probs.reshape(*probs.shape[:-1], -1, block)

  def pick(cumulative, fraction):
    """The first index whose cumulative sum exceeds fraction * total, and where in that index's own
    mass the threshold fell, as a fraction of it."""
    total = cumulative[..., -1:]
    threshold = jnp.minimum(fraction[..., None] * total, jnp.nextafter(total, 0))
    index = jnp.sum(cumulative <= threshold, axis=-1, keepdims=True)
    upto = jnp.take_along_axis(cumulative, index, axis=-1)
    before = jnp.where(index > 0, jnp.take_along_axis(cumulative, jnp.maximum(index - 1, 0), axis=-1),
                       0)
    return index[..., 0], jnp.clip((threshold - before) / (upto - before), 0, 1)[..., 0]

  block_index, within = pick(jnp.cumsum(blocks.sum(axis=-1), axis=-1),
                             jax.random.uniform(rng, blocks.shape[:-2]))
  chosen = jnp.take_along_axis(blocks, block_index[..., None, None], axis=-2)[..., 0, :]
  index, _ = pick(jnp.cumsum(chosen, axis=-1), within)
  return block_index * block + index


def corrupt(input_ids, positions, weights, sampled):
  """The discriminator's input and labels. A sample equal to the original is labelled original."""
  corrupted = scatter(input_ids, positions, weights, sampled)
  return corrupted, (corrupted != input_ids).astype(jnp.float32)


def _mean(values, weights):
  return jnp.sum(values * weights) / jnp.maximum(jnp.sum(weights), 1.0)


def mlm_loss(logits, targets, weights):
  """Cross-entropy averaged over the real prediction slots of the batch."""
  return _mean(optax.softmax_cross_entropy_with_integer_labels(logits, targets), weights)


def disc_loss(logits, labels, input_mask):
  """Sigmoid cross-entropy averaged over all non-padding positions of the batch."""
  return _mean(optax.sigmoid_binary_cross_entropy(logits, labels), input_mask)


def auc(scores, labels, weights):
  """Exact area under the ROC curve of `scores` for binary `labels` over the entries with weight 1:
  P(score of a positive > score of a negative), ties counted half. 0.5 when either class is absent.

  Each positive is placed among the sorted negative scores, so the cost is a sort, not pairs.
  """
  scores, labels, weights = (jnp.ravel(jnp.asarray(x)) for x in (scores, labels, weights))
  positive = (labels > 0) & (weights > 0)
  negative = (labels <= 0) & (weights > 0)
  negatives = jnp.sort(jnp.where(negative, scores.astype(jnp.float32), jnp.inf))
  below = jnp.searchsorted(negatives, scores, side='left')
  not_above = jnp.searchsorted(negatives, scores, side='right')
  wins = jnp.sum(jnp.where(positive, below + 0.5 * (not_above - below), 0.0))
  pairs = jnp.sum(positive, dtype=jnp.float32) * jnp.sum(negative, dtype=jnp.float32)
  return jnp.where(pairs > 0, wins / jnp.maximum(pairs, 1.0), 0.5)


def spread(hidden, input_mask):
  """How much the representations differ between tokens, in [0, 1]: sqrt(the variance across real
  tokens, summed over features / the mean squared norm). 0 when every token has the same vector;
  a healthy post-LN encoder sits well above 0.5. A discriminator that has collapsed to "everything
  is original" drives it towards 0, and fine-tuning then has nothing to build on."""
  hidden = hidden.astype(jnp.float32)
  mask = input_mask.astype(jnp.float32)[..., None]
  count = jnp.maximum(jnp.sum(mask), 1.0)
  mean = jnp.sum(hidden * mask, axis=(0, 1)) / count
  total = jnp.sum(jnp.square(hidden) * mask) / count
  return jnp.sqrt(jnp.maximum(total - jnp.sum(jnp.square(mean)), 0.0) / jnp.maximum(total, 1e-12))


def disc_metrics(logits, labels, input_mask) -> dict[str, jax.Array]:
  """Thresholded metrics at logit 0, and the AUC, which shows learning before any logit crosses 0
  (early on, "everything is original" is the best threshold-0 answer)."""
  mask = input_mask.astype(jnp.float32)
  predicted = (logits > 0).astype(jnp.float32)
  true_positive = jnp.sum(predicted * labels * mask)
  replaced = _mean(labels, mask)
  return {
      'disc_accuracy': _mean((predicted == labels).astype(jnp.float32), mask),
      'disc_accuracy_replaced': _mean(predicted, labels * mask),
      'disc_accuracy_original': _mean(1 - predicted, (1 - labels) * mask),
      'disc_precision': true_positive / jnp.maximum(jnp.sum(predicted * mask), 1.0),
      'disc_recall': true_positive / jnp.maximum(jnp.sum(labels * mask), 1.0),
      'disc_auc': auc(logits, labels, mask),
      'replaced_fraction': replaced,
      'disc_base_rate_entropy': base_rate_entropy(replaced),
  }


def base_rate_entropy(replaced_fraction):
  """H(p) = -p ln p - (1 - p) ln(1 - p) in nats, p the replaced fraction: the loss of a discriminator
  that answers p for every token, as one that reads nothing does at best. disc_loss is its yardstick."""
  p = replaced_fraction
  return -(jax.scipy.special.xlogy(p, p) + jax.scipy.special.xlogy(1 - p, 1 - p))


class Outputs(NamedTuple):
  """One batch through the objective: the loss, its scalar metrics, and the discriminator's
  per-token scores (evaluation takes the exact AUC over all of its batches)."""
  loss: jax.Array
  metrics: dict[str, jax.Array]
  disc_logits: jax.Array  # [batch, length]
  labels: jax.Array  # [batch, length] 1 = replaced.
  input_mask: jax.Array  # [batch, length]


def _mask(rng, input_ids, positions, weights, config) -> Masked:
  mask_token_fraction, random_token_fraction = masking_fractions(config.objective)
  return apply_mask(rng, input_ids, positions, weights, mask_id=config.data.mask_id,
                    mask_token_fraction=mask_token_fraction,
                    random_token_fraction=random_token_fraction, vocab_size=config.model.vocab_size)


def rtd_outputs(model, batch: dict[str, jax.Array], rng, config: ml_collections.ConfigDict, *,
                deterministic: bool) -> Outputs:
  """The ELECTRA loss of one batch and its metrics. `rng` drives masking, sampling and dropout."""
  objective = config.objective
  mask_rng, show_rng, sample_rng, dropout_rng = jax.random.split(rng, 4)
  rngs = None if deterministic else nnx.Rngs(dropout=dropout_rng)
  input_ids, segment_ids, input_mask = batch['input_ids'], batch['segment_ids'], batch['input_mask']

  positions, weights = choose_positions(mask_rng, batch, config)
  masked = _mask(show_rng, input_ids, positions, weights, config)

  gen_logits = model.generator_logits(masked.input_ids, segment_ids, input_mask, positions,
                                      deterministic=deterministic, rngs=rngs)
  gen_loss = mlm_loss(gen_logits, masked.targets, weights)
  sampled = sample_replacements(sample_rng, gen_logits, masked.targets,
                                temperature=objective.temperature,
                                disallow_correct=objective.disallow_correct)
  corrupted, labels = corrupt(input_ids, positions, weights, sampled)

  disc_logits, hidden = model.discriminate(corrupted, segment_ids, input_mask,
                                           deterministic=deterministic, rngs=rngs)
  d_loss = disc_loss(disc_logits, labels, input_mask)
  loss = objective.gen_weight * gen_loss + objective.disc_weight * d_loss

  gen_correct = (jnp.argmax(gen_logits, axis=-1) == masked.targets).astype(jnp.float32)
  metrics = {'loss': loss, 'gen_loss': gen_loss, 'gen_accuracy': _mean(gen_correct, weights),
             # The original's sampled_masked_lm_accuracy: how often a "replacement" is the original.
             'sampled_accuracy': _mean((sampled == masked.targets).astype(jnp.float32), weights),
             'disc_loss': d_loss, **disc_metrics(disc_logits, labels, input_mask),
             'disc_spread': spread(hidden, input_mask)}
  return Outputs(loss, metrics, disc_logits, labels, input_mask)


def rtd_loss(model, batch: dict[str, jax.Array], rng, config: ml_collections.ConfigDict, *,
             deterministic: bool):
  """(loss, metrics) of rtd_outputs: what the train step differentiates."""
  outputs = rtd_outputs(model, batch, rng, config, deterministic=deterministic)
  return outputs.loss, outputs.metrics


def mlm_objective_loss(model, batch: dict[str, jax.Array], rng, config: ml_collections.ConfigDict,
                       *, deterministic: bool):
  """The BERT baseline (config.objective.kind='mlm') with the same positions: (loss, metrics) of a
  pretrainer.MaskedLM predicting the chosen positions; the discriminator's terms have no counterpart."""
  mask_rng, show_rng, dropout_rng = jax.random.split(rng, 3)
  rngs = None if deterministic else nnx.Rngs(dropout=dropout_rng)
  input_ids, input_mask = batch['input_ids'], batch['input_mask']
  positions, weights = choose_positions(mask_rng, batch, config)
  masked = _mask(show_rng, input_ids, positions, weights, config)
  logits = model.mlm_logits(masked.input_ids, batch['segment_ids'], input_mask, positions,
                            deterministic=deterministic, rngs=rngs)
  loss = mlm_loss(logits, masked.targets, weights)
  correct = (jnp.argmax(logits, axis=-1) == masked.targets).astype(jnp.float32)
  return loss, {'loss': loss, 'mlm_accuracy': _mean(correct, weights)}


# Each objective's losses -> (the record field of its yardstick, the console's label for it): what a
# model that guesses without reading the context scores (docs/training.md). The generator's, and the
# MLM baseline's `loss`, is the corpus's unigram entropy (data.Data.unigram_entropy); the
# discriminator's is the base-rate entropy of its batches (base_rate_entropy).
YARDSTICKS = {
    'rtd': {'gen_loss': ('unigram_entropy', 'unigram'),
            'disc_loss': ('disc_base_rate_entropy', 'base rate')},
    'mlm': {'loss': ('unigram_entropy', 'unigram')},
}


def summary(kind: str, first: dict[str, float], last: dict[str, float]) -> str:
  """In words, whether each model of objective `kind` learned: where its loss went from a run's
  `first` record to its `last` (the last evaluation's, if any), and where it ended against its
  yardstick (YARDSTICKS)."""
  gen = 'gen_loss' if kind == 'rtd' else 'loss'
  where = f"step {last['step']}" + (' (eval)' if last['split'] == 'eval' else '')
  loss, unigram = last[gen], last['unigram_entropy']
  parts = [f"{'generator' if kind == 'rtd' else 'masked LM'} loss {first[gen]:.4g} at step "
           f"{first['step']} -> {loss:.4g} at {where}, " + _against(
               loss, unigram, f'{abs(unigram - loss):.2f} nats',
               f"the corpus's unigram entropy {unigram:.4g}", 'guessing pieces by their frequency')]
  if kind == 'mlm':
    return '; '.join(parts + [f"mlm_accuracy {last['mlm_accuracy']:.3f}"])
  loss, base = last['disc_loss'], last['disc_base_rate_entropy']
  parts.append(f'discriminator loss {loss:.4f}, ' + _against(
      loss, base, f'{100 * abs(base - loss) / base:.1f}%',
      f"the base-rate entropy {base:.4f} of {100 * last['replaced_fraction']:.1f}% replaced",
      'guessing the replaced fraction'))
  return '; '.join(parts + [f"disc_auc {last['disc_auc']:.3f}"])


def _against(loss: float, yardstick: float, gap: str, named: str, guessing: str) -> str:
  if loss < yardstick:
    return f'{gap} under {named}: it learned'
  return f'{gap} over {named}: no better than {guessing}'


# Below these, after warmup, the discriminator has stopped learning. Collapsed runs measured spreads
# of 0.23-0.30, learning ones 0.44-0.90 (docs/quality.md). The AUC on the generator's own samples
# falls as the generator improves (0.55 in runs that fine-tune well), so its bar is near chance.
MIN_HEALTHY_AUC = 0.53
MIN_HEALTHY_SPREAD = 0.3


def health_warning(metrics: dict[str, float]) -> str | None:
  """One line naming what looks broken in evaluation `metrics` and the knobs to turn, or None."""
  symptoms = []
  if metrics.get('disc_auc', 1.0) < MIN_HEALTHY_AUC:
    symptoms.append(f'disc_auc {metrics["disc_auc"]:.3f} is near 0.5 (the discriminator cannot tell '
                    "the generator's replacements from original tokens)")
  if metrics.get('disc_spread', 1.0) < MIN_HEALTHY_SPREAD:
    symptoms.append(f'disc_spread {metrics["disc_spread"]:.3f} (its last layer gives every token '
                    'nearly the same vector)')
  if not symptoms:
    return None
  return ('RTD health: ' + '; '.join(symptoms) + '. The discriminator has stopped learning: lower '
          'config.train.learning_rate, raise config.train.warmup_steps, or make the generator '
          'smaller (config.model.generator_fraction; ModernBERT: generator_num_layers)')
