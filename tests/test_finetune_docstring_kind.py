import csv
import os
import zlib

from electra_jax.finetune import docstring_kind


def _fake_stdlib(root, files=20):
  """Files with two class docstrings, three function docstrings and a module docstring each."""
  for i in range(files):
    with open(os.path.join(root, f'mod{i}.py'), 'w', encoding='utf-8') as f:
      f.write(f'"""Module {i}."""\n')
      for j in range(2):
        f.write(f'class C{j}:\n  """A class number {j} of file {i}.\n\n  More text."""\n')
      for j in range(3):
        f.write(f'def f{j}():\n  """Return {j} from file {i}."""\n')
  return str(root)


def test_balanced_splits_by_file_with_first_paragraphs(tmp_path):
  os.makedirs(tmp_path / 'lib')
  stdlib = _fake_stdlib(tmp_path / 'lib')
  counts = docstring_kind.write(str(tmp_path / 'out'), stdlib, seed=0)
  dev_files = {i for i in range(20) if zlib.crc32(f'mod{i}.py'.encode()) % 5 == 0}
  assert 0 < len(dev_files) < 20
  for split, files in (('dev', dev_files), ('train', set(range(20)) - dev_files)):
    with open(tmp_path / 'out' / f'{split}.csv', encoding='utf-8', newline='') as f:
      rows = list(csv.DictReader(f))
    assert len(rows) == counts[split] == 4 * len(files)  # Both class docstrings, 2 of 3 functions.
    assert sum(r['label'] == 'class' for r in rows) == 2 * len(files)
    assert {int(r['text'].split('file ')[1].rstrip('.')) for r in rows} == files
    assert all('More text' not in r['text'] and 'Module' not in r['text'] for r in rows)
