"""The step loop that pre-training and fine-tuning share: dispatch step n+1, then read step n;
the non-finite policy; checkpoint cadence; preemption; a lost workdir lock; the eval hook; the profile
window. Also `pipelined`, the same dispatch-then-read for evaluation and prediction passes."""

import contextlib
from typing import Any, Callable, Iterable, Iterator

from absl import logging
import jax

from electra_jax import checkpoint, data, lease, preemption, step, validation
from electra_jax.errors import UserError
from electra_jax.metric_writer import TrainLog


def pipelined(dispatch: Callable[[Any], Any], inputs: Iterable) -> Iterator:
  """dispatch(x) for each input, each result fetched to the host only after the next one was
  dispatched: the device never waits for the host, and at most two calls are in flight."""
  pending = None
  for x in inputs:
    output = dispatch(x)
    if pending is not None:
      yield jax.device_get(pending)
    pending = output
  if pending is not None:
    yield jax.device_get(pending)


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
              eval_every: int = 0, profiler: StepProfiler | None = None,
              held: lease.Hold | None = None) -> step.TrainState:
  """Steps from state.step to `total`, checkpointing as due and always at the end; with eval_every,
  calls evaluate(step, params) every eval_every steps and after the last, before that step's
  checkpoint (a run killed in between evaluates it again when it resumes); `profiler` traces its
  window of steps. `loop_state` is what a restored checkpoint holds besides the train state.

  Raises preemption.Stopped after checkpointing when SIGTERM/SIGINT asks to stop, UserError at a
  non-finite step when `nonfinite` is 'stop', and lease.LockLost, without checkpointing, once
  `held` (the workdir's locks) is lost: on every process, at the same step.
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
  held = held or lease.Hold([])
  with preemption.StopRequests() as stops, contextlib.closing(profiler):
    for step_index in range(int(state.step), total):
      with profiler.step(step_index):  # Host input included: the profile's step time is it all.
        state, metrics = training.train_step(state, placement.place(next(batches)), rng)
      profiler.stepped(step_index, metrics)
      if pending is not None:
        check_and_record(*pending)
      done = step_index + 1
      pending = (done, metrics)
      if held.lost():  # Known to process 0 only: the others learn it at the next agreed stop.
        if jax.process_count() == 1:
          held.check()
        stops.request()
      stop = stops.requested(done)
      save = stop or checkpoints.due(done) or done == total
      evaluating = eval_every and (done % eval_every == 0 or done == total)
      if save or evaluating:
        check_and_record(*pending)
        pending = None
      if evaluating:
        evaluate(done, state.params)
      if save:
        held.check_everywhere()
        checkpoints.save(done, state, {'data': batches.get_state(), 'log': log.get_state(),
                                       'skipped': skipped})
      if stop:
        checkpoints.wait()
        raise preemption.Stopped(done, checkpoints.path(done))
  if skipped:
    logging.warning('%d updates were skipped for non-finite loss or gradients', skipped)
  return state
