import json

import numpy as np

from electra_jax.metric_writer import TrainLog


class _Writer:
  def __init__(self):
    self.records = []

  def write(self, step, metrics, seconds_per_step=None):
    del seconds_per_step
    self.records.append((step, {k: v for k, v in metrics.items() if k != 'tokens_per_sec'}))


def _log(writer, first_step=0):
  return TrainLog(writer, first_step=first_step, total_steps=10, every=5, tokens_per_step=64)


def test_an_interval_split_by_a_checkpoint_gives_the_same_means():
  rng = np.random.default_rng(0)
  steps = [{'loss': np.float32(rng.normal()), 'accuracy': np.float32(rng.random())}
           for _ in range(10)]
  whole = _Writer()
  log = _log(whole)
  for done, metrics in enumerate(steps, 1):
    log.record(done, metrics)

  split = _Writer()
  log = _log(split)
  for done, metrics in enumerate(steps[:7], 1):
    log.record(done, metrics)
  state = json.loads(json.dumps(log.get_state()))  # As the checkpoint stores it.
  resumed = _log(split, first_step=7)
  resumed.set_state(state)
  for done, metrics in enumerate(steps[7:], 8):
    resumed.record(done, metrics)
  assert [step for step, _ in whole.records] == [5, 10]
  assert split.records == whole.records  # Bit for bit: the means are float32 of the same values.


def test_mfu_is_model_flops_per_second_over_the_peak():
  writer = _Writer()
  writer.write = lambda step, metrics, seconds_per_step=None: writer.records.append(
      (metrics, seconds_per_step))
  log = TrainLog(writer, first_step=0, total_steps=10, every=5, tokens_per_step=64,
                 flops_per_step=3e12, peak_flops=1e15)
  for done in range(1, 11):
    log.record(done, {'loss': np.float32(1)})
  for metrics, seconds_per_step in writer.records:
    assert np.isclose(metrics['mfu'], 3e12 / seconds_per_step / 1e15)
    assert np.isclose(metrics['tokens_per_sec'], 64 / seconds_per_step)
  without_peak = _Writer()
  log = TrainLog(without_peak, first_step=0, total_steps=10, every=5, tokens_per_step=64,
                 flops_per_step=3e12, peak_flops=None)  # A CPU: no peak to compare with.
  for done in range(1, 11):
    log.record(done, {'loss': np.float32(1)})
  assert all('mfu' not in metrics for _, metrics in without_peak.records)
