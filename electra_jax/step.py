"""The sharded, jitted pieces of training: state creation, the pure train step and the eval step.

One machinery serves pre-training and fine-tuning: an `Objective` says which model to build and what
loss to take of it; `build` places parameters and optimizer state on the mesh and compiles the steps.
Parameters live in the train state as a plain nested dict (the pure form of the NNX model's state); the
step rebuilds the module with `nnx.merge(graphdef, params)`, so it is an ordinary pure function of arrays
that jit can shard, donate and compile once.
"""

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx, struct
import ml_collections
import optax

from electra_jax import model, pretrainer, rtd, sharding


@struct.dataclass
class TrainState:
  step: jax.Array  # Number of updates applied so far.
  params: dict[str, Any]
  opt_state: optax.OptState


class Objective(NamedTuple):
  """A model and what to compute with it."""
  new_model: Callable[[jax.Array], nnx.Module]  # rng -> a freshly initialised module.
  loss: Callable[..., tuple[jax.Array, dict]]  # (module, batch, rng, deterministic) -> (loss, metrics).
  evaluate: Callable[..., Any]  # (module, batch, rng) -> a pytree of arrays, without dropout.


def rtd_objective(config: ml_collections.ConfigDict) -> Objective:
  """ELECTRA pre-training: generator + discriminator under the replaced-token-detection loss."""

  def loss(module, batch, rng, deterministic):
    return rtd.rtd_loss(module, batch, rng, config, deterministic=deterministic)

  def evaluate(module, batch, rng):
    outputs = rtd.rtd_outputs(module, batch, rng, config, deterministic=True)
    return {'metrics': outputs.metrics, 'disc_logits': outputs.disc_logits,
            'labels': outputs.labels, 'input_mask': outputs.input_mask}

  return Objective(new_model=_pretraining_model(config), loss=loss, evaluate=evaluate)


def mlm_objective(config: ml_collections.ConfigDict) -> Objective:
  """The BERT baseline: a masked LM of the discriminator's sizes (config.objective.kind='mlm')."""

  def loss(module, batch, rng, deterministic):
    return rtd.mlm_objective_loss(module, batch, rng, config, deterministic=deterministic)

  return Objective(new_model=_pretraining_model(config), loss=loss,
                   evaluate=lambda module, batch, rng: {'metrics': loss(module, batch, rng, True)[1]})


def _pretraining_model(config: ml_collections.ConfigDict) -> Callable[[jax.Array], nnx.Module]:
  # Nearly every chosen position is replaced at first: the generator's samples rarely hit.
  return lambda rng: pretrainer.pretraining_model(config.model, config.objective.kind,
                                             nnx.Rngs(params=rng),
                                             model.compute_options(config.train),
                                             replaced_fraction=config.objective.mask_prob)


def pretraining_objective(config: ml_collections.ConfigDict) -> Objective:
  """The objective config.objective.kind names."""
  return mlm_objective(config) if config.objective.kind == 'mlm' else rtd_objective(config)


class Training(NamedTuple):
  """Everything the loop needs, built once per (config, mesh)."""
  init: Callable[[jax.Array], TrainState]  # rng -> state, created directly in its sharded layout.
  train_step: Callable[..., tuple[TrainState, dict]]  # (state, batch, rng) -> (state, metrics).
  eval_step: Callable[..., Any]  # (params, batch, rng) -> Objective.evaluate's output, replicated.
  abstract_state: TrainState  # Shapes, dtypes and shardings of the state (for restoring checkpoints).
  batch_sharding: jax.sharding.NamedSharding  # For every array of a batch: rows split over data axes.


def make_train_step(graphdef, tx, schedule, loss: Callable):
  """Returns the pure function train_step(state, batch, rng) -> (state, metrics).

  `rng` is the run's base key; the step's key is fold_in(rng, state.step), so a resumed run draws
  exactly the masks, samples and dropout that an uninterrupted run would.
  """

  def train_step(state: TrainState, batch: dict[str, jax.Array], rng: jax.Array):
    step_rng = jax.random.fold_in(rng, state.step)

    def loss_fn(params):
      return loss(nnx.merge(graphdef, params), batch, step_rng, False)

    (loss_value, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    grad_norm = optax.tree.norm(grads)
    # A non-finite loss or gradient would poison every later step: keep the old parameters and
    # optimizer state; the loop stops or counts the skip (config.train.nonfinite).
    finite = jnp.isfinite(loss_value) & jnp.isfinite(grad_norm)
    params, opt_state = jax.tree.map(lambda new, old: jnp.where(finite, new, old),
                                     (params, opt_state), (state.params, state.opt_state))
    metrics = {**metrics, 'grad_norm': grad_norm,
               'learning_rate': jnp.asarray(schedule(state.step), jnp.float32),
               'update_skipped': 1 - finite.astype(jnp.float32)}
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics

  return train_step


def build(objective: Objective, tx: optax.GradientTransformation, schedule: optax.Schedule,
          mesh: jax.sharding.Mesh, rules) -> Training:
  """Compiles `objective` for `mesh`; `rules` (config.mesh.rules) map logical axes to mesh axes."""

  def init(rng) -> TrainState:
    params = nnx.to_pure_dict(nnx.state(objective.new_model(rng), nnx.Param))
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))

  abstract_model = nnx.eval_shape(lambda: objective.new_model(jax.random.key(0)))
  graphdef, abstract_variables = nnx.split(abstract_model, nnx.Param)
  param_specs = sharding.param_partition_specs(abstract_variables, rules)
  abstract = jax.eval_shape(init, jax.random.key(0))
  sharding.check_divisible(abstract.params, param_specs, mesh)

  replicated = sharding.replicated(mesh)
  param_shardings = sharding.named(mesh, param_specs)
  state_shardings = TrainState(
      step=replicated,
      params=param_shardings,
      # Parameters that a partitioned optimizer (optax.multi_transform) leaves out of one of its
      # parts hold a MaskedNode (no array) in that part's state.
      opt_state=optax.tree_map_params(
          tx, lambda leaf, s: leaf if isinstance(leaf, optax.MaskedNode) else s, abstract.opt_state,
          param_shardings, transform_non_params=lambda _: replicated,
          is_leaf=lambda x: isinstance(x, optax.MaskedNode)),
  )
  batch_sharding = sharding.batch_sharding(mesh, rules)

  def eval_step(params, batch, rng):
    return objective.evaluate(nnx.merge(graphdef, params), batch, rng)

  def with_layout(fn):
    """fn, traced with the model's activation constraints on `mesh` (sharding.constrain)."""
    def traced(*args):
      with sharding.activation_layout(mesh, rules):
        return fn(*args)
    return traced

  # A single sharding is a prefix of any batch dict: every array, whatever its keys and rank, is
  # split by rows, so one build serves every task's batch layout.
  train_step = jax.jit(
      with_layout(make_train_step(graphdef, tx, schedule, objective.loss)),
      in_shardings=(state_shardings, batch_sharding, replicated),
      out_shardings=(state_shardings, replicated),
      donate_argnums=0)
  eval_step = jax.jit(
      with_layout(eval_step), in_shardings=(param_shardings, batch_sharding, replicated),
      out_shardings=replicated)
  abstract_state = jax.tree.map(
      lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, state_shardings)
  return Training(
      init=jax.jit(init, in_shardings=replicated, out_shardings=state_shardings),
      train_step=train_step,
      eval_step=eval_step,
      abstract_state=abstract_state,
      batch_sharding=batch_sharding)
