"""python -m electra_jax.finetune, run as a user runs it: a subprocess from the repository root."""

import json
import os
import subprocess
import sys

from tests.conftest import keyword_task

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _finetune(*args):
  env = {**os.environ, 'XLA_FLAGS': '--xla_force_host_platform_device_count=2'}
  return subprocess.run([sys.executable, '-m', 'electra_jax.finetune', *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=300, check=False)


def test_fine_tunes_seeds_from_the_command_line_after_a_run_that_failed_on_its_input(
    pretrained_run, tmp_path):
  """A run that failed on its input can be rerun in its workdir with the input fixed; that rerun
  fine-tunes every seed (one compiled fine-tuning run serves both checks)."""
  train_file, eval_file = keyword_task(str(tmp_path), train_rows=64, eval_rows=32)
  workdir = str(tmp_path / 'run')
  common = ['--config=configs/finetune/classification.py', f'--workdir={workdir}',
            f'--config.init_checkpoint={pretrained_run}', f'--config.eval_file={eval_file}',
            '--config.max_seq_length=32', '--config.seeds=3,4', '--config.train.epochs=1']
  failed = _finetune(*common, f'--config.train_file={tmp_path / "typo.csv"}')
  assert failed.returncode == 1 and 'typo.csv does not exist' in failed.stderr
  run = _finetune(*common, f'--config.train_file={train_file}')
  assert run.returncode == 0, run.stderr
  assert 'seed 3: accuracy' in run.stderr and 'median of 2 seed(s)' in run.stderr
  assert 'orbax' not in run.stderr.lower()
  with open(os.path.join(workdir, 'results.json'), encoding='utf-8') as f:
    results = json.load(f)
  assert set(results['median']) == {'accuracy', 'f1', 'mcc'} and set(results['seeds']) == {'3', '4'}
  assert sorted(os.listdir(workdir)) == ['config.json', 'finetune_config.json', 'predictions.jsonl',
                                         'results.json', 'seed_3', 'seed_4', 'tokenizer.model']


def test_bad_input_is_one_line_and_a_nonzero_exit(tmp_path):
  run = _finetune('--config=configs/finetune/classification.py', f'--workdir={tmp_path / "run"}',
                  f'--config.init_checkpoint={tmp_path}')
  assert run.returncode == 1
  assert run.stderr.strip().splitlines()[-1].startswith('error: config.init_checkpoint=')
  assert 'Traceback' not in run.stderr
  assert not os.path.exists(tmp_path / 'run' / 'results.json')

