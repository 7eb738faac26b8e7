"""bench/quality.py: the transfer benchmark at its CI size (it must show that RTD pre-training
transfers, and that a broken path from pre-training to fine-tuning does not), and the compute curve
at toy sizes (code paths only). One run serves every assertion."""

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT, cli_env

STEPS = 3000  # CI-size pre-training (bench/quality.py's --toy) that transfers with a margin.


@pytest.fixture(scope='module')
def bench(tmp_path_factory):
  tmp_path = tmp_path_factory.mktemp('quality')
  doc = tmp_path / 'doc' / 'quality.md'
  result = subprocess.run(
      [sys.executable, '-m', 'bench.quality', '--toy', '--nomlm', '--nomodernbert_transfer',
       f'--output={tmp_path / "runs"}', f'--doc={doc}', '--seeds=0', f'--transfer_steps={STEPS}',
       '--budgets=8', '--modernbert_budgets=8'],
      capture_output=True, text=True, check=False, cwd=ROOT,
      env=cli_env(devices=1, data_dir=str(tmp_path / 'data')))
  assert result.returncode == 0, result.stderr[-3000:]
  return tmp_path, doc, json.loads(result.stdout.strip().splitlines()[-1])


def _row(doc, arm: str) -> list[str]:
  rows = [line for line in doc.read_text(encoding='utf-8').splitlines()
          if line.startswith(f'| {arm} |')]
  assert len(rows) == 1, rows
  return [cell.strip() for cell in rows[0].strip('|').split('|')]


def test_rtd_transfers_to_words_fine_tuning_never_saw(bench):
  _, doc, medians = bench
  chance = medians['transfer random weights 0']
  assert chance <= 0.3  # 8 topics: random weights cannot place a word they never saw.
  assert medians[f'transfer rtd {STEPS}'] >= chance + 0.20
  assert _row(doc, 'rtd')[-1] == 'yes'


def test_a_shuffled_tokenizer_fails_the_same_assertion(bench):
  # The same weights, read through another id for every piece: what was learned is lost on the way.
  _, doc, medians = bench
  assert medians[f'transfer shuffled tokenizer {STEPS}'] < medians['transfer random weights 0'] + 0.20
  assert _row(doc, 'shuffled tokenizer')[-1] == 'no'


def test_the_hugging_face_round_trip_keeps_what_was_learned(bench):
  _, _, medians = bench
  assert abs(medians[f'transfer HF round trip {STEPS}'] - medians[f'transfer rtd {STEPS}']) <= 0.03


def test_the_report_has_both_tables_and_plots(bench):
  _, doc, medians = bench
  text = doc.read_text(encoding='utf-8')
  assert '## Transfer on an artificial language' in text and '## The compute curve' in text
  assert '| 8x seed 0 |' in text and '| random weights |' in text and 'disc_auc' in text
  assert {'docstring_kind 8x seed 0', 'docstring_next random weights',
          'docstring_next 8x modernbert'} <= set(medians)
  # The ModernBERT arm matches the ELECTRA run's model FLOPs (to within one of its steps).
  flops = {arm: float(_row(doc, arm)[1]) for arm in ('8x seed 0', '8x modernbert')}
  assert flops['8x modernbert'] == pytest.approx(flops['8x seed 0'], rel=0.1)
  for name in ('quality_transfer.png', 'quality_curve.png'):
    assert (doc.parent / name).stat().st_size > 1000 and f'![{name}]({name})' in text


def test_bad_budgets_are_one_line(tmp_path):
  result = subprocess.run(
      [sys.executable, '-m', 'bench.quality', '--toy', f'--output={tmp_path}', '--budgets=x'],
      capture_output=True, text=True, check=False, cwd=ROOT, env=cli_env(devices=1,
                                                                         data_dir=str(tmp_path)))
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1].startswith(
      'error: --transfer_steps, --budgets and --modernbert_budgets take numbers')
