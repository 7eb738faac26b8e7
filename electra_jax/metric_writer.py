"""Training records: a console line, `metrics.jsonl` and TensorBoard events. Process 0 writes; the others
only keep the loop's bookkeeping, so every host runs the same code."""

import json
import os
import time
from typing import Callable

from absl import logging
import jax
import numpy as np
from tensorboardX import SummaryWriter

from electra_jax import files


def _format_duration(seconds: float) -> str:
  seconds = int(seconds)
  hours, rest = divmod(seconds, 3600)
  return f'{hours}h{rest // 60:02d}m' if hours else f'{rest // 60}m{rest % 60:02d}s'


class MetricWriter:

  def __init__(self, workdir: str, *, first_step: int, total_steps: int,
               console: tuple[str, ...] | None = None, may_write: Callable[[], bool] | None = None,
               constants: dict[str, float] | None = None,
               yardsticks: dict[str, tuple[str, str]] | None = None):
    """`console` names the metrics shown on the console line (None: all); files get every one.
    `may_write()` is asked before every write, which it skips when False (the workdir's lock is
    lost). `constants` are fields of every record. `yardsticks` maps a metric to (the field of its
    yardstick, a label), which the console shows after it: `gen_loss 5.38 (unigram 5.7)`."""
    self._enabled = jax.process_index() == 0
    self._total_steps = total_steps
    self._console = console
    self._constants = constants or {}
    self._yardsticks = yardsticks or {}
    self._may_write = may_write or (lambda: True)
    self._jsonl_path = os.path.join(workdir, 'metrics.jsonl')
    if not self._enabled:
      return
    self._drop_records_after(first_step)
    self._jsonl = open(self._jsonl_path, 'a', encoding='utf-8')
    self._tensorboard = SummaryWriter(os.path.join(workdir, 'tensorboard'))

  def _drop_records_after(self, step: int) -> None:
    """A run that resumes from step k replays the steps after k: forget what an earlier attempt logged
    for them, so that metrics.jsonl holds each step once."""
    if not os.path.exists(self._jsonl_path):
      return
    kept = []
    with open(self._jsonl_path, encoding='utf-8') as f:
      for line in f:
        try:
          if json.loads(line)['step'] <= step:
            kept.append(line.rstrip('\n') + '\n')  # A whole record that lost only its line end.
        except (ValueError, KeyError, TypeError):  # The line a kill cut short, say.
          if line.strip():
            logging.warning('%s: dropping a line that is not a record: %.80r', self._jsonl_path, line)
    files.write_atomically(self._jsonl_path, ''.join(kept))

  def write(self, step: int, metrics: dict[str, float], *, split: str = 'train',
            seconds_per_step: float | None = None, warning: str | None = None) -> None:
    """`warning` (one line) is printed and kept in the record as its `warning` field."""
    if not self._enabled or not self._may_write():
      return
    metrics = {**metrics, **self._constants}
    record = {'step': step, 'split': split, **metrics}
    if warning:
      record['warning'] = warning
      logging.warning('%s step %d: %s', split, step, warning)
    self._jsonl.write(json.dumps(record) + '\n')
    self._jsonl.flush()
    for name, value in metrics.items():
      self._tensorboard.add_scalar(f'{split}/{name}', value, step)
    self._tensorboard.flush()
    eta = ('' if seconds_per_step is None else
           f'  ETA {_format_duration(seconds_per_step * (self._total_steps - step))}')
    rate = f"  {metrics['tokens_per_sec']:,.0f} tok/s" if 'tokens_per_sec' in metrics else ''
    rate += f"  MFU {100 * metrics['mfu']:.1f}%" if 'mfu' in metrics else ''
    names = metrics if self._console is None else [n for n in self._console if n in metrics]
    shown = ''.join(f'  {name} {metrics[name]:.4g}{self._yardstick(name, metrics)}' for name in names
                    if name not in ('tokens_per_sec', 'mfu'))
    logging.info('%s step %d/%d%s%s%s', split, step, self._total_steps, shown, rate, eta)

  def _yardstick(self, name: str, metrics: dict[str, float]) -> str:
    field, label = self._yardsticks.get(name, (None, None))
    return f' ({label} {metrics[field]:.4g})' if field in metrics else ''

  def first_and_last(self) -> tuple[dict, dict]:
    """metrics.jsonl's first record (an earlier attempt's, after a resume) and the last step's
    evaluation record, else its train record: where the run started and where it ended."""
    with open(self._jsonl_path, encoding='utf-8') as f:
      records = [json.loads(line) for line in f]
    last_step = [r for r in records if r['step'] == records[-1]['step']]
    return records[0], next((r for r in last_step if r['split'] == 'eval'), last_step[-1])

  def close(self) -> None:
    if self._enabled:
      self._jsonl.close()
      self._tensorboard.close()


class TrainLog:
  """Step metrics -> their mean over every `every` steps, written with time per step, tokens/s and,
  given the model FLOPs of a step, the cumulative model FLOPs (`flops`, to compare runs at equal
  compute) and, with the devices' peak FLOP/s, MFU.
  """

  def __init__(self, writer: MetricWriter, *, first_step: int, total_steps: int, every: int,
               tokens_per_step: int, flops_per_step: float | None = None,
               peak_flops: float | None = None):
    self._writer = writer
    self._first, self._total, self._every = first_step, total_steps, every
    self._tokens_per_step = tokens_per_step
    self._flops_per_step = flops_per_step
    self._flops_per_second_at_peak = (flops_per_step / peak_flops
                                      if flops_per_step and peak_flops else None)
    self._interval: list[dict] = []
    self._time, self._step = time.perf_counter(), first_step

  def record(self, done: int, metrics: dict[str, np.ndarray]) -> None:
    """Adds step `done`'s metrics (on the host); writes the interval's means when one ends."""
    self._interval.append(metrics)
    now = time.perf_counter()
    if done == self._first + 1:
      logging.info('first step (compilation included) took %.1fs', now - self._time)
    if done % self._every and done != self._total:
      if done == self._first + 1:  # Time later intervals without the compilation.
        self._time, self._step = now, done
      return
    seconds_per_step = (now - self._time) / (done - self._step)
    means = {name: float(np.mean([m[name] for m in self._interval])) for name in self._interval[0]}
    means['tokens_per_sec'] = self._tokens_per_step / seconds_per_step
    if self._flops_per_step:
      means['flops'] = self.flops(done)
    if self._flops_per_second_at_peak is not None:
      means['mfu'] = self._flops_per_second_at_peak / seconds_per_step
    self._writer.write(done, means, seconds_per_step=seconds_per_step)
    self._interval.clear()
    self._time, self._step = now, done

  def flops(self, done: int) -> float:
    """Model FLOPs of the first `done` steps."""
    return float(done * self._flops_per_step)

  def get_state(self) -> list[dict[str, float]]:
    """The steps of the unfinished interval, for checkpoints: a run resumed between two records
    writes the same means as an uninterrupted one."""
    return [{name: float(value) for name, value in metrics.items()} for metrics in self._interval]

  def set_state(self, interval: list[dict[str, float]]) -> None:
    # Step metrics are float32 scalars; floats written by get_state give them back exactly.
    self._interval = [{name: np.float32(value) for name, value in metrics.items()}
                      for metrics in interval]

  def exclude(self, seconds: float) -> None:
    """Leaves time spent outside training (evaluation) out of the step time."""
    self._time += seconds
