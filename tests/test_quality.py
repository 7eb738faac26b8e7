"""bench/quality.py at toy size: every code path from pre-training to the report."""

import json
import subprocess
import sys

from tests.conftest import ROOT, cli_env


def test_toy_comparison_writes_the_report_and_plots(tmp_path):
  doc = tmp_path / 'doc' / 'quality.md'
  result = subprocess.run(
      [sys.executable, '-m', 'bench.quality', '--toy', f'--output={tmp_path / "runs"}',
       f'--doc={doc}', '--seeds=0', '--tasks=docstring_kind'],
      capture_output=True, text=True, check=False, cwd=ROOT,
      env=cli_env(devices=1, data_dir=str(tmp_path / 'data')))
  assert result.returncode == 0, result.stderr[-3000:]
  medians = json.loads(result.stdout.strip().splitlines()[-1])
  assert set(medians) == {'docstring_kind',
                          'docstring_kind: 10% of labels, 30 epochs, RTD on its own texts'}
  assert set(medians['docstring_kind']) == {'scratch', 'mlm', 'rtd'}
  assert all(0 <= v <= 1 for cells in medians.values() for v in cells.values())
  text = doc.read_text(encoding='utf-8')
  assert '| docstring_kind | 1' in text and 'Domain-adaptive' in text and 'disc_auc' in text
  for name in ('quality_curves.png', 'quality_health.png', 'quality_downstream.png'):
    assert (doc.parent / name).stat().st_size > 1000 and f'![{name}]({name})' in text
  # The MLM baseline got the RTD run's model FLOPs.
  flops = {}
  for kind in ('rtd', 'mlm'):
    with open(tmp_path / 'runs' / kind / 'metrics.jsonl', encoding='utf-8') as f:
      flops[kind] = [json.loads(line) for line in f][-1]['flops']
  assert abs(flops['mlm'] / flops['rtd'] - 1) < 0.2


def test_unknown_task_is_one_line(tmp_path):
  result = subprocess.run(
      [sys.executable, '-m', 'bench.quality', '--toy', f'--output={tmp_path}', '--tasks=nope'],
      capture_output=True, text=True, check=False, cwd=ROOT, env=cli_env(devices=1,
                                                                         data_dir=str(tmp_path)))
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1].startswith('error: --tasks: unknown task')
