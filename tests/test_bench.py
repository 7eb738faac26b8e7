import json
import subprocess
import sys

from tests.conftest import ROOT, cli_env

KEYS = {'tokens_per_sec', 'step_time_s', 'mfu', 'compile_s', 'peak_memory_bytes'}


def _bench(*flags, devices=1):
  return subprocess.run(
      [sys.executable, '-m', 'electra_jax.bench', '--config=tests/small_config.py', *flags],
      cwd=ROOT, env=cli_env(devices), capture_output=True, text=True, timeout=300, check=False)


def test_bench_prints_its_figures_and_ends_with_json():
  result = _bench('--batch_size=8', '--seq_len=16', '--steps=3', '--warmup=1', '--dtype=bfloat16',
                  '--config.train.remat=full', devices=2)
  assert result.returncode == 0, result.stderr
  lines = result.stdout.strip().splitlines()
  assert lines[0].startswith('2 x cpu; batch 8 x 16; bfloat16')
  assert any(line.startswith('step: median') and 'over 3 steps' in line for line in lines)
  figures = json.loads(lines[-1])
  assert figures.keys() == KEYS
  assert figures['mfu'] is None  # No bfloat16 peak for a CPU.
  assert figures['tokens_per_sec'] > 0 and figures['compile_s'] > 0
  assert abs(figures['tokens_per_sec'] * figures['step_time_s'] - 8 * 16) < 1e-6
  assert figures['peak_memory_bytes'] > 0


def test_bench_rejects_a_bad_setting_with_one_line():
  result = _bench('--seq_len=64', '--steps=1')  # max_position_embeddings is 32.
  assert result.returncode != 0
  assert result.stderr.strip().splitlines()[-1].startswith('error: config.data.max_seq_length=64')
  assert 'Traceback' not in result.stderr
