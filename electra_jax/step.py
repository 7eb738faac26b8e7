"""The sharded, jitted pieces of training: state creation and the pure RTD train step.

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

from electra_jax import model, optimizer, rtd, sharding


@struct.dataclass
class TrainState:
  step: jax.Array  # Number of updates applied so far.
  params: dict[str, Any]
  opt_state: optax.OptState


class Training(NamedTuple):
  """Everything the loop needs, built once per (config, mesh)."""
  init: Callable[[jax.Array], TrainState]  # rng -> state, created directly in its sharded layout.
  train_step: Callable[..., tuple[TrainState, dict]]  # (state, batch, rng) -> (state, metrics).
  eval_step: Callable[..., dict]  # (params, batch, rng) -> metrics, without dropout.
  abstract_state: TrainState  # Shapes, dtypes and shardings of the state (for restoring checkpoints).
  batch_sharding: jax.sharding.NamedSharding


def _new_model(config, rng) -> model.ElectraPretrainer:
  return model.ElectraPretrainer(config.model, nnx.Rngs(params=rng))


def make_train_step(graphdef, tx, schedule, config: ml_collections.ConfigDict):
  """Returns the pure function train_step(state, batch, rng) -> (state, metrics).

  `rng` is the run's base key; the step's key is fold_in(rng, state.step), so a resumed run draws
  exactly the masks, samples and dropout that an uninterrupted run would.
  """

  def train_step(state: TrainState, batch: dict[str, jax.Array], rng: jax.Array):
    step_rng = jax.random.fold_in(rng, state.step)

    def loss_fn(params):
      return rtd.rtd_loss(nnx.merge(graphdef, params), batch, step_rng, config, deterministic=False)

    (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {**metrics, 'grad_norm': optax.tree.norm(grads),
               'learning_rate': jnp.asarray(schedule(state.step), jnp.float32)}
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics

  return train_step


def make_eval_step(graphdef, config: ml_collections.ConfigDict):
  def eval_step(params, batch: dict[str, jax.Array], rng: jax.Array):
    _, metrics = rtd.rtd_loss(nnx.merge(graphdef, params), batch, rng, config, deterministic=True)
    return metrics

  return eval_step


def build(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh) -> Training:
  tx, schedule = optimizer.create(config.train)

  def init(rng) -> TrainState:
    params = nnx.to_pure_dict(nnx.state(_new_model(config, rng), nnx.Param))
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))

  abstract_model = nnx.eval_shape(lambda: _new_model(config, jax.random.key(0)))
  graphdef, abstract_variables = nnx.split(abstract_model, nnx.Param)
  param_specs = sharding.param_partition_specs(abstract_variables, config.mesh.rules)
  abstract = jax.eval_shape(init, jax.random.key(0))
  sharding.check_divisible(abstract.params, param_specs, mesh)

  replicated = sharding.replicated(mesh)
  param_shardings = sharding.named(mesh, param_specs)
  state_shardings = TrainState(
      step=replicated,
      params=param_shardings,
      opt_state=optax.tree_map_params(tx, lambda _, s: s, abstract.opt_state, param_shardings,
                                      transform_non_params=lambda _: replicated),
  )
  batch_sharding = sharding.batch_sharding(mesh, config.mesh.rules)
  batch_shardings = {key: batch_sharding for key in ('input_ids', 'segment_ids', 'input_mask')}

  train_step = jax.jit(
      make_train_step(graphdef, tx, schedule, config),
      in_shardings=(state_shardings, batch_shardings, replicated),
      out_shardings=(state_shardings, replicated),
      donate_argnums=0)
  eval_step = jax.jit(
      make_eval_step(graphdef, config),
      in_shardings=(param_shardings, batch_shardings, replicated), out_shardings=replicated)
  abstract_state = jax.tree.map(
      lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, state_shardings)
  return Training(
      init=jax.jit(init, in_shardings=replicated, out_shardings=state_shardings),
      train_step=train_step,
      eval_step=eval_step,
      abstract_state=abstract_state,
      batch_sharding=batch_sharding)
