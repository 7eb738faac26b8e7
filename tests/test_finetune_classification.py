import json
import os

import numpy as np
import pytest

from configs.finetune import classification as classification_config
from configs.finetune import glue as glue_config
from electra_jax.data import corpus, tokenizer as tokenizer_lib
from electra_jax.errors import UserError
from electra_jax.finetune import classification, tasks
from tests.conftest import write_corpus


@pytest.fixture(scope='module')
def tok(tmp_path_factory):
  root = tmp_path_factory.mktemp('tok')
  text = corpus.from_text_files(write_corpus(str(root / 'c')))
  return tokenizer_lib.train(tokenizer_lib.corpus_lines(text), 200, str(root / 'v'))


def _error(function, *args) -> str:
  with pytest.raises(UserError) as raised:
    function(*args)
  assert '\n' not in str(raised.value)
  return str(raised.value)


def test_csv_tsv_and_jsonl_give_the_same_rows(tmp_path):
  (tmp_path / 'a.csv').write_text('text,text_pair,label\n"the model, reads",a pair,yes\nb,c,no\n')
  (tmp_path / 'a.tsv').write_text('text\ttext_pair\tlabel\nthe model, reads\ta pair\tyes\nb\tc\tno\n')
  (tmp_path / 'a.jsonl').write_text(
      json.dumps({'text': 'the model, reads', 'text_pair': 'a pair', 'label': 'yes'}) + '\n\n' +
      json.dumps({'text': 'b', 'text_pair': 'c', 'label': 'no'}) + '\n')
  rows = [classification.read_file(str(tmp_path / f'a.{ext}')) for ext in ('csv', 'tsv', 'jsonl')]
  assert rows[0] == rows[1] == rows[2] == [
      {'text': 'the model, reads', 'text_pair': 'a pair', 'label': 'yes'},
      {'text': 'b', 'text_pair': 'c', 'label': 'no'}]


def test_bad_files_are_one_line_errors(tmp_path):
  (tmp_path / 'x.txt').write_text('text,label\na,b\n')
  assert 'unknown file type' in _error(classification.read_file, str(tmp_path / 'x.txt'))
  (tmp_path / 'nolabel.csv').write_text('text,sentiment\na,b\n')
  message = _error(classification.read_file, str(tmp_path / 'nolabel.csv'))
  assert 'row 1 has no label (its columns: text, sentiment)' in message
  (tmp_path / 'empty.csv').write_text('text,label\n')
  assert 'has no rows' in _error(classification.read_file, str(tmp_path / 'empty.csv'))
  (tmp_path / 'bad.jsonl').write_text('{"text": "a", "label": 1}\n{not json\n')
  assert 'could not be read' in _error(classification.read_file, str(tmp_path / 'bad.jsonl'))


def test_pack_lays_out_single_texts_and_pairs_and_truncates_the_longer_side(tok):
  cls, sep = tok.special_ids['cls_id'], tok.special_ids['sep_id']
  arrays = tasks.pack([[10, 11], [20] * 9], [[30], [40] * 3], 8, tok)
  np.testing.assert_array_equal(arrays['input_ids'][0], [cls, 10, 11, sep, 30, sep, 0, 0])
  np.testing.assert_array_equal(arrays['segment_ids'][0], [0, 0, 0, 0, 1, 1, 0, 0])
  np.testing.assert_array_equal(arrays['input_mask'][0], [1, 1, 1, 1, 1, 1, 0, 0])
  # 9 + 3 pieces into 5 places: the longer side loses a piece at a time (on a tie, the second).
  np.testing.assert_array_equal(arrays['input_ids'][1], [cls, 20, 20, 20, sep, 40, 40, sep])
  single = tasks.pack([[10] * 20], None, 8, tok)
  np.testing.assert_array_equal(single['input_ids'][0], [cls] + [10] * 6 + [sep])
  assert not single['segment_ids'].any()


def test_labels_are_sorted_numerically_or_as_given(tmp_path, tok):
  config = classification_config.get_config()
  assert tasks.label_names(config, ['10', '2', '1', '2']) == ['1', '2', '10']
  assert tasks.label_names(config, ['pos', 'neg']) == ['neg', 'pos']
  config.labels = 'pos, neg'
  assert tasks.label_names(config, ['neg']) == ['pos', 'neg']
  message = _error(tasks.label_ids, ['pos', 'maybe'], ['neg', 'pos'], 'dev.csv')
  assert "dev.csv has labels ['maybe'] that are not among ['neg', 'pos']" in message


def test_load_encodes_files_and_scores_predictions(tmp_path, tok):
  (tmp_path / 'train.csv').write_text('text,label\nthe model,no\nreads text,yes\n')
  (tmp_path / 'dev.csv').write_text('text,label\nthe model,no\nreads text,yes\nthe text,yes\n')
  config = classification_config.get_config()
  config.train_file, config.eval_file = str(tmp_path / 'train.csv'), str(tmp_path / 'dev.csv')
  config.max_seq_length = 16
  task = classification.load(config, tok)
  assert (task.head, task.num_outputs, task.main_metric) == ('classification', 2, 'accuracy')
  np.testing.assert_array_equal(task.train['label'], [0, 1])
  assert task.eval['input_ids'].shape == (3, 16)
  results, predictions = task.score({'prediction': np.array([0, 1, 0]),
                                     'logits': np.zeros((3, 2))})
  assert results['accuracy'] == pytest.approx(2 / 3)
  assert [json.loads(line) for line in predictions.splitlines()][2] == {
      'index': 2, 'prediction': 'no', 'label': 'yes'}

  config.kind = 'regression'
  message = _error(classification.load, config, tok)
  assert 'a regression label is not a number' in message
  config.kind, config.train_file = 'classification', str(tmp_path / 'missing.csv')
  assert 'config.train_file=' in _error(classification.load, config, tok)


def _prepare_tfds_glue(data_dir: str, tsv_dir: str) -> None:
  """TFDS's own glue builder for rte and stsb, reading local TSVs instead of downloading."""
  from tensorflow_datasets.text import glue  # pylint: disable=g-import-not-at-top

  class Glue(glue.Glue, skip_registration=True):
    name = 'glue'

    def _split_generators(self, dl_manager):
      path = os.path.join(tsv_dir, self.builder_config.name + '.tsv')
      return [glue.tfds.core.SplitGenerator(name=split, gen_kwargs={
          'data_file': path, 'split': split}) for split in ('train', 'validation')]

  for task in ('rte', 'stsb'):
    Glue(config=task, data_dir=data_dir, file_format='array_record').download_and_prepare()


def test_glue_tasks_are_read_from_tfds(tmp_path, tok):
  tsv_dir = tmp_path / 'tsv'
  tsv_dir.mkdir()
  (tsv_dir / 'rte.tsv').write_text('index\tsentence1\tsentence2\tlabel\n'
                                   '0\tthe model reads\tit reads\tentailment\n'
                                   '1\tthe model reads\tit sleeps\tnot_entailment\n')
  (tsv_dir / 'stsb.tsv').write_text('index\tsentence1\tsentence2\tscore\n'
                                    '0\tthe model\ta model\t4.5\n1\tthe text\ta device\t0.5\n')
  data_dir = str(tmp_path / 'tfds')
  _prepare_tfds_glue(data_dir, str(tsv_dir))

  config = glue_config.get_config('rte')
  config.tfds_data_dir, config.max_seq_length = data_dir, 16
  task = classification.load(config, tok)
  assert (task.name, task.main_metric, task.epochs, task.num_outputs) == ('glue/rte', 'accuracy',
                                                                         10, 2)
  assert sorted(task.train['label'].tolist()) == [0, 1]
  assert task.train['segment_ids'].any()  # Sentence pairs.

  config = glue_config.get_config('stsb')
  config.tfds_data_dir, config.max_seq_length = data_dir, 16
  task = classification.load(config, tok)
  assert (task.head, task.main_metric) == ('regression', 'spearman')
  assert sorted(task.train['label'].tolist()) == [0.5, 4.5]

  config.kind = 'classification'
  assert 'glue/stsb is a regression task' in _error(classification.load, config, tok)
  config.tfds = 'glue/wnli'
  assert 'is not a GLUE task' in _error(classification.load, config, tok)
  config.tfds, config.tfds_data_dir = 'glue/cola', str(tmp_path / 'none')
  assert 'nothing is downloaded' in _error(classification.load, config, tok)
