"""Replaced token detection (Clark et al., ICLR 2020, section 2) as pure functions.

One step, in the paper's order:
  mask_positions   choose ~15% of the real tokens, without replacement        (section 2, masking)
  apply_mask       85% of them become [MASK], 15% keep their token
  generator        logits at the chosen positions only -> mlm_loss            (L_MLM)
  sample_replacements  sample from the generator's softmax, no gradient
  corrupt          scatter the samples in; label = corrupted != original
  discriminator    one logit per position -> disc_loss over all real tokens   (L_Disc)
  loss = gen_weight * L_MLM + disc_weight * L_Disc                           (equation 1, lambda = 50)
`rtd_loss` composes them; everything else here is a plain array function.
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


def max_predictions(config: ml_collections.ConfigDict) -> int:
  """Prediction slots per sequence: int((mask_prob + 0.005) * length), the original's formula."""
  objective = config.objective
  return objective.max_predictions or int((objective.mask_prob + 0.005) * config.data.max_seq_length)


def mask_positions(rng, input_ids, input_mask, *, special_ids, mask_prob: float, num_slots: int):
  """Chooses max(1, min(num_slots, round(real_tokens * mask_prob))) candidate positions per sequence.

  Candidates are real tokens other than the special ones. Positions are distinct: the top-k of i.i.d.
  noise over the candidates is a uniform draw without replacement (the original drew with replacement,
  so duplicates were scattered twice). Returns (positions [B, P], weights [B, P]).
  """
  candidates = input_mask.astype(bool) & ~jnp.isin(input_ids, jnp.asarray(special_ids))
  real_tokens = input_mask.sum(axis=-1)
  count = jnp.clip(jnp.round(real_tokens * mask_prob), 1, num_slots).astype(jnp.int32)
  count = jnp.minimum(count, candidates.sum(axis=-1))
  noise = jnp.where(candidates, jax.random.uniform(rng, input_ids.shape), -1.0)
  _, positions = jax.lax.top_k(noise, num_slots)
  weights = jnp.arange(num_slots)[None, :] < count[:, None]
  return jnp.where(weights, positions, 0).astype(jnp.int32), weights.astype(jnp.float32)


def scatter(input_ids, positions, weights, values):
  """input_ids with `values` written at `positions`; unused slots (weight 0) write nothing."""
  rows = jnp.arange(input_ids.shape[0])[:, None]
  out_of_range = input_ids.shape[1]
  cols = jnp.where(weights > 0, positions, out_of_range)
  return input_ids.at[rows, cols].set(values.astype(input_ids.dtype), mode='drop')


def apply_mask(rng, input_ids, positions, weights, *, mask_id: int, mask_token_fraction: float) -> Masked:
  """Replaces each chosen position by [MASK] with probability `mask_token_fraction`, else keeps it."""
  targets = jnp.take_along_axis(input_ids, positions, axis=1)
  show_mask = jax.random.uniform(rng, positions.shape) < mask_token_fraction
  masked = scatter(input_ids, positions, weights, jnp.where(show_mask, mask_id, targets))
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


def disc_metrics(logits, labels, input_mask) -> dict[str, jax.Array]:
  mask = input_mask.astype(jnp.float32)
  predicted = (logits > 0).astype(jnp.float32)
  true_positive = jnp.sum(predicted * labels * mask)
  return {
      'disc_accuracy': _mean((predicted == labels).astype(jnp.float32), mask),
      'disc_precision': true_positive / jnp.maximum(jnp.sum(predicted * mask), 1.0),
      'disc_recall': true_positive / jnp.maximum(jnp.sum(labels * mask), 1.0),
      'replaced_fraction': _mean(labels, mask),
  }


def rtd_loss(model, batch: dict[str, jax.Array], rng, config: ml_collections.ConfigDict, *,
             deterministic: bool):
  """The ELECTRA loss of one batch and its metrics. `rng` drives masking, sampling and dropout."""
  objective, data = config.objective, config.data
  mask_rng, show_rng, sample_rng, dropout_rng = jax.random.split(rng, 4)
  rngs = None if deterministic else nnx.Rngs(dropout=dropout_rng)
  input_ids, segment_ids, input_mask = batch['input_ids'], batch['segment_ids'], batch['input_mask']

  positions, weights = mask_positions(
      mask_rng, input_ids, input_mask, special_ids=(data.pad_id, data.cls_id, data.sep_id),
      mask_prob=objective.mask_prob, num_slots=max_predictions(config))
  masked = apply_mask(show_rng, input_ids, positions, weights, mask_id=data.mask_id,
                      mask_token_fraction=objective.mask_token_fraction)

  gen_logits = model.generator_logits(masked.input_ids, segment_ids, input_mask, positions,
                                      deterministic=deterministic, rngs=rngs)
  gen_loss = mlm_loss(gen_logits, masked.targets, weights)
  sampled = sample_replacements(sample_rng, gen_logits, masked.targets,
                                temperature=objective.temperature,
                                disallow_correct=objective.disallow_correct)
  corrupted, labels = corrupt(input_ids, positions, weights, sampled)

  disc_logits = model.discriminator_logits(corrupted, segment_ids, input_mask,
                                           deterministic=deterministic, rngs=rngs)
  d_loss = disc_loss(disc_logits, labels, input_mask)
  loss = objective.gen_weight * gen_loss + objective.disc_weight * d_loss

  gen_correct = (jnp.argmax(gen_logits, axis=-1) == masked.targets).astype(jnp.float32)
  metrics = {'loss': loss, 'gen_loss': gen_loss, 'gen_accuracy': _mean(gen_correct, weights),
             'disc_loss': d_loss, **disc_metrics(disc_logits, labels, input_mask)}
  return loss, metrics
