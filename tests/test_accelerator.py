import gzip
import json
import os
import subprocess
import sys

from bench import accelerator
from tests.conftest import ROOT, cli_env


def test_smoke_runs_every_kind_of_item_and_writes_the_tables(tmp_path):
  output = tmp_path / 'out'
  result = subprocess.run(['bash', 'bench/accelerator.sh', '--smoke', f'--output={output}'],
                          cwd=ROOT, env=cli_env(2, PYTHON=sys.executable),
                          capture_output=True, text=True, timeout=600, check=False)
  assert result.returncode == 0, result.stderr
  with open(output / 'results.json', encoding='utf-8') as f:
    records = json.load(f)['results']
  assert [(r['kind'], r.get('attention')) for r in records] == [
      ('bench', 'xla'), ('bench', 'cudnn'), ('train', None), ('profile', 'cudnn'), ('bench', 'xla')]
  assert [r['prng'] for r in records if r['kind'] == 'bench'] == ['threefry2x32'] * 2 + ['rbg']
  assert all(r['status'] == 'ok' for r in records), records
  assert records[0]['setup'].startswith('2 x cpu; batch 8 x 16; bfloat16; hidden 64 x 1 layers')
  assert records[2]['loss_fell'] and records[2]['skipped_updates'] == 0
  with open(output / 'results.jsonl', encoding='utf-8') as f:
    assert [json.loads(line) for line in f] == records  # Written as they came, the same records.
  table = (output / 'results.md').read_text(encoding='utf-8')
  assert '| Base s128 | 8 x 16 | cudnn | none | threefry2x32 | ok |' in table
  assert '| Base s128 | 8 x 16 | xla | none | rbg | ok |' in table and table in result.stdout
  assert 'Training (tiny.py, 8 steps, bfloat16): ok; loss' in table
  assert '| track | op | total ms |' in (output / 'profile.txt').read_text(encoding='utf-8')


def _event(pid, tid, name, dur):
  return {'ph': 'X', 'pid': pid, 'tid': tid, 'name': name, 'ts': 0, 'dur': dur}


def test_top_ops_counts_the_device_tracks_only(tmp_path):
  events = [
      {'ph': 'M', 'pid': 1, 'name': 'process_name', 'args': {'name': '/host:CPU'}},
      {'ph': 'M', 'pid': 2, 'name': 'process_name', 'args': {'name': '/device:GPU:0'}},
      {'ph': 'M', 'pid': 2, 'tid': 7, 'name': 'thread_name', 'args': {'name': 'XLA Ops'}},
      _event(1, 3, 'python', 10_000), _event(2, 7, 'fusion.1', 3000), _event(2, 7, 'gemm', 1000),
      _event(2, 7, 'fusion.1', 1000)]
  folder = tmp_path / 'plugins' / 'profile' / 'run'
  os.makedirs(folder)
  with gzip.open(folder / 'perfetto_trace.json.gz', 'wt', encoding='utf-8') as f:
    json.dump({'traceEvents': events}, f)
  assert accelerator.top_ops(str(tmp_path)) == [('XLA Ops', 'fusion.1', 4.0, 0.8, 2),
                                                ('XLA Ops', 'gemm', 1.0, 0.2, 1)]


def test_the_device_command_fits_the_tool_and_its_wheels_are_not_tracked():
  assert len(accelerator.DEVICE_COMMAND) <= accelerator.COMMAND_LIMIT
  assert subprocess.run(['git', 'check-ignore', '-q', 'wheels/x.whl'], cwd=ROOT,
                        check=False).returncode == 0
