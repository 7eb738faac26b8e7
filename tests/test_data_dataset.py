import os
import re

import numpy as np
import pytest

from electra_jax.data import corpus, dataset, unigram, tokenizer as tokenizer_lib
from electra_jax.errors import UserError
from tests.conftest import write_corpus
from tests.test_data_corpus import record_texts, write_jsonl


def _plan(tmp_path, monkeypatch=None, **overrides):
  if monkeypatch is not None:
    monkeypatch.setattr(corpus, 'TASK_BYTES', 4000)  # Many tasks, so that processes share work.
  text = corpus.from_text_files(write_corpus(str(tmp_path / 'corpus'), documents=60))
  tok_path = str(tmp_path / 'tok')
  tok = (tokenizer_lib.load(tok_path + '.model') if os.path.exists(tok_path + '.model') else
         tokenizer_lib.train(tokenizer_lib.corpus_lines(text), 128, tok_path))
  args = dict(corpus=text, tokenizer=tok, max_length=32, seed=0, eval_fraction=0.1,
              max_eval_examples=1000, processes=1)
  return dataset.BuildPlan(**{**args, **overrides})


def _rows(path, split):
  source = dataset.open_split(path, split)
  return [(tuple(r['input_ids']), tuple(r['segment_ids'])) for r in source.__getitems__(
      list(range(len(source))))]


def test_build_writes_train_and_validation_and_is_reused(tmp_path):
  plan = _plan(tmp_path)
  path = dataset.build(str(tmp_path / 'data'), plan)
  assert os.path.exists(os.path.join(path, 'dataset_info.json'))
  train, validation = _rows(path, 'train'), _rows(path, 'validation')
  assert len(train) > 100 and 0.03 < len(validation) / (len(train) + len(validation)) < 0.3
  assert not set(train) & set(validation)
  ids, segments = train[0]
  assert ids[0] == 2 and ids[-1] == 3 and len(ids) <= 32 and segments[0] == 0
  stamp = os.path.getmtime(os.path.join(path, 'dataset_info.json'))
  assert dataset.build(str(tmp_path / 'data'), plan) == path
  assert os.path.getmtime(os.path.join(path, 'dataset_info.json')) == stamp

  # The build stored the unigram entropy of every example's pieces; one built before it did counts
  # them when it is next found, the same.
  pieces = unigram.count(np.concatenate([ids for ids, _ in train + validation]),
                         plan.tokenizer.vocab_size)
  entropy = unigram.piece_entropy(pieces, plan.tokenizer.special_ids)
  assert np.isclose(dataset.unigram_entropy(path), entropy)
  os.remove(os.path.join(path, 'metadata.json'))
  assert dataset.unigram_entropy(path) is None
  assert dataset.build(str(tmp_path / 'data'), plan) == path
  assert np.isclose(dataset.unigram_entropy(path), entropy)
  assert os.path.getmtime(os.path.join(path, 'dataset_info.json')) == stamp


def test_a_change_of_corpus_tokenizer_or_length_builds_elsewhere(tmp_path):
  plan = _plan(tmp_path)
  base = dataset.directory('/d', plan)
  assert dataset.directory('/d', _plan(tmp_path, max_length=64)) != base
  assert dataset.directory('/d', _plan(tmp_path, seed=1)) != base
  with open(tmp_path / 'corpus' / 'part1.txt', 'a', encoding='utf-8') as f:
    f.write('new text.\n')
  assert dataset.directory('/d', _plan(tmp_path)) != base
  other_tok = tokenizer_lib.train(tokenizer_lib.corpus_lines(plan.corpus), 100, str(tmp_path / 't2'))
  assert dataset.directory('/d', _plan(tmp_path, tokenizer=other_tok)) != base


def test_parallel_build_equals_serial_build(tmp_path, monkeypatch):
  serial = dataset.build(str(tmp_path / 'serial'), _plan(tmp_path, monkeypatch))
  parallel = dataset.build(str(tmp_path / 'parallel'), _plan(tmp_path, monkeypatch, processes=2))
  for split in ('train', 'validation'):
    assert _rows(serial, split) == _rows(parallel, split)


def test_a_truncated_data_file_is_reported(tmp_path):
  path = dataset.build(str(tmp_path / 'data'), _plan(tmp_path))
  [name] = [n for n in os.listdir(path) if '-train.array_record' in n]
  with open(os.path.join(path, name), 'r+b') as f:
    f.truncate(os.path.getsize(os.path.join(path, name)) // 2)
  with pytest.raises(UserError, match=f'{name} is corrupt or truncated.*delete .* to rebuild'):
    dataset.open_split(path, 'train')


def test_a_corpus_too_small_to_hold_out_is_an_error(tmp_path):
  (tmp_path / 'one.txt').write_text('just one short line.\n')
  plan = _plan(tmp_path, corpus=corpus.from_text_files(str(tmp_path / 'one.txt')))
  with pytest.raises(UserError, match='too small'):
    dataset.build(str(tmp_path / 'data'), plan)
  assert not os.path.exists(os.path.join(dataset.directory(str(tmp_path / 'data'), plan),
                                         'dataset_info.json'))


def test_what_a_killed_build_left_is_removed_and_never_taken_for_the_dataset(tmp_path):
  plan = _plan(tmp_path)
  path = dataset.directory(str(tmp_path / 'data'), plan)
  left = os.path.join(os.path.dirname(path), 'incomplete.X1Y2Z3_1.0.0')  # As TFDS names it.
  os.makedirs(left)
  with open(os.path.join(left, 'dataset_info.json'), 'w', encoding='utf-8') as f:
    f.write('{}')
  root = os.path.dirname(os.path.dirname(path))
  open(os.path.join(root, 'build.lock'), 'w').close()  # The killed build's lock file.
  assert dataset.build(str(tmp_path / 'data'), plan) == path
  assert os.listdir(os.path.dirname(path)) == ['1.0.0']
  assert 'build.lock' not in os.listdir(root)
  assert len(_rows(path, 'train')) > 100


def test_a_dataset_built_skipping_bad_records_is_not_reused_by_a_run_that_stops_at_them(tmp_path):
  path = write_jsonl(tmp_path / 'records' / 'a.jsonl', record_texts(tmp_path / 'text', documents=60))
  with open(path, 'a', encoding='utf-8') as f:
    f.write('{"text": "cut short\n')
  skipping, stopping = (_plan(tmp_path, corpus=corpus.from_files('jsonl', path, skip_bad_records=skip))
                        for skip in (True, False))
  assert len(_rows(dataset.build(str(tmp_path / 'data'), skipping), 'train')) > 100
  with pytest.raises(UserError, match=re.escape(f'{path} line 61 is not valid JSON')):
    dataset.build(str(tmp_path / 'data'), stopping)
