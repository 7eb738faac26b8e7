import glob
import json
import logging
import os
import struct

import numpy as np
from tensorboardX.proto import event_pb2

from electra_jax.metric_writer import MetricWriter, TrainLog
from tests.conftest import read_metrics


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


def _tensorboard_scalars(directory) -> dict[str, list[tuple[int, float]]]:
  """Every scalar in the event files under `directory`: tag -> [(step, value)]. Each record is its
  length (8 bytes), a checksum (4), an Event and another checksum (4)."""
  scalars = {}
  for path in glob.glob(os.path.join(directory, 'events.out.tfevents.*')):
    with open(path, 'rb') as f:
      while header := f.read(12):
        event = event_pb2.Event.FromString(f.read(struct.unpack('<Q', header[:8])[0]))
        f.read(4)
        for value in event.summary.value:
          scalars.setdefault(value.tag, []).append((event.step, value.simple_value))
  return scalars


def test_the_yardsticks_are_in_every_record_and_beside_their_losses_on_the_console(tmp_path, caplog):
  writer = MetricWriter(str(tmp_path), first_step=0, total_steps=10,
                        console=('loss', 'gen_loss', 'disc_loss'), constants={'unigram_entropy': 5.7},
                        yardsticks={'gen_loss': ('unigram_entropy', 'unigram'),
                                    'disc_loss': ('disc_base_rate_entropy', 'base rate')})
  train = {'loss': 32.5, 'gen_loss': 6.93, 'disc_loss': 0.5571, 'disc_base_rate_entropy': 0.557}
  evaluation = {**train, 'gen_loss': 5.38, 'disc_loss': 0.5387}
  with caplog.at_level(logging.INFO):
    writer.write(5, train)
    writer.write(10, evaluation, split='eval')
    writer.write(10, train)
  writer.close()
  assert ('eval step 10/10  loss 32.5  gen_loss 5.38 (unigram 5.7)  disc_loss 0.5387 '
          '(base rate 0.557)') in caplog.text
  records = read_metrics(tmp_path)
  assert [(r['split'], r['unigram_entropy'], r['disc_base_rate_entropy']) for r in records] == [
      ('train', 5.7, 0.557), ('eval', 5.7, 0.557), ('train', 5.7, 0.557)]
  scalars = _tensorboard_scalars(tmp_path / 'tensorboard')
  for split, steps in (('train', [5, 10]), ('eval', [10])):
    assert scalars[f'{split}/unigram_entropy'] == [(step, np.float32(5.7)) for step in steps]
    assert scalars[f'{split}/disc_base_rate_entropy'] == [(step, np.float32(0.557)) for step in steps]
  assert writer.first_and_last() == (records[0], records[1])  # The last evaluation's.


def test_without_an_evaluation_at_the_last_step_the_summary_ends_at_its_train_record(tmp_path):
  with open(tmp_path / 'metrics.jsonl', 'w', encoding='utf-8') as f:
    f.writelines(json.dumps({'step': step, 'split': split, 'loss': step}) + '\n'
                 for step, split in ((2, 'train'), (4, 'train'), (4, 'eval')))
  writer = MetricWriter(str(tmp_path), first_step=4, total_steps=6)  # Resumed, no longer evaluating.
  writer.write(6, {'loss': 6.0})
  writer.close()
  first, last = writer.first_and_last()
  assert (first['step'], last['step'], last['split']) == (2, 6, 'train')
