import bz2
import glob
import gzip
import json
import os
import random
import re
import tracemalloc

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from electra_jax.data import corpus
from electra_jax.errors import UserError
from tests.conftest import write_corpus


def _all_lines(c):
  return [line for task in c.tasks for line in corpus.lines(task)]


def test_tasks_split_files_without_losing_or_repeating_lines(tmp_path, monkeypatch):
  pattern = write_corpus(str(tmp_path), files=2, documents=50)
  whole = _all_lines(corpus.from_text_files(pattern))
  monkeypatch.setattr(corpus, 'TASK_BYTES', 997)  # Cuts lines at arbitrary bytes.
  split = corpus.from_text_files(pattern)
  assert len(split.tasks) > 10
  assert _all_lines(split) == whole


def test_fingerprint_changes_with_the_files(tmp_path):
  pattern = write_corpus(str(tmp_path))
  before = corpus.from_text_files(pattern).fingerprint
  with open(tmp_path / 'part0.txt', 'a', encoding='utf-8') as f:
    f.write('one more line.\n')
  assert corpus.from_text_files(pattern).fingerprint != before


def test_a_glob_that_matches_nothing_is_an_error(tmp_path):
  with pytest.raises(UserError, match='matches no files'):
    corpus.from_text_files(str(tmp_path / '*.txt'))


def test_only_empty_files_is_an_error(tmp_path):
  for name in ('a.txt', 'b.txt'):
    (tmp_path / name).write_text('')
  with pytest.raises(UserError, match='all 2 matching files are empty'):
    corpus.from_text_files(str(tmp_path / '*.txt'))


def test_bytes_that_are_not_utf8_are_replaced_and_counted(tmp_path):
  (tmp_path / 'a.txt').write_bytes(b'caf\xe9 ok\nfine \xff\xfe line\n\xe2\x82\xac euro\n')
  before = corpus.replaced_bytes()
  lines = _all_lines(corpus.from_text_files(str(tmp_path / 'a.txt')))
  assert lines == ['caf\ufffd ok', 'fine \ufffd\ufffd line', '\u20ac euro']
  assert corpus.replaced_bytes() - before == 3

  (tmp_path / 'a.txt').write_bytes(b'cut at the end \xe2\x82')  # No line end after half a euro.
  before = corpus.replaced_bytes()
  assert ''.join(_all_lines(corpus.from_text_files(str(tmp_path / 'a.txt')))) == 'cut at the end\ufffd'
  assert corpus.replaced_bytes() - before == 2


def test_a_gigantic_line_is_read_in_bounded_pieces(tmp_path):
  path = tmp_path / 'huge.txt'
  with open(path, 'w', encoding='utf-8') as f:
    for _ in range(2000):
      f.write('\u00e9word ' * 2000)  # 26 MB on one line; multi-byte characters cross piece ends.
    f.write('\nlast line\n')
  tracemalloc.start()
  count, longest, replaced = 0, 0, corpus.replaced_bytes()
  for line in corpus.lines(corpus.from_text_files(str(path)).tasks[0]):
    count, longest = count + 1, max(longest, len(line))
  _, peak = tracemalloc.get_traced_memory()
  tracemalloc.stop()
  assert longest <= corpus.MAX_LINE and count > 5000
  assert corpus.replaced_bytes() == replaced  # No character was cut in half.
  assert peak < 5 << 20, peak


def _long_lines_text(rng, piece: int, last_line_end: str = '\n') -> str:
  """Documents of lines whose lengths in bytes lie around multiples of `piece` (multi-byte characters,
  trailing whitespace, CRLF, whitespace runs longer than a piece), separated by blank lines of every
  kind, whitespace-only ones longer than a piece included."""
  def line(size: int, end: str) -> str:  # `size` bytes, `end` included.
    chars, left = ['w'], size - 1 - len(end.encode())
    while left > 4:
      chars.append(rng.choice('abc  de\t\u00e9\u20ac\U0001f600'))
      left -= len(chars[-1].encode())
    return ''.join(chars) + 'x' * left + end
  ends = ('\n', '\r\n', '   \n', ' \t\r\n')
  lines = [line(k * piece + d, end) for k in (1, 2, 3) for d in (-2, -1, 0, 1, 2) for end in ends]
  lines += [line(rng.randint(6, 4 * piece), rng.choice(ends)) for _ in range(40)]
  lines += ['a' + ' ' * (2 * piece + 3) + 'b\n', 'x' * (piece - 2) + '\U0001f600' * 3 + '\r\n']
  rng.shuffle(lines)
  blanks = ('\n', '\r\n', '  \n', ' ' * (2 * piece) + '\n', ' ' * piece + '\r\n', '\n\n')
  text = ''
  while lines:
    size = rng.randint(1, 6)
    text += ''.join(lines[:size]) + rng.choice(blanks)
    del lines[:size]
  return text + line(piece + 1, last_line_end)


def _documents(lines) -> list[str]:
  """Each document's text without whitespace (all that cutting lines into pieces keeps): a blank line
  ends a document, so two in a row give an empty one."""
  documents = ['']
  for line in lines:
    if line.strip():
      documents[-1] += ''.join(line.split())
    else:
      documents.append('')
  return documents


@pytest.mark.parametrize('piece', [16, 4096])
def test_long_lines_keep_their_text_and_documents_whatever_their_length(tmp_path, monkeypatch, piece):
  monkeypatch.setattr(corpus, 'MAX_LINE', piece)
  rng = random.Random(piece)
  texts = {'a.txt': _long_lines_text(rng, piece), 'b.txt': _long_lines_text(rng, piece, last_line_end='')}
  for name, text in texts.items():
    (tmp_path / name).write_bytes(text.encode())
  (tmp_path / 'c.txt.gz').write_bytes(gzip.compress(texts['a.txt'].encode()))
  texts['c.txt.gz'] = texts['a.txt']
  replaced = corpus.replaced_bytes()
  for task_bytes in (corpus.TASK_BYTES, 3 * piece + 7):  # Also tasks that start inside long lines.
    monkeypatch.setattr(corpus, 'TASK_BYTES', task_bytes)
    c = corpus.from_text_files(str(tmp_path / '*'))
    for name, text in texts.items():
      read = [line for task in c.tasks if task.path == str(tmp_path / name) for line in corpus.lines(task)]
      assert all(line == line.strip() and len(line) <= piece for line in read)
      lines = text.split('\n')
      assert _documents(read) == _documents(lines[:-1] if text.endswith('\n') else lines), name
  assert corpus.replaced_bytes() == replaced  # No character cut by a piece's end was lost.


def test_a_tfds_dataset_that_is_not_prepared_is_one_error_and_no_download(tmp_path):
  with pytest.raises(UserError, match='tfds:wikipedia/20230601.en is not prepared in'):
    corpus.from_tfds('wikipedia/20230601.en', str(tmp_path), 'text')


def _tfds_text_dataset(data_dir):
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  class TinyText(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    VERSION = tfds.core.Version('1.0.0')

    def _info(self):
      return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(
          {'text': tfds.features.Text(), 'id': np.int32}))

    def _split_generators(self, dl_manager):
      return {'train': self._generate_examples()}

    def _generate_examples(self):
      for i in range(30):
        yield i, {'text': f'Document {i} first line.\nIts second line.\n\nA third.', 'id': i}

  TinyText(data_dir=data_dir, file_format='array_record').download_and_prepare()
  return os.path.join(data_dir, 'tiny_text', '1.0.0')


def test_a_prepared_tfds_dataset_gives_one_document_per_record(tmp_path):
  _tfds_text_dataset(str(tmp_path))
  c = corpus.from_tfds('tiny_text', str(tmp_path), 'text')
  lines = _all_lines(c)
  assert len(lines) == 30 * 4 and lines.count('') == 30
  # Blank lines inside a record do not split it: the record is the document.
  assert lines[1:4] == ['Its second line.', 'A third.', '']
  assert lines[0].startswith('Document ') and lines[0].endswith(' first line.')
  with pytest.raises(UserError, match="no feature 'body'"):
    corpus.from_tfds('tiny_text', str(tmp_path), 'body')


def test_a_tfrecord_only_tfds_dataset_says_how_to_rebuild(tmp_path):
  directory = _tfds_text_dataset(str(tmp_path))
  info_path = os.path.join(directory, 'dataset_info.json')
  with open(info_path, encoding='utf-8') as f:
    info = f.read().replace('"fileFormat": "array_record"', '"fileFormat": "tfrecord"')
  with open(info_path, 'w', encoding='utf-8') as f:
    f.write(info)
  with pytest.raises(UserError, match='stored as tfrecord.*rebuild it as array_record'):
    corpus.from_tfds('tiny_text', str(tmp_path), 'text')


def record_texts(directory, documents=40) -> list[str]:
  """Documents of a generated text corpus, each as a record holds it: its lines joined by newlines."""
  [path] = glob.glob(write_corpus(str(directory), files=1, documents=documents))
  with open(path, encoding='utf-8') as f:
    return [document for document in f.read().split('\n\n') if document.strip()]


def write_jsonl(path, texts, field='text') -> str:
  """JSON lines, compressed by the name's suffix (.gz, .bz2, .zst)."""
  data = ''.join(json.dumps({'id': i, field: text}) + '\n' for i, text in enumerate(texts)).encode()
  compress = {'.gz': gzip.compress, '.bz2': bz2.compress,
              '.zst': lambda d: zstandard.ZstdCompressor().compress(d)}.get(os.path.splitext(path)[1])
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'wb') as f:
    f.write(compress(data) if compress else data)
  return str(path)


def write_parquet(path, texts, field='text', row_group_size=16) -> str:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  pq.write_table(pa.table({'id': list(range(len(texts))), field: texts}), str(path),
                 row_group_size=row_group_size)
  return str(path)


def test_records_in_jsonl_parquet_and_compressed_files_read_like_the_text(tmp_path):
  texts = record_texts(tmp_path / 'text')
  want = _all_lines(corpus.from_text_files(str(tmp_path / 'text' / '*.txt')))
  with open(tmp_path / 'text.txt.gz', 'wb') as f:
    f.write(gzip.compress((tmp_path / 'text' / 'part0.txt').read_bytes()))
  assert _all_lines(corpus.from_text_files(str(tmp_path / 'text.txt.gz'))) == want
  for name in ('a.jsonl', 'a.jsonl.gz', 'a.json.zst', 'a.jsonl.bz2'):
    write_jsonl(tmp_path / name, texts)
    assert _all_lines(corpus.from_files('jsonl', str(tmp_path / name))) == want, name
  write_parquet(tmp_path / 'a.parquet', texts)
  parquet = corpus.from_files('parquet', str(tmp_path / 'a.parquet'))
  assert _all_lines(parquet) == want
  assert parquet.total_bytes == os.path.getsize(tmp_path / 'a.parquet')
  fingerprints = {corpus.from_files('jsonl', str(tmp_path / 'a.jsonl')).fingerprint,
                  corpus.from_files('jsonl', str(tmp_path / 'a.jsonl'), 'body').fingerprint,
                  parquet.fingerprint}
  assert len(fingerprints) == 3


def test_records_split_into_tasks_without_losing_or_repeating_any(tmp_path, monkeypatch):
  texts = record_texts(tmp_path / 'text', documents=80)
  write_jsonl(tmp_path / 'a.jsonl', texts)
  write_jsonl(tmp_path / 'b.jsonl.gz', texts)
  write_parquet(tmp_path / 'a.parquet', texts, row_group_size=8)
  wholes = {kind: _all_lines(corpus.from_files(kind, str(tmp_path / pattern)))
            for kind, pattern in (('jsonl', '*.json*'), ('parquet', '*.parquet'))}
  monkeypatch.setattr(corpus, 'TASK_BYTES', 997)  # Cuts JSON lines at arbitrary bytes.
  jsonl = corpus.from_files('jsonl', str(tmp_path / '*.json*'))
  assert sum(t.path.endswith('.gz') for t in jsonl.tasks) == 1  # A compressed file is one task.
  assert len(jsonl.tasks) > 10 and _all_lines(jsonl) == wholes['jsonl']
  monkeypatch.setattr(corpus, 'TASK_BYTES', 1 << 20)
  monkeypatch.setattr(corpus, 'TASK_RECORDS', 20)  # Runs of row groups (of 8 rows each).
  parquet = corpus.from_files('parquet', str(tmp_path / '*.parquet'))
  assert [(t.start, t.end) for t in parquet.tasks] == [(0, 3), (3, 6), (6, 9), (9, 10)]
  assert _all_lines(parquet) == wholes['parquet']


def test_records_without_text_are_skipped_and_counted(tmp_path):
  write_jsonl(tmp_path / 'a.jsonl', ['one line.', '', ' \n\n ', 'two\n\nlines.'])
  before = corpus.counts()
  assert _all_lines(corpus.from_files('jsonl', str(tmp_path / 'a.jsonl'))) == [
      'one line.', '', 'two', 'lines.', '']
  assert corpus.counts()['empty_records'] - before['empty_records'] == 2


def test_a_parquet_file_without_a_text_column_of_strings(tmp_path):
  path = write_parquet(tmp_path / 'a.parquet', ['some text.'], field='content')
  with pytest.raises(UserError, match=re.escape(
      f"{path} has no column 'text' (it has id, content); set --config.data.text_field")):
    corpus.from_files('parquet', path)
  with pytest.raises(UserError, match=re.escape(f"{path}: the column 'id' holds int64, not strings")):
    corpus.from_files('parquet', path, 'id')


def test_bad_records_stop_naming_file_and_line_or_are_skipped_and_counted(tmp_path, monkeypatch):
  good = [json.dumps({'text': f'record {i} is fine.'}) for i in range(30)]
  bad = ['{"text": "unterminated', '["an", "array"]', '{"body": "elsewhere", "id": 7}',
         '{"text": null}']
  problems = ['is not valid JSON', 'is an array, not an object', "has no 'text' (it has body, id)",
              "has null as 'text', not a string"]
  monkeypatch.setattr(corpus, 'TASK_BYTES', 300)  # The bad line is found by a task that starts midway.
  for line, problem in zip(bad, problems):
    for suffix, compress in (('.jsonl', lambda d: d), ('.jsonl.gz', gzip.compress)):
      path = tmp_path / f'bad{suffix}'
      path.write_bytes(compress('\n'.join(good[:20] + [line] + good[20:]).encode() + b'\n'))
      with pytest.raises(UserError, match=re.escape(f'{path} line 21 {problem}') +
                         r'.*set --config\.data\.skip_bad_records=True to skip such records'):
        _all_lines(corpus.from_files('jsonl', str(path)))
      before = corpus.counts()['bad_records']
      assert len(_all_lines(corpus.from_files('jsonl', str(path), skip_bad_records=True))) == 60
      assert corpus.counts()['bad_records'] - before == 1
  path = write_parquet(tmp_path / 'nulls.parquet', ['fine.', None, 'fine too.'])
  with pytest.raises(UserError, match=re.escape(f"{path} row 2 has null as 'text'")):
    _all_lines(corpus.from_files('parquet', path))
  assert _all_lines(corpus.from_files('parquet', path, skip_bad_records=True)) == [
      'fine.', '', 'fine too.', '']


@pytest.mark.parametrize('suffix', ['.gz', '.zst', '.bz2'])
def test_a_truncated_compressed_file_is_named(tmp_path, suffix):
  path = write_jsonl(tmp_path / f'a.jsonl{suffix}', [f'document {i}.' for i in range(3000)])
  with open(path, 'r+b') as f:
    f.truncate(os.path.getsize(path) // 2)
  with pytest.raises(UserError, match=re.escape(f'{path} is truncated or corrupt (')):
    _all_lines(corpus.from_files('jsonl', path))


def test_a_glob_of_another_format_names_the_suffixes_it_matched(tmp_path):
  write_jsonl(tmp_path / 'a.jsonl', ['text.'])
  write_parquet(tmp_path / 'b.parquet', ['text.'])
  (tmp_path / 'c.txt').write_text('text.\n')
  (tmp_path / 'd.parquet.gz').write_bytes(gzip.compress(b'not parquet'))
  with pytest.raises(UserError, match=re.escape(
      f'jsonl:{tmp_path}/* matches .jsonl (1), .parquet (1), .parquet.gz (1), .txt (1) files; a '
      'jsonl: source reads JSON lines')):
    corpus.from_files('jsonl', f'{tmp_path}/*')
  with pytest.raises(UserError, match=r'matches \.parquet \(1\), \.parquet\.gz \(1\) files; a parquet:'):
    corpus.from_files('parquet', f'{tmp_path}/*.parquet*')
  with pytest.raises(UserError, match=r'matches \.jsonl \(1\), \.txt \(1\) files; a text: source'):
    corpus.from_text_files(f'{tmp_path}/[ac].*')


def test_a_text_glob_with_archives_or_compressions_we_do_not_read_names_their_suffixes(tmp_path):
  (tmp_path / 'a.txt').write_text('text.\n')
  for name in ('b.txt.xz', 'c.txt.lz4', 'd.zip', 'e.tar.gz', 'f.7z'):
    (tmp_path / name).write_bytes(b'\xfd7zXZ\x00\x00 and more binary')
  with pytest.raises(UserError, match=re.escape(
      f'text:{tmp_path}/* matches .7z (1), .lz4 (1), .tar.gz (1), .txt (1), .xz (1), .zip (1) files; a '
      'text: source reads text files (') + r'.*\), optionally \.gz, \.zst or \.bz2: narrow the glob'):
    corpus.from_text_files(f'{tmp_path}/*')
  assert _all_lines(corpus.from_text_files(f'{tmp_path}/*.txt')) == ['text.']
