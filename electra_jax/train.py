"""The pre-training loop, top to bottom: validate, build, restore or init, step, log, checkpoint."""

import os
import time
from typing import Any, Callable

from absl import logging
import jax
import ml_collections
import numpy as np

from electra_jax import checkpoint, data, optimizer, sharding, step, validation
from electra_jax import workdir as workdir_lib
from electra_jax.errors import UserError
from electra_jax.hf import load as hf_load
from electra_jax.metric_writer import MetricWriter, TrainLog


def _log_setup(config, mesh, training: step.Training) -> None:
  counts = {name: sum(int(np.prod(p.shape)) for p in jax.tree.leaves(tree))
            for name, tree in training.abstract_state.params.items() if tree}
  logging.info('devices: %d x %s on %d process(es); mesh %s', jax.device_count(),
               jax.devices()[0].device_kind, jax.process_count(), dict(mesh.shape))
  logging.info('parameters: %s', ', '.join(f'{name} {n / 1e6:.2f}M' for name, n in counts.items()))
  logging.info('global batch %d x %d tokens, %d steps', config.train.batch_size,
               config.data.max_seq_length, config.train.steps)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> step.TrainState:
  """Trains until config.train.steps, resuming from the newest checkpoint in workdir if there is one."""
  if config.init_from_hf:
    config = hf_load.pretraining_config(config)
  validation.validate(config, jax.device_count(), jax.process_count())
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise UserError(f'--workdir={workdir} exists and is not a directory')
  os.makedirs(workdir, exist_ok=True)

  inputs = data.prepare(config, jax.process_index(), jax.process_count())
  config = inputs.config  # Special token ids now come from the tokenizer: check them again.
  validation.validate(config, jax.device_count(), jax.process_count())
  workdir_lib.record(workdir, config, inputs.tokenizer)  # For fine-tuning and export.
  source = inputs.train
  mesh = sharding.make_mesh(config.mesh)
  training = step.build(step.rtd_objective(config), *optimizer.create(config.train), mesh,
                        config.mesh.rules)
  _log_setup(config, mesh, training)
  checkpoints = checkpoint.Checkpoints(os.path.join(workdir, 'checkpoints'),
                                       every=config.train.checkpoint_every,
                                       keep=config.train.keep_checkpoints)
  init_rng, step_rng, eval_rng = jax.random.split(jax.random.key(config.train.seed), 3)

  restored = checkpoints.restore_latest(training.abstract_state)
  if restored is None:
    state = training.init(init_rng)
    if config.init_from_hf:
      state = state.replace(params=hf_load.pretrainer_params(config, training.abstract_state.params))
  else:
    state, data_state = restored
    source.set_state(data_state)
    logging.info('resumed from %s at step %d', checkpoints.directory, int(state.step))

  total = config.train.steps
  first = int(state.step)
  writer = MetricWriter(workdir, first_step=first, total_steps=total,
                        console=('loss', 'gen_loss', 'gen_accuracy', 'disc_loss', 'disc_accuracy'))
  log = TrainLog(writer, first_step=first, total_steps=total, every=config.train.log_every,
                 tokens_per_step=config.train.batch_size * config.data.max_seq_length)

  def evaluate(done: int, params) -> None:
    """RTD metrics on the fixed eval batches, with the same masks and samples every time."""
    started = time.perf_counter()
    batch_metrics, pending_eval = [], None
    for index, local_batch in enumerate(inputs.eval):
      metrics = training.eval_step(params, data.to_global(local_batch, training.batch_sharding),
                                   jax.random.fold_in(eval_rng, index))
      if pending_eval is not None:
        batch_metrics.append(jax.device_get(pending_eval))
      pending_eval = metrics
    batch_metrics.append(jax.device_get(pending_eval))
    writer.write(done, {name: float(np.mean([m[name] for m in batch_metrics]))
                        for name in batch_metrics[0]}, split='eval')
    log.exclude(time.perf_counter() - started)  # Keep tokens/s a training figure.

  state = run_steps(training, state, source, step_rng, total=total, log=log, checkpoints=checkpoints,
                    evaluate=evaluate, eval_every=config.train.eval_every if inputs.eval else 0)
  checkpoints.close()
  writer.close()
  logging.info('done: step %d; checkpoints in %s', int(state.step), checkpoints.directory)
  return state


def run_steps(training: step.Training, state: step.TrainState, batches, rng: jax.Array, *,
              total: int, log: TrainLog, checkpoints: checkpoint.Checkpoints,
              evaluate: Callable[[int, Any], None] | None = None,
              eval_every: int = 0) -> step.TrainState:
  """Steps from state.step to `total`, checkpointing as due and always at the end; with eval_every,
  calls evaluate(step, params) every eval_every steps and after the last."""
  # Step n's metrics are read after step n+1 is dispatched: the host never waits on an idle device,
  # and at most two steps are in flight.
  pending = None
  for step_index in range(int(state.step), total):
    batch = data.to_global(next(batches), training.batch_sharding)
    state, metrics = training.train_step(state, batch, rng)
    if pending is not None:
      log.record(*pending)
    pending = (step_index + 1, metrics)
    checkpoints.save(step_index + 1, state, batches)
    if eval_every and ((step_index + 1) % eval_every == 0 or step_index + 1 == total):
      log.record(*pending)
      pending = None
      evaluate(step_index + 1, state.params)
  if pending is not None:
    log.record(*pending)
  if checkpoints.latest_step() != int(state.step):
    checkpoints.save(int(state.step), state, batches, force=True)
  return state
