"""Pre-training, top to bottom: resolve the config (HF folder, checks, tokenizer), hold the workdir,
check that the config fits the run in it, build, data, restore or init, then loop.run_steps with an
evaluation of the fixed eval batches, and a closing summary line (rtd.summary)."""

import os
import time

from absl import logging
import jax
import ml_collections
import numpy as np

from electra_jax import (checkpoint, data, flops, lease, loop, model, optimizer, rtd, sharding, step,
                         validation)
from electra_jax import workdir as workdir_lib
from electra_jax.hf import load as hf_load
from electra_jax.metric_writer import MetricWriter, TrainLog


def _log_setup(config, mesh, training: step.Training) -> None:
  counts = {name: sum(int(np.prod(p.shape)) for p in jax.tree.leaves(tree))
            for name, tree in training.abstract_state.params.items() if tree}
  logging.info('devices: %d x %s on %d process(es); mesh %s', jax.device_count(),
               jax.devices()[0].device_kind, jax.process_count(), dict(mesh.shape))
  logging.info('parameters: %s', ', '.join(f'{name} {n / 1e6:.2f}M' for name, n in counts.items()))
  total, per_device, replicated = sharding.replication(training.abstract_state.params)
  logging.info('parameter bytes: %.1f MB in all, %.1f MB per device; %.1f%% of them replicated on '
               'every device', total / 1e6, per_device / 1e6, 100 * replicated)
  logging.info('global batch %d x %d tokens, %d steps; %.3g model TFLOPs per step; %s',
               config.train.batch_size, config.data.max_seq_length, config.train.steps,
               flops.step_flops(config) / 1e12, model.compute_options(config.train))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       wait_for_lock: bool = False) -> step.TrainState:
  """Trains until config.train.steps, resuming from the newest checkpoint in workdir if there is one.
  `wait_for_lock` waits for the lease of a run that holds the workdir but no longer renews it.

  Raises UserError when another run holds the workdir or this config does not fit the run in it
  (nothing in it is written then), lease.LockLost when another run took the workdir over (nothing
  more was written), and preemption.Stopped when SIGTERM/SIGINT stopped it early (a checkpoint was
  written)."""
  config, text = resolve(hf_load.continued_config(config, workdir))
  workdir_lib.make(workdir)
  with lease.hold(workdir, wait=wait_for_lock) as held:
    return _train(config, text, workdir, held)


def resolve(config: ml_collections.ConfigDict) -> tuple[ml_collections.ConfigDict, data.Text | None]:
  """The run's final config, checked once before anything is built or written, and its corpus and
  tokenizer: the model sizes and tokenizer of config.init_from_hf, validation.py's checks, the masking
  fractions of the objective's kind (rtd.with_masking_fractions), then the corpus and its tokenizer
  (given, or trained on the corpus once and cached), whose special ids the config takes (its own
  checks: every special piece present, its pieces within model.vocab_size)."""
  if config.init_from_hf:
    config = hf_load.pretraining_config(config)
  validation.validate(config, jax.device_count(), jax.process_count())
  return data.resolve(rtd.with_masking_fractions(config))


def _train(config: ml_collections.ConfigDict, text: data.Text | None, workdir: str,
           held: lease.Hold) -> step.TrainState:
  checkpoint_dir = os.path.join(workdir, 'checkpoints')
  if checkpoint.has_checkpoint(checkpoint_dir):  # Without one there is nothing to resume.
    workdir_lib.check_fits(workdir, workdir_lib.CONFIG_FILE, config,
                           workdir_lib.PRETRAINING_RESUMABLE)
    workdir_lib.check_tokenizer(workdir, text and text.tokenizer)
  mesh = sharding.make_mesh(config.mesh)
  training = step.build(step.pretraining_objective(config), *optimizer.create(config.train), mesh,
                        config.mesh.rules)
  placement = data.Placement(training.batch_sharding, config.train.batch_size)
  inputs = data.prepare(config, placement.rows, text)
  _log_setup(config, mesh, training)
  checkpoints = checkpoint.Checkpoints(checkpoint_dir, every=config.train.checkpoint_every,
                                       keep=config.train.keep_checkpoints)
  init_rng, step_rng, eval_rng = jax.random.split(jax.random.key(config.train.seed), 3)

  restored = checkpoints.restore_latest(training.abstract_state)  # Checks the arrays' shapes.
  loop_state = None
  if restored is None:
    state = training.init(init_rng)
    if config.init_from_hf:
      state = state.replace(params=hf_load.pretrainer_params(config, state.params))
  else:
    state, loop_state = restored
    logging.info('resumed from %s at step %d', checkpoints.directory, int(state.step))
  workdir_lib.record(workdir, config, inputs.tokenizer)  # For fine-tuning and export.

  total = config.train.steps
  first = int(state.step)
  writer = MetricWriter(workdir, first_step=first, total_steps=total,
                        console=('loss', 'gen_loss', 'gen_accuracy', 'disc_loss', 'disc_auc',
                                 'mlm_accuracy'), may_write=held.writable,
                        constants={'unigram_entropy': inputs.unigram_entropy},
                        yardsticks=rtd.YARDSTICKS[config.objective.kind])
  log = TrainLog(writer, first_step=first, total_steps=total, every=config.train.log_every,
                 tokens_per_step=config.train.batch_size * config.data.max_seq_length,
                 flops_per_step=flops.step_flops(config), peak_flops=flops.total_peak_flops())

  def evaluate(done: int, params) -> None:
    """Metrics on the fixed eval batches, with the same masks and samples every time: the mean over
    batches, the discriminator's AUC exact over all their tokens, and a health check."""
    started = time.perf_counter()
    outputs = list(loop.pipelined(
        lambda indexed: training.eval_step(params, placement.place(indexed[1]),
                                           jax.random.fold_in(eval_rng, indexed[0])),
        enumerate(inputs.eval)))
    metrics = {name: float(np.mean([o['metrics'][name] for o in outputs]))
               for name in outputs[0]['metrics']}
    if 'disc_logits' in outputs[0]:
      metrics['disc_auc'] = float(rtd.auc(*(np.concatenate([o[name] for o in outputs])
                                            for name in ('disc_logits', 'labels', 'input_mask'))))
    metrics['flops'] = log.flops(done)
    warning = (rtd.health_warning(metrics) if done >= config.train.warmup_steps else None)
    writer.write(done, metrics, split='eval', warning=warning)
    log.exclude(time.perf_counter() - started)  # Keep tokens/s a training figure.

  try:
    state = loop.run_steps(training, state, inputs.train, placement, step_rng, total=total,
                           log=log, checkpoints=checkpoints, nonfinite=config.train.nonfinite,
                           loop_state=loop_state, evaluate=evaluate,
                           eval_every=config.train.eval_every if inputs.eval else 0,
                           profiler=loop.StepProfiler(config.train.profile_steps,
                                                      os.path.join(workdir, 'tensorboard')),
                           held=held)
  finally:
    checkpoints.close()
    writer.close()
  logging.info('done: step %d; checkpoints in %s', int(state.step), checkpoints.directory)
  if jax.process_index() == 0 and int(state.step) > first:  # Not for a rerun of a finished run.
    logging.info('summary: %s', rtd.summary(config.objective.kind, *writer.first_and_last()))
  return state
