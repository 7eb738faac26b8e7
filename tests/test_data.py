"""data.prepare end to end, and every kind of bad input it must reject (or survive) in one line."""

import glob
import logging
import multiprocessing.pool
import os

import pytest

from electra_jax import data
from electra_jax.data import dataset
from electra_jax.errors import UserError
from tests.conftest import plain_sentencepiece_model, read_metrics, write_corpus
from tests.test_data_corpus import (_tfds_text_dataset, record_texts, write_jsonl,
                                     write_parquet)


def test_a_text_corpus_becomes_train_and_eval_batches(text_config):
  prepared = data.prepare(text_config)
  batch = next(prepared.train)
  assert batch['input_ids'].shape == (16, 32) and batch['input_ids'][0, 0] == 2
  assert len(prepared.eval) == 2
  assert prepared.config.data.mask_id == 4 and text_config.data.source.startswith('text:')
  # The tokenizer and the dataset are cached: a second prepare builds nothing.
  built = os.listdir(os.path.join(text_config.data.data_dir, 'datasets'))
  data.prepare(text_config)
  assert os.listdir(os.path.join(text_config.data.data_dir, 'datasets')) == built


def test_special_ids_come_from_the_tokenizer(text_config, tmp_path):
  # A tokenizer whose pieces sit at other ids: [PAD] 0, then [UNK] 1, then the controls from 2.
  from electra_jax.data import tokenizer as tokenizer_lib  # pylint: disable=g-import-not-at-top
  import sentencepiece as spm  # pylint: disable=g-import-not-at-top
  lines = list(tokenizer_lib.corpus_lines(data.load_corpus(text_config)))
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter(lines), model_prefix=str(tmp_path / 'odd'), vocab_size=60,
      pad_id=0, pad_piece='[PAD]', unk_id=1, unk_piece='[UNK]', bos_id=-1, eos_id=-1,
      control_symbols=['[MASK]', '[SEP]', '[CLS]'], minloglevel=2)
  text_config.data.tokenizer = str(tmp_path / 'odd.model')
  prepared = data.prepare(text_config)
  assert (prepared.config.data.cls_id, prepared.config.data.sep_id,
          prepared.config.data.mask_id) == (4, 3, 2)
  assert next(prepared.train)['input_ids'][0, 0] == 4


def test_the_builtin_corpus_needs_no_files(config, tmp_path):
  config.data.source = 'builtin'
  config.data.data_dir = str(tmp_path)
  prepared = data.prepare(config)
  assert next(prepared.train)['input_ids'].shape == (16, 32) and prepared.eval
  with open(os.path.join(tmp_path, 'builtin', os.listdir(tmp_path / 'builtin')[0]),
            encoding='utf-8') as f:
    text = f.read()
  assert 'Return' in text and len(text) > 1_000_000


def test_a_prepared_tfds_text_dataset_trains(text_config, tmp_path):
  _tfds_text_dataset(str(tmp_path / 'tfds'))
  text_config.data.source = 'tfds:tiny_text'
  text_config.data.tfds_data_dir = str(tmp_path / 'tfds')
  text_config.data.eval_fraction = 0.5
  text_config.train.batch_size = 4
  assert next(data.prepare(text_config).train)['input_ids'].shape == (4, 32)


def _error(config) -> str:
  with pytest.raises(UserError) as e:
    data.prepare(config)
  assert '\n' not in str(e.value)
  return str(e.value)


def test_a_glob_that_matches_nothing(text_config, tmp_path):
  text_config.data.source = f'text:{tmp_path}/missing/*.txt'
  assert 'matches no files' in _error(text_config)


def test_only_empty_files(text_config, tmp_path):
  (tmp_path / 'empty.txt').write_text('')
  text_config.data.source = f'text:{tmp_path}/empty.txt'
  assert 'all 1 matching files are empty' in _error(text_config)


def test_a_text_glob_that_matches_an_xz_file(text_config, tmp_path):
  (tmp_path / 'corpus' / 'part3.txt.xz').write_bytes(b'\xfd7zXZ\x00\x00 compressed')
  text_config.data.source = f'text:{tmp_path}/corpus/*'
  assert 'matches .txt (3), .xz (1) files; a text: source reads text files (' in _error(text_config)


def test_bytes_that_are_not_utf8_are_counted_not_fatal(text_config, tmp_path, caplog):
  pattern = write_corpus(str(tmp_path / 'latin'))
  with open(tmp_path / 'latin' / 'part0.txt', 'ab') as f:
    f.write(b'caf\xe9 au lait \xff.\n')
  text_config.data.source = f'text:{pattern}'
  with caplog.at_level(logging.WARNING):
    data.prepare(text_config)
  assert any('the corpus has 2 bytes that are not UTF-8' in r.getMessage() for r in caplog.records)


def test_a_single_gigantic_line_trains(text_config, tmp_path):
  with open(tmp_path / 'huge.txt', 'w', encoding='utf-8') as f:
    f.write('the model reads text and learns. ' * 200_000)  # 6.6 MB, no newline at all.
  text_config.data.source = f'text:{tmp_path}/huge.txt'
  assert next(data.prepare(text_config).train)['input_mask'].all()


def test_a_tokenizer_without_special_pieces(text_config, tmp_path):
  text_config.data.tokenizer = plain_sentencepiece_model(str(tmp_path / 'plain'))
  assert 'lacks the special pieces' in _error(text_config)


def test_a_vocabulary_larger_than_the_model(text_config):
  data.prepare(text_config)  # Trains and caches a tokenizer of about 70 pieces.
  [name] = os.listdir(os.path.join(text_config.data.data_dir, 'tokenizers'))[:1]
  text_config.data.tokenizer = os.path.join(text_config.data.data_dir, 'tokenizers',
                                            name.replace('.vocab', '.model'))
  text_config.model.vocab_size = 40
  message = _error(text_config)
  assert 'pieces but config.model.vocab_size=40' in message
  assert '--config.model.vocab_size=' in message


def test_a_truncated_array_record_file(text_config):
  data.prepare(text_config)
  [root] = os.listdir(os.path.join(text_config.data.data_dir, 'datasets'))
  path = os.path.join(text_config.data.data_dir, 'datasets', root, dataset.NAME, dataset.VERSION)
  [name] = [n for n in os.listdir(path) if '-train.' in n]
  with open(os.path.join(path, name), 'r+b') as f:
    f.truncate(100)
  assert 'is corrupt or truncated' in _error(text_config)


def test_a_tfds_name_that_is_not_available_offline(text_config, tmp_path):
  text_config.data.source = 'tfds:wikipedia/20230601.en'
  text_config.data.tfds_data_dir = str(tmp_path / 'empty')
  assert 'tfds:wikipedia/20230601.en is not prepared' in _error(text_config)


def _built(data_dir) -> list[str]:
  """What a run in data_dir takes as built (a finished build's dataset_info.json) and what builds
  left behind (incomplete.*)."""
  return sorted(glob.glob(os.path.join(data_dir, 'datasets', '*', dataset.NAME, '*.*.*',
                                       'dataset_info.json')) +
                glob.glob(os.path.join(data_dir, 'datasets', '*', dataset.NAME, 'incomplete.*')))


def test_parquet_and_jsonl_gz_corpora_train_and_a_rerun_reuses_the_built_data(config, tmp_path, caplog):
  from electra_jax import train  # pylint: disable=g-import-not-at-top
  texts = record_texts(tmp_path / 'text', documents=200)
  write_parquet(tmp_path / 'fineweb' / 'a.parquet', texts[:100], row_group_size=25)
  write_parquet(tmp_path / 'fineweb' / 'b.parquet', texts[100:], row_group_size=25)
  write_jsonl(tmp_path / 'c4' / 'c4-train.00000-of-00001.json.gz', texts)
  config.data.data_dir = str(tmp_path / 'data')
  config.data.eval_fraction, config.train.eval_batches = 0.2, 1
  config.train.steps, config.train.eval_every, config.train.checkpoint_every = 4, 2, 100
  config.data.build_processes = 1  # Cheaper; the next test builds with worker processes.
  config.data.source = f'parquet:{tmp_path}/fineweb/*.parquet'
  train.train_and_evaluate(config, str(tmp_path / 'parquet'))
  config.data.source = f'jsonl:{tmp_path}/c4/c4-train.*.json.gz'
  train.train_and_evaluate(config, str(tmp_path / 'jsonl'))
  for workdir in ('parquet', 'jsonl'):
    assert [r['step'] for r in read_metrics(tmp_path / workdir) if r['split'] == 'eval'] == [2, 4]
  built = {path: os.path.getmtime(path) for path in _built(config.data.data_dir)}
  assert len(built) == 2

  # Another run on the same data (the same steps, so that the compiled step is reused too).
  config.data.source = f'parquet:{tmp_path}/fineweb/*.parquet'
  caplog.clear()
  with caplog.at_level(logging.INFO):
    train.train_and_evaluate(config, str(tmp_path / 'again'))
  assert [r['step'] for r in read_metrics(tmp_path / 'again') if r['split'] == 'eval'] == [2, 4]
  assert {path: os.path.getmtime(path) for path in _built(config.data.data_dir)} == built
  assert any('reusing the built dataset' in r.getMessage() for r in caplog.records)
  assert not any('building the' in r.getMessage() for r in caplog.records)


def test_a_bad_record_met_by_a_build_worker_is_one_line_and_leaves_nothing_built(text_config, tmp_path,
                                                                                 caplog):
  from electra_jax.data import tokenizer as tokenizer_lib  # pylint: disable=g-import-not-at-top
  texts = record_texts(tmp_path / 'text', documents=100)
  tokenizer_lib.train((line for text in texts for line in text.splitlines()), 100, str(tmp_path / 'tok'))
  write_jsonl(tmp_path / 'records' / 'a.jsonl', texts[:50])
  path = tmp_path / 'records' / 'b.jsonl'
  write_jsonl(path, texts[50:])
  with open(path, 'a', encoding='utf-8') as f:
    f.write('{"text": "cut short\n')
  text_config.data.source = f'jsonl:{tmp_path}/records/*.jsonl'
  text_config.data.tokenizer = str(tmp_path / 'tok.model')  # The build's workers read first.
  text_config.data.build_processes = 2
  with pytest.raises(UserError) as e:
    data.prepare(text_config)
  assert isinstance(e.value.__cause__, multiprocessing.pool.RemoteTraceback)  # Raised in a worker.
  assert str(e.value).startswith(f'{path} line 51 is not valid JSON') and '\n' not in str(e.value)
  assert _built(text_config.data.data_dir) == []

  text_config.data.skip_bad_records, text_config.data.build_processes = True, 1
  with caplog.at_level(logging.WARNING):
    data.prepare(text_config)
  assert [r.getMessage() for r in caplog.records if 'bad records' in r.getMessage()] == [
      'skipped 1 bad records (config.data.skip_bad_records)']
