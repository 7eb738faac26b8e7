"""The command line, run as a user runs it: a subprocess from the repository root."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _main(*args, devices=2, data_dir=None):
  env = {**os.environ, 'XLA_FLAGS': f'--xla_force_host_platform_device_count={devices}'}
  if data_dir:
    env['ELECTRA_JAX_DATA_DIR'] = data_dir  # The builtin corpus, tokenizer and dataset go here.
  return subprocess.run([sys.executable, '-m', 'electra_jax.main', *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=300, check=False)


def test_tiny_config_trains_logs_and_resumes(tmp_path):
  workdir = str(tmp_path / 'tiny')
  common = ['--config=configs/tiny.py', f'--workdir={workdir}', '--config.train.log_every=2',
            '--config.train.checkpoint_every=2', '--config.train.batch_size=8']
  first = _main(*common, '--config.train.steps=4', data_dir=str(tmp_path / 'data'))
  assert first.returncode == 0, first.stderr
  assert 'building the builtin dataset' in first.stderr
  assert 'train step 4/4' in first.stderr and 'tok/s' in first.stderr
  assert 'eval step 4/4' in first.stderr  # The last step is always evaluated.
  assert 'orbax' not in first.stderr.lower()  # Library chatter stays off the console.

  second = _main(*common, '--config.train.steps=6', data_dir=str(tmp_path / 'data'))
  assert second.returncode == 0, second.stderr
  assert 'reusing the built dataset' in second.stderr
  assert 'resumed from' in second.stderr and 'at step 4' in second.stderr
  with open(os.path.join(workdir, 'metrics.jsonl'), encoding='utf-8') as f:
    records = [json.loads(line) for line in f]
  assert [(r['step'], r['split']) for r in records] == [
      (2, 'train'), (4, 'train'), (4, 'eval'), (6, 'train'), (6, 'eval')]
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == ['2', '4', '6']
  # From the first attempt's first record, though this one resumed at step 4, to the last eval.
  assert (f"summary: generator loss {records[0]['gen_loss']:.4g} at step 2 -> "
          f"{records[-1]['gen_loss']:.4g} at step 6 (eval), ") in second.stderr


def test_bad_config_is_one_line_without_traceback(tmp_path):
  result = _main('--config=configs/tiny.py', f'--workdir={tmp_path}/bad',
                 '--config.model.embedding_sharing=everything')
  assert result.returncode != 0
  assert 'Traceback' not in result.stderr
  errors = [line for line in result.stderr.splitlines() if line.startswith('error:')]
  assert len(errors) == 1 and "embedding_sharing='everything' is unknown" in errors[0]
  assert not os.path.exists(f'{tmp_path}/bad/checkpoints')


def test_bad_data_is_one_line_without_traceback(tmp_path):
  result = _main('--config=configs/tiny.py', f'--workdir={tmp_path}/run',
                 f'--config.data.source=text:{tmp_path}/nothing/*.txt')
  assert result.returncode == 1 and 'Traceback' not in result.stderr
  assert result.stderr.strip().splitlines()[-1] == (
      f'error: text:{tmp_path}/nothing/*.txt matches no files; give a glob such as '
      'text:/data/*.txt')


def test_a_diverging_run_stops_with_one_line(tmp_path):
  result = _main('--config=tests/small_config.py', f'--workdir={tmp_path}/run',
                 '--config.train.learning_rate=1e30', '--config.train.warmup_steps=0',
                 '--config.train.checkpoint_every=1')
  assert result.returncode == 1 and 'Traceback' not in result.stderr
  assert result.stderr.strip().splitlines()[-1] == (
      f'error: step 2: the loss (nan) or the gradient norm (nan) is not finite; the last good '
      f'checkpoint is {tmp_path}/run/checkpoints/1 (a rerun resumes from it); lower '
      'config.train.learning_rate, or set config.train.nonfinite=skip')
