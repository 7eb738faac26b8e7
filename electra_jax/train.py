"""The pre-training loop, top to bottom: validate, build, restore or init, step, log, checkpoint."""

import contextlib
import os
import time
from typing import Any, Callable

from absl import logging
import jax
import ml_collections
import numpy as np

from electra_jax import (checkpoint, data, flops, model, optimizer, preemption, rtd, sharding,
                         step, validation)
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
  total, per_device, replicated = sharding.replication(training.abstract_state.params)
  logging.info('parameter bytes: %.1f MB in all, %.1f MB per device; %.1f%% of them replicated on '
               'every device', total / 1e6, per_device / 1e6, 100 * replicated)
  logging.info('global batch %d x %d tokens, %d steps; %.3g model TFLOPs per step; %s',
               config.train.batch_size, config.data.max_seq_length, config.train.steps,
               flops.step_flops(config) / 1e12, model.compute_options(config.train))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> step.TrainState:
  """Trains until config.train.steps, resuming from the newest checkpoint in workdir if there is one.

  Raises UserError when another run holds the workdir or this config does not fit the run in it
  (nothing in it is written then), and preemption.Stopped when SIGTERM/SIGINT stopped it early (a
  checkpoint was written)."""
  if config.init_from_hf:
    config = hf_load.pretraining_config(config)
  validation.validate(config, jax.device_count(), jax.process_count())
  workdir_lib.make(workdir)
  with workdir_lib.lock(workdir):
    return _train(config, workdir)


def _train(config: ml_collections.ConfigDict, workdir: str) -> step.TrainState:
  mesh = sharding.make_mesh(config.mesh)
  placement = data.Placement(sharding.batch_sharding(mesh, config.mesh.rules),
                             config.train.batch_size)
  inputs = data.prepare(config, placement.rows)
  config = inputs.config  # Special token ids now come from the tokenizer: check them again.
  validation.validate(config, jax.device_count(), jax.process_count())
  checkpoint_dir = os.path.join(workdir, 'checkpoints')
  if checkpoint.has_checkpoint(checkpoint_dir):  # Without one there is nothing to resume.
    workdir_lib.check_fits(workdir, workdir_lib.CONFIG_FILE, config,
                           workdir_lib.PRETRAINING_RESUMABLE)
  training = step.build(step.pretraining_objective(config), *optimizer.create(config.train), mesh,
                        config.mesh.rules)
  _log_setup(config, mesh, training)
  checkpoints = checkpoint.Checkpoints(checkpoint_dir, every=config.train.checkpoint_every,
                                       keep=config.train.keep_checkpoints)
  init_rng, step_rng, eval_rng = jax.random.split(jax.random.key(config.train.seed), 3)

  restored = checkpoints.restore_latest(training.abstract_state)  # Checks the arrays' shapes.
  loop_state = None
  if restored is None:
    state = training.init(init_rng)
    if config.init_from_hf:
      state = state.replace(params=hf_load.pretrainer_params(config, training.abstract_state.params))
  else:
    state, loop_state = restored
    logging.info('resumed from %s at step %d', checkpoints.directory, int(state.step))
  workdir_lib.record(workdir, config, inputs.tokenizer)  # For fine-tuning and export.

  total = config.train.steps
  first = int(state.step)
  writer = MetricWriter(workdir, first_step=first, total_steps=total,
                        console=('loss', 'gen_loss', 'gen_accuracy', 'disc_loss', 'disc_auc',
                                 'mlm_accuracy'))
  log = TrainLog(writer, first_step=first, total_steps=total, every=config.train.log_every,
                 tokens_per_step=config.train.batch_size * config.data.max_seq_length,
                 flops_per_step=flops.step_flops(config), peak_flops=flops.total_peak_flops())

  def evaluate(done: int, params) -> None:
    """Metrics on the fixed eval batches, with the same masks and samples every time: the mean over
    batches, the discriminator's AUC exact over all their tokens, and a health check."""
    started = time.perf_counter()
    outputs, pending_eval = [], None
    for index, local_batch in enumerate(inputs.eval):
      output = training.eval_step(params, placement.place(local_batch),
                                  jax.random.fold_in(eval_rng, index))
      if pending_eval is not None:
        outputs.append(jax.device_get(pending_eval))
      pending_eval = output
    outputs.append(jax.device_get(pending_eval))
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
    state = run_steps(training, state, inputs.train, placement, step_rng, total=total, log=log,
                      checkpoints=checkpoints, nonfinite=config.train.nonfinite,
                      loop_state=loop_state, evaluate=evaluate,
                      eval_every=config.train.eval_every if inputs.eval else 0,
                      profiler=StepProfiler(config.train.profile_steps,
                                            os.path.join(workdir, 'tensorboard')))
  finally:
    checkpoints.close()
    writer.close()
  logging.info('done: step %d; checkpoints in %s', int(state.step), checkpoints.directory)
  return state


class StepProfiler:
  """A jax.profiler trace of the steps in config.train.profile_steps, written by process 0 into
  `directory` (TensorBoard's profile plugin reads its plugins/profile/); every step is annotated, so
  that the trace viewer and the overview page show step boundaries. `perfetto` also writes the
  trace as perfetto_trace.json.gz, for ui.perfetto.dev and scripts."""

  def __init__(self, profile_steps: str = '', directory: str = '', perfetto: bool = False):
    window = validation.profile_window(profile_steps)
    self._start, self._stop = window if window and jax.process_index() == 0 else (-1, -1)
    self._directory = directory
    self._perfetto = perfetto
    self._tracing = False

  def step(self, index: int):
    """The annotation to dispatch step `index` (state.step before it) in; starts the trace."""
    if index == self._start:
      jax.profiler.start_trace(self._directory, create_perfetto_trace=self._perfetto)
      self._tracing = True
    return jax.profiler.StepTraceAnnotation('train', step_num=index)

  def stepped(self, index: int, outputs) -> None:
    """After step `index` was dispatched: at the window's end, waits for it, then ends the trace."""
    if self._tracing and index + 1 == self._stop:
      jax.block_until_ready(outputs)  # The trace holds the last step's device time too.
      self.close()

  def close(self) -> None:
    if self._tracing:
      jax.profiler.stop_trace()
      self._tracing = False


def run_steps(training: step.Training, state: step.TrainState, batches, placement: data.Placement,
              rng: jax.Array, *, total: int, log: TrainLog, checkpoints: checkpoint.Checkpoints,
              nonfinite: str, loop_state: dict | None = None,
              evaluate: Callable[[int, Any], None] | None = None,
              eval_every: int = 0, profiler: StepProfiler | None = None) -> step.TrainState:
  """Steps from state.step to `total`, checkpointing as due and always at the end; with eval_every,
  calls evaluate(step, params) every eval_every steps and after the last; `profiler` traces its
  window of steps. `loop_state` is what a restored checkpoint holds besides the train state.

  Raises preemption.Stopped after checkpointing when SIGTERM/SIGINT asks to stop, and UserError at a
  non-finite step when `nonfinite` is 'stop'.
  """
  skipped = 0
  if loop_state is not None:
    batches.set_state(loop_state['data'])
    log.set_state(loop_state['log'])
    skipped = loop_state['skipped']

  def check_and_record(done: int, metrics) -> None:
    nonlocal skipped
    metrics = jax.device_get(metrics)
    if metrics['update_skipped']:
      problem = (f'step {done}: the loss ({float(metrics["loss"]):.4g}) or the gradient norm '
                 f'({float(metrics["grad_norm"]):.4g}) is not finite')
      if nonfinite == 'stop':
        checkpoints.wait()
        last = checkpoints.latest_step()
        raise UserError(
            f'{problem}; the last good checkpoint is '
            f'{"none" if last is None else checkpoints.path(last)} (a rerun resumes from it); '
            'lower config.train.learning_rate, or set config.train.nonfinite=skip')
      skipped += 1
      logging.warning('%s: update skipped (%d skipped in this run)', problem, skipped)
    log.record(done, metrics)

  # Step n's metrics are read after step n+1 is dispatched: the host never waits on an idle device,
  # and at most two steps are in flight. Before a checkpoint or an evaluation the newest step is
  # read first, so that nothing non-finite is ever saved as a good checkpoint.
  pending = None
  profiler = profiler or StepProfiler()
  with preemption.StopRequests() as stops, contextlib.closing(profiler):
    for step_index in range(int(state.step), total):
      with profiler.step(step_index):  # Host input included: the profile's step time is it all.
        state, metrics = training.train_step(state, placement.place(next(batches)), rng)
      profiler.stepped(step_index, metrics)
      if pending is not None:
        check_and_record(*pending)
      done = step_index + 1
      pending = (done, metrics)
      stop = stops.requested(done)
      save = stop or checkpoints.due(done) or done == total
      evaluating = eval_every and (done % eval_every == 0 or done == total)
      if save or evaluating:
        check_and_record(*pending)
        pending = None
      if save:
        checkpoints.save(done, state, {'data': batches.get_state(), 'log': log.get_state(),
                                       'skipped': skipped})
      if evaluating:
        evaluate(done, state.params)
      if stop:
        checkpoints.wait()
        raise preemption.Stopped(done, checkpoints.path(done))
  if skipped:
    logging.warning('%d updates were skipped for non-finite loss or gradients', skipped)
  return state
