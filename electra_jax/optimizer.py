"""AdamW with warmup + linear decay and global-norm clipping, as ELECTRA pre-trains.

`config.train.original_optimizer=True` reproduces google-research/electra's optimizer: Adam without bias
correction, and a learning rate that decays linearly from step 0 and is multiplied by the warmup ramp.
"""

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import optax

from electra_jax import model, sharding


def learning_rate_schedule(train: ml_collections.ConfigDict, peak: float | None = None
                           ) -> optax.Schedule:
  """train.learning_rate's schedule (or the same shape up to `peak`)."""
  peak, warmup, total = peak or train.learning_rate, train.warmup_steps, train.steps
  if train.original_optimizer:
    decay = optax.linear_schedule(peak, 0.0, total)
    if not warmup:
      return decay
    return lambda step: decay(step) * jnp.minimum(1.0, step / warmup)
  # A run shorter than its warmup (a smoke test of a preset) only ever sees the ramp.
  decay_steps = max(total - warmup, 1)
  return optax.join_schedules(
      [optax.linear_schedule(0.0, peak, warmup), optax.linear_schedule(peak, 0.0, decay_steps)],
      boundaries=[warmup])


def decay_mask(params):
  """Weight decay on matrices and embedding tables; never on LayerNorm parameters or biases."""
  return jax.tree_util.tree_map_with_path(
      lambda path, _: path[-1].key in ('kernel', 'embedding'), params)


class _AdamState(NamedTuple):
  mu: optax.Updates
  nu: optax.Updates


def _scale_by_adam_without_bias_correction(b1: float, b2: float, eps: float):
  """The original's AdamWeightDecayOptimizer update m / (sqrt(v) + eps); optax's Adam always debiases."""

  def init(params):
    zeros = lambda: jax.tree.map(jnp.zeros_like, params)
    return _AdamState(mu=zeros(), nu=zeros())

  def update(updates, state, params=None):
    del params
    mu = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, state.mu, updates)
    nu = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * g * g, state.nu, updates)
    updates = jax.tree.map(lambda m, v: m / (jnp.sqrt(v) + eps), mu, nu)
    return updates, _AdamState(mu=mu, nu=nu)

  return optax.GradientTransformation(init, update)


def scale_by_path(factor: Callable[[str], float]) -> optax.GradientTransformation:
  """Multiplies each parameter's update by factor(its dotted path): per-parameter learning rates that
  cost nothing at run time, since the factors are constants of the compiled step."""

  def scale(updates, params=None):
    del params
    return jax.tree_util.tree_map_with_path(
        lambda path, u: u * factor(sharding.dotted(path)), updates)

  return optax.stateless(scale)


def layerwise_decay(num_layers: int, decay: float, *, original: bool = False
                    ) -> Callable[[str], float]:
  """Learning-rate factor per parameter path of the fine-tuning model (finetune/model.py): the task
  head at the full rate, each encoder layer one factor of `decay` below the layer above it, the
  embeddings (and their projection) one below the first layer: decay^(n - i) for layer i of n,
  decay^(n + 1) for the embeddings.

  `original=True` reproduces google-research/electra, whose depths leave a gap under the head, so
  every factor has one more decay: the top layer gets decay^2, the embeddings decay^(n + 2).
  """
  top = num_layers + (2 if original else 1)

  def factor(path: str) -> float:
    if path.startswith(('embeddings.', 'electra.embeddings_project.')):
      return decay ** top
    for prefix in ('electra.encoder.layer.', 'model.layers.'):  # ELECTRA's, ModernBERT's.
      if path.startswith(prefix):
        return decay ** (top - 1 - int(path[len(prefix):].split('.')[0]))
    return 1.0  # The task head (and ModernBERT's final norm, which precedes it).

  return factor


def generator_labels(params):
  """'generator' for what only the generator's loss trains: its encoder and head, its embeddings when
  untied, and under GDES (an `embedding_delta` beside the shared block) the shared token table, which
  the discriminator reads through a stop_gradient. 'rest' for everything else, the embeddings that both
  losses train (shared tables, GDES's positions, segments and LayerNorm) and the GDES delta included."""
  # Not always a dict: optax.tree_map_params (step.build) labels a placeholder with no leaves.
  gdes = isinstance(params, dict) and 'embedding_delta' in params

  def label(path, _):
    keys = tuple(getattr(entry, 'key', None) for entry in path)
    gdes_table = gdes and keys[0] == 'embeddings' and keys[1] in model.TOKEN_TABLES
    generator_only = keys[0] in ('generator', 'generator_embeddings') or gdes_table
    return 'generator' if generator_only else 'rest'

  return jax.tree_util.tree_map_with_path(label, params)


def create(train: ml_collections.ConfigDict, lr_factor: Callable[[str], float] | None = None
           ) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """The optimizer of `train` (a config.train section); `lr_factor` scales the learning rate per
  parameter path (fine-tuning's layer-wise decay). The schedule is the unscaled rate.

  With train.generator_learning_rate, the generator's parameters (generator_labels) get an optimizer of
  their own (clipping, Adam, weight decay) at that rate."""
  schedule = learning_rate_schedule(train)
  tx = _chain(train, schedule, lr_factor)
  if train.get('generator_learning_rate'):
    generator = _chain(train, learning_rate_schedule(train, train.generator_learning_rate))
    tx = optax.multi_transform({'generator': generator, 'rest': tx}, generator_labels)
  return tx, schedule


def _chain(train, schedule, lr_factor=None) -> optax.GradientTransformation:
  scale_by_adam = (_scale_by_adam_without_bias_correction if train.original_optimizer
                   else optax.scale_by_adam)
  return optax.chain(
      optax.clip_by_global_norm(train.max_grad_norm),
      scale_by_adam(train.adam_b1, train.adam_b2, train.adam_eps),
      optax.add_decayed_weights(train.weight_decay, mask=decay_mask),
      optax.scale_by_learning_rate(schedule),
      # After weight decay, as in the original: the decay term is scaled with the rest of the update.
      *([scale_by_path(lr_factor)] if lr_factor else []),
  )
