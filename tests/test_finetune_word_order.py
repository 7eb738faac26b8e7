import csv

from electra_jax.finetune import word_order


def test_writes_a_balanced_task_with_dev_lines_from_other_documents(tmp_path):
  word_order.write(str(tmp_path / 'out'), str(tmp_path / 'data'), 600, 200, seed=0)
  splits = {}
  for name in ('train', 'dev'):
    with open(tmp_path / 'out' / f'{name}.csv', encoding='utf-8', newline='') as f:
      splits[name] = list(csv.DictReader(f))
  assert (len(splits['train']), len(splits['dev'])) == (600, 200)
  for rows in splits.values():
    swapped = sum(row['label'] == 'swapped' for row in rows) / len(rows)
    assert 0.4 < swapped < 0.6
    assert {row['label'] for row in rows} == {'intact', 'swapped'}
  train_texts = {row['text'] for row in splits['train']}
  shared = sum(row['text'] in train_texts for row in splits['dev'])
  assert shared <= 4  # Only lines that recur in several documents (boilerplate) can be shared.
  assert all(6 <= len(row['text'].split()) <= 40 for row in splits['train'])
