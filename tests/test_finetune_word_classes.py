import csv
import os

from electra_jax.finetune import word_classes


def _rows(path):
  with open(path, encoding='utf-8', newline='') as f:
    return list(csv.DictReader(f))


def test_dev_sentences_use_only_words_that_training_sentences_never_use(tmp_path):
  paths = word_classes.write(str(tmp_path), documents=300, rows=400)
  language = word_classes.Language(0)
  topic_of = {w: t for t, parts in enumerate(language.lexicon) for words in parts.values()
              for w in words}
  splits = {split: _rows(paths[split]) for split in ('train', 'dev')}
  content = {split: {w for r in rows for w in r['text'].split() if w in topic_of}
             for split, rows in splits.items()}
  assert content['train'] and content['dev'] and not content['train'] & content['dev']
  for rows in splits.values():
    assert len(rows) == 400 and sum(r['label'] == 'topic3' for r in rows) == 50
    for row in rows:  # One topic per sentence, and it is the label.
      topics = {topic_of[w] for w in row['text'].split() if w in topic_of}
      assert len(topics) == 1 and row['label'] == f'topic{topics.pop()}'
  with open(paths['corpus'], encoding='utf-8') as f:
    documents = f.read().split('\n\n')
  assert {w for d in documents for w in d.split() if w in topic_of} == set(topic_of)
  assert all(len({topic_of[w] for w in d.split() if w in topic_of}) == 1 for d in documents)


def test_a_rerun_leaves_the_corpus_untouched(tmp_path):
  paths = word_classes.write(str(tmp_path), documents=50, rows=16)
  before = os.stat(paths['corpus']).st_mtime_ns
  word_classes.write(str(tmp_path), documents=50, rows=16)
  assert os.stat(paths['corpus']).st_mtime_ns == before
