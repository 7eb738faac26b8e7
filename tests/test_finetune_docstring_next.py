import csv
import os

from electra_jax.finetune import docstring_kind, docstring_next


def _fake_stdlib(root, files=20):
  """Files whose function docstrings have three sentences (A, B, C) each."""
  os.makedirs(root)
  for i in range(files):
    with open(os.path.join(root, f'mod{i}.py'), 'w', encoding='utf-8') as f:
      for j in range(2):
        f.write(f'def f{j}():\n  """Return thing {j} of file {i} now. It is computed from file '
                f'{i} alone. Callers in file {i} may cache it.\n\n  Not this paragraph."""\n')
  return str(root)


def test_pairs_are_consecutive_sentences_or_a_sentence_from_another_docstring(tmp_path):
  stdlib = _fake_stdlib(tmp_path / 'lib')
  counts = docstring_kind.write_splits(str(tmp_path / 'out'), docstring_next.rows(stdlib, seed=0))
  dev_files = {i for i in range(20) if docstring_kind.split_of(f'{stdlib}/mod{i}.py', stdlib) == 'dev'}
  for split in ('train', 'dev'):
    with open(tmp_path / 'out' / f'{split}.csv', encoding='utf-8', newline='') as f:
      rows = list(csv.DictReader(f))
    files = dev_files if split == 'dev' else set(range(20)) - dev_files
    assert len(rows) == counts[split] == 2 * 2 * 2 * len(files)  # 2 docstrings x 2 pairs x 2 labels.
    for row in rows:
      a_file, b_file = (int(row[k].split('file ')[1].split()[0].rstrip('.')) for k in ('text', 'text_pair'))
      assert a_file in files and b_file in files
      assert 'Not this paragraph' not in row['text'] + row['text_pair']
      if row['label'] == 'next':
        assert a_file == b_file
        assert (row['text'].startswith('Return') and row['text_pair'].startswith('It is')) or (
            row['text'].startswith('It is') and row['text_pair'].startswith('Callers'))
      else:
        assert row['label'] == 'other' and row['text_pair'] != row['text']
    assert sum(r['label'] == 'next' for r in rows) == len(rows) // 2
