"""Raw text for pre-training: which lines a `config.data.source` names, read in parallelisable tasks.

A corpus is cut into tasks (a byte range of a text file, or a range of records of a TFDS dataset) so that
example building can run on every core and still give the same examples in the same order. Lines are
yielded in order; an empty line ends a document, as in the original ELECTRA input format.
"""

import codecs
import dataclasses
import glob
import hashlib
import json
import os
from typing import Iterator

from electra_jax.errors import UserError

TASK_BYTES = 32 << 20  # Text per task: small enough to balance cores, large enough to amortise startup.
TASK_RECORDS = 20_000  # TFDS records (documents) per task.
MAX_LINE = 4096  # Longer lines are read in pieces of this many bytes (characters for TFDS), bounding memory.

# Undecodable bytes become U+FFFD and are counted, per process; readers report the difference.
_replaced_bytes = [0]


def _replace_and_count(error: UnicodeDecodeError):
  _replaced_bytes[0] += error.end - error.start
  return '\ufffd', error.end


codecs.register_error('electra_jax.count', _replace_and_count)


def replaced_bytes() -> int:
  return _replaced_bytes[0]


@dataclasses.dataclass(frozen=True)
class Task:
  kind: str  # 'text' or 'tfds'.
  path: str  # The text file, or the TFDS dataset directory.
  start: int  # First byte (text) or record (tfds).
  end: int  # One past the last.
  text_feature: str = ''


@dataclasses.dataclass(frozen=True)
class Corpus:
  name: str  # Short and filesystem-safe: names the cached tokenizer and dataset directories.
  fingerprint: str  # Changes whenever the text may have changed.
  tasks: tuple[Task, ...]
  total_bytes: int  # Text bytes (text files); records count for TFDS sources.


def _slug(text: str) -> str:
  return ''.join(c if c.isalnum() or c in '-_.' else '_' for c in text).strip('_.')[:40] or 'corpus'


def _digest(obj) -> str:
  return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def from_text_files(pattern: str, name: str | None = None) -> Corpus:
  """The files matching `pattern`; fingerprinted by path, size and modification time."""
  paths = sorted(p for p in glob.glob(os.path.expanduser(pattern), recursive=True)
                 if os.path.isfile(p))
  if not paths:
    raise UserError(f'text:{pattern} matches no files; give a glob such as text:/data/*.txt')
  stats = [(os.path.abspath(p), os.stat(p)) for p in paths]
  total = sum(s.st_size for _, s in stats)
  if total == 0:
    raise UserError(f'text:{pattern}: all {len(paths)} matching files are empty')
  tasks = tuple(Task('text', path, start, min(start + TASK_BYTES, s.st_size))
                for path, s in stats for start in range(0, s.st_size, TASK_BYTES))
  fingerprint = _digest([(path, s.st_size, s.st_mtime_ns) for path, s in stats])
  if name is None:  # The glob's last literal path component: /data/wiki/*.txt -> wiki.
    parts = [p for p in pattern.split(os.sep) if p and not any(c in p for c in '*?[')]
    name = _slug(parts[-1] if parts else 'text')
  return Corpus(name, fingerprint, tasks, total)


def tfds_data_dir(configured: str) -> str:
  """A config's tfds_data_dir, or TFDS's own default."""
  return os.path.expanduser(configured or os.environ.get('TFDS_DATA_DIR', '~/tensorflow_datasets'))


def tfds_dataset_dir(name: str, data_dir: str) -> str:
  """The prepared directory of `name` ('dataset[/config][:version]') in data_dir, without downloads."""
  name, _, version = name.partition(':')
  base = os.path.join(data_dir, name)
  versions = [version] if version else sorted(
      (v for v in (os.listdir(base) if os.path.isdir(base) else [])
       if os.path.exists(os.path.join(base, v, 'dataset_info.json'))),
      key=lambda v: tuple(int(x) if x.isdigit() else 0 for x in v.split('.')))
  if not versions or not os.path.exists(os.path.join(base, versions[-1], 'dataset_info.json')):
    raise UserError(f'tfds:{name} is not prepared in {data_dir} (nothing is downloaded); prepare it '
                    f'there first (e.g. `tfds build {name.split("/")[0]} --data_dir={data_dir} '
                    '--file_format=array_record`) or set the config\'s tfds_data_dir')
  return os.path.join(base, versions[-1])


def tfds_builder(name: str, data_dir: str):
  """The TFDS builder of `name` prepared in data_dir as array_record, the format that reads without
  TensorFlow; UserError otherwise."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top  (heavy; only for tfds)
  directory = tfds_dataset_dir(name, data_dir)
  builder = tfds.builder_from_directory(directory)
  if builder.info.file_format != tfds.core.FileFormat.ARRAY_RECORD:
    raise UserError(f'tfds:{name} in {directory} is stored as {builder.info.file_format.value}, '
                    'which needs TensorFlow to read; rebuild it as array_record: `tfds build '
                    f'{name.split("/")[0]} --file_format=array_record` or `tfds convert_format '
                    f'--dataset_dir={directory} --out_file_format=array_record`')
  return builder


def tfds_split(builder, name: str, split: str):
  """A random-access source of one split's records; UserError naming the splits that exist."""
  if split not in builder.info.splits:
    raise UserError(f'tfds:{name} has no split {split!r} (it has {", ".join(builder.info.splits)})')
  return builder.as_data_source(split=split)


def tfds_text(value) -> str:
  """A TFDS text feature as str (array_record sources return bytes)."""
  return value.decode('utf-8') if isinstance(value, bytes) else str(value)


def from_tfds(name: str, data_dir: str, text_feature: str) -> Corpus:
  """The 'train' split of a prepared TFDS text dataset; each record is one document."""
  builder = tfds_builder(name, data_dir)
  directory = tfds_dataset_dir(name, data_dir)
  with open(os.path.join(directory, 'dataset_info.json'), encoding='utf-8') as f:
    info_json = f.read()
  if text_feature not in builder.info.features:
    raise UserError(f'tfds:{name} has no feature {text_feature!r} (it has '
                    f'{", ".join(builder.info.features)}); set --config.data.tfds_text_feature')
  records = builder.info.splits['train'].num_examples
  tasks = tuple(Task('tfds', directory, start, min(start + TASK_RECORDS, records), text_feature)
                for start in range(0, records, TASK_RECORDS))
  if not tasks:
    raise UserError(f'tfds:{name} has an empty train split')
  return Corpus(_slug(name.replace('/', '-')), _digest([directory, info_json, text_feature]),
                tasks, records)


def _text_lines(task: Task) -> Iterator[str]:
  """Lines whose first byte lies in [start, end): a line cut by `start` belongs to the task before."""
  decoder = codecs.getincrementaldecoder('utf-8')(errors='electra_jax.count')
  with open(task.path, 'rb') as f:
    if task.start:
      f.seek(task.start - 1)
      while (chunk := f.readline(MAX_LINE)) and not chunk.endswith(b'\n'):
        pass
    at_line_start = True
    while True:
      if at_line_start and f.tell() >= task.end:
        return
      chunk = f.readline(MAX_LINE)
      if not chunk:
        return
      at_line_start = chunk.endswith(b'\n')
      yield decoder.decode(chunk, final=at_line_start)


def _tfds_lines(task: Task) -> Iterator[str]:
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  source = tfds.builder_from_directory(task.path).as_data_source(split='train')
  for start in range(task.start, task.end, 256):
    for record in source.__getitems__(range(start, min(start + 256, task.end))):
      text = record[task.text_feature]
      text = text.decode('utf-8', 'electra_jax.count') if isinstance(text, bytes) else str(text)
      for line in text.splitlines():
        for piece in range(0, len(line), MAX_LINE):
          if line[piece:piece + MAX_LINE].strip():
            yield line[piece:piece + MAX_LINE]
      yield ''  # A record is a document.


def lines(task: Task) -> Iterator[str]:
  """The task's lines without their line ends; '' ends a document."""
  read = _text_lines if task.kind == 'text' else _tfds_lines
  for line in read(task):
    yield line.strip()
