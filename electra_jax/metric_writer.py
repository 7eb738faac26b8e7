"""Training records: a console line, `metrics.jsonl` and TensorBoard events. Process 0 writes; the others
only keep the loop's bookkeeping, so every host runs the same code."""

import json
import os

from absl import logging
import jax
from tensorboardX import SummaryWriter


def _format_duration(seconds: float) -> str:
  seconds = int(seconds)
  hours, rest = divmod(seconds, 3600)
  return f'{hours}h{rest // 60:02d}m' if hours else f'{rest // 60}m{rest % 60:02d}s'


class MetricWriter:

  def __init__(self, workdir: str, *, first_step: int, total_steps: int):
    self._enabled = jax.process_index() == 0
    self._total_steps = total_steps
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
    with open(self._jsonl_path, encoding='utf-8') as f:
      kept = [line for line in f if line.strip() and json.loads(line)['step'] <= step]
    tmp = self._jsonl_path + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
      f.writelines(kept)
    os.replace(tmp, self._jsonl_path)

  def write(self, step: int, metrics: dict[str, float], *, split: str = 'train',
            seconds_per_step: float | None = None) -> None:
    if not self._enabled:
      return
    record = {'step': step, 'split': split, **metrics}
    self._jsonl.write(json.dumps(record) + '\n')
    self._jsonl.flush()
    for name, value in metrics.items():
      self._tensorboard.add_scalar(f'{split}/{name}', value, step)
    self._tensorboard.flush()
    eta = ('' if seconds_per_step is None else
           f'  ETA {_format_duration(seconds_per_step * (self._total_steps - step))}')
    rate = f"  {metrics['tokens_per_sec']:,.0f} tok/s" if 'tokens_per_sec' in metrics else ''
    logging.info('%s step %d/%d  loss %.4f  gen %.4f (acc %.3f)  disc %.4f (acc %.3f)%s%s',
                 split, step, self._total_steps, metrics['loss'], metrics['gen_loss'],
                 metrics['gen_accuracy'], metrics['disc_loss'], metrics['disc_accuracy'], rate, eta)

  def close(self) -> None:
    if self._enabled:
      self._jsonl.close()
      self._tensorboard.close()
