import os
import tracemalloc

import pytest

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
