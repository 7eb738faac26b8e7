import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_bench_prints_both_throughputs_as_json_last():
  result = subprocess.run(
      [sys.executable, '-m', 'electra_jax.data.bench', '--text_mb=0.5', '--load_steps=5',
       '--batch_size=16', '--vocab_size=500'],
      cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
      env={**os.environ, 'XLA_FLAGS': ''})
  assert result.returncode == 0, result.stderr
  report = json.loads(result.stdout.strip().splitlines()[-1])
  assert report['build_mb_per_sec'] > 0 and report['load_tokens_per_sec'] > 0
  assert report['build_mb_per_sec_parquet'] > 0 and report['build_mb_per_sec_jsonl_zst'] > 0
