"""Raw text for pre-training: which lines a `config.data.source` names, read in parallelisable tasks.

A corpus is cut into tasks (a byte range of a text or JSON-lines file, a whole compressed file, a few
row groups of a parquet file, or a range of records of a TFDS dataset) so that example building can
run on every core and still give the same examples in the same order. Lines are yielded in order; an
empty line ends a document, as in the original ELECTRA input format. A record (JSON line, parquet row,
TFDS record) is one document, its lines the sentences.
"""

import bz2
import codecs
import collections
import dataclasses
import glob
import gzip
import hashlib
import io
import json
import math
import os
import zlib
from typing import Iterator

from electra_jax.errors import UserError

TASK_BYTES = 32 << 20  # Text per task: small enough to balance cores, large enough to amortise startup.
TASK_RECORDS = 20_000  # Records (documents) per task of TFDS and parquet sources.
MAX_LINE = 4096  # Longer lines are read in pieces of this many bytes (characters in records): bounded memory.

# What reading met, per process (workers report the difference): undecodable bytes (read as U+FFFD),
# records skipped as bad (config.data.skip_bad_records) and records without text.
_counts = {'replaced_bytes': 0, 'bad_records': 0, 'empty_records': 0}


def _replace_and_count(error: UnicodeDecodeError):
  _counts['replaced_bytes'] += error.end - error.start
  return '\ufffd', error.end


codecs.register_error('electra_jax.count', _replace_and_count)


def replaced_bytes() -> int:
  return _counts['replaced_bytes']


def counts() -> dict[str, int]:
  return dict(_counts)


@dataclasses.dataclass(frozen=True)
class Task:
  kind: str  # 'text', 'jsonl', 'parquet' or 'tfds'.
  path: str  # The file, or the TFDS dataset directory.
  start: int  # First byte (text, jsonl), row group (parquet) or record (tfds).
  end: int  # One past the last; a compressed file is read whole.
  text_feature: str = ''  # The key (jsonl), column (parquet) or feature (tfds) that holds the text.
  skip_bad: bool = False  # Count and skip bad records instead of stopping.


@dataclasses.dataclass(frozen=True)
class Corpus:
  name: str  # Short and filesystem-safe: names the cached tokenizer and dataset directories.
  fingerprint: str  # Changes whenever the text may have changed.
  tasks: tuple[Task, ...]
  total_bytes: int  # File bytes (files, compressed or not); records count for TFDS sources.


def _slug(text: str) -> str:
  return ''.join(c if c.isalnum() or c in '-_.' else '_' for c in text).strip('_.')[:40] or 'corpus'


def _digest(obj) -> str:
  return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


class _ZstdReader(io.RawIOBase):
  """A .zst file's frames, decompressed in turn. zstandard's own stream_reader ends quietly where a
  truncated file ends; this raises EOFError there, as gzip and bz2 do."""

  def __init__(self, path: str):
    import zstandard  # pylint: disable=g-import-not-at-top  (only for .zst files)
    super().__init__()
    self._file = open(path, 'rb')  # pylint: disable=consider-using-with  (closed by close())
    self._new_frame, self._errors = zstandard.ZstdDecompressor().decompressobj, zstandard.ZstdError
    self._frame, self._in_frame, self._pending = self._new_frame(), False, memoryview(b'')

  def readable(self) -> bool:
    return True

  def readinto(self, buffer) -> int:
    while not self._pending:
      rest = b''
      if self._frame.eof:  # The next frame begins with what this one did not use.
        rest, self._frame, self._in_frame = self._frame.unused_data, self._new_frame(), False
      data = rest or self._file.read(1 << 16)
      if not data:
        if self._in_frame:
          raise EOFError('the file ends inside a zstd frame')
        return 0
      self._in_frame = True
      try:
        self._pending = memoryview(self._frame.decompress(data))
      except self._errors as e:
        raise OSError(str(e)) from e
    n = min(len(buffer), len(self._pending))
    buffer[:n], self._pending = self._pending[:n], self._pending[n:]
    return n

  def close(self) -> None:
    self._file.close()
    super().close()


_DECOMPRESS = {'.gz': lambda path: gzip.open(path, 'rb'), '.bz2': lambda path: bz2.open(path, 'rb'),
               '.zst': lambda path: io.BufferedReader(_ZstdReader(path), 1 << 16)}
_FORMAT_SUFFIXES = {'jsonl': ('.jsonl', '.json'), 'parquet': ('.parquet',)}
# Archives and compressions without a _DECOMPRESS entry: read as text, they would give binary noise.
_UNREAD_PACKINGS = ('.xz', '.lzma', '.lz4', '.lz', '.z', '.br', '.zip', '.7z', '.rar', '.tar', '.tgz',
                    '.tbz2', '.txz')
_READS = {'text': 'text files (not .jsonl, .json, .parquet, nor archives or other compressions such as '
                  '.xz, .lz4, .zip, .7z, .tar), optionally .gz, .zst or .bz2',
          'jsonl': 'JSON lines: .jsonl or .json, optionally .gz, .zst or .bz2',
          'parquet': '.parquet files'}
_EXAMPLE_SUFFIX = {'text': '.txt', 'jsonl': '.jsonl.gz', 'parquet': '.parquet'}


def _suffixes(path: str) -> tuple[str, str]:
  """(format suffix, compression suffix or ''): 'c4-train.0.json.gz' -> ('.json', '.gz')."""
  stem, last = os.path.splitext(path.lower())
  return (os.path.splitext(stem)[1], last) if last in _DECOMPRESS else (last, '')


def _readable(kind: str, path: str) -> bool:
  suffix, compression = _suffixes(path)
  if kind == 'text':
    return suffix not in _UNREAD_PACKINGS and not any(suffix in s for s in _FORMAT_SUFFIXES.values())
  return suffix in _FORMAT_SUFFIXES[kind] and not (kind == 'parquet' and compression)


def _open(path: str):
  """The file's bytes as a stream, decompressed by its suffix."""
  return _DECOMPRESS.get(_suffixes(path)[1], lambda p: open(p, 'rb'))(path)


def from_files(kind: str, pattern: str, text_field: str = 'text', skip_bad_records: bool = False,
               name: str | None = None) -> Corpus:
  """The files matching `pattern`, read as `kind` ('text', 'jsonl' or 'parquet'); fingerprinted by
  path, size and modification time (and, for records, the field that holds the text and whether bad
  records are skipped)."""
  source = f'{kind}:{pattern}'
  paths = sorted(p for p in glob.glob(os.path.expanduser(pattern), recursive=True)
                 if os.path.isfile(p))
  if not paths:
    raise UserError(f'{source} matches no files; give a glob such as {kind}:/data/*'
                    f'{_EXAMPLE_SUFFIX[kind]}')
  if not all(_readable(kind, p) for p in paths):
    found = collections.Counter(''.join(_suffixes(p)) or '(no suffix)' for p in paths)
    raise UserError(f'{source} matches {", ".join(f"{s} ({n})" for s, n in sorted(found.items()))} '
                    f'files; a {kind}: source reads {_READS[kind]}: narrow the glob to those')
  stats = [(os.path.abspath(p), os.stat(p)) for p in paths]
  tasks = []
  for path, s in stats:
    if kind == 'parquet':
      tasks += _parquet_tasks(path, text_field, skip_bad_records)
    elif _suffixes(path)[1] and s.st_size:  # A compressed stream cannot start midway.
      tasks.append(Task(kind, path, 0, s.st_size, text_field, skip_bad_records))
    else:
      tasks += [Task(kind, path, start, min(start + TASK_BYTES, s.st_size), text_field, skip_bad_records)
                for start in range(0, s.st_size, TASK_BYTES)]
  if not tasks:
    raise UserError(f'{source}: all {len(paths)} matching files are empty')
  files = [(path, s.st_size, s.st_mtime_ns) for path, s in stats]
  # skip_bad_records is part of it: a dataset built skipping bad records must not hide the error that a
  # run that stops at them would meet. Text files have no records.
  fingerprint = _digest(files if kind == 'text' else [kind, text_field, skip_bad_records, files])
  if name is None:  # The glob's last literal path component: /data/wiki/*.txt -> wiki.
    parts = [p for p in pattern.split(os.sep) if p and not any(c in p for c in '*?[')]
    name = _slug(parts[-1] if parts else kind)
  return Corpus(name, fingerprint, tuple(tasks), sum(s.st_size for _, s in stats))


def from_text_files(pattern: str, name: str | None = None) -> Corpus:
  """The text files matching `pattern`; see from_files."""
  return from_files('text', pattern, name=name)


def _parquet_tasks(path: str, field: str, skip_bad: bool) -> list[Task]:
  """Runs of consecutive row groups of about TASK_BYTES of text or TASK_RECORDS rows, after checking
  the text column (the footer only: nothing else is read here)."""
  import pyarrow as pa  # pylint: disable=g-import-not-at-top  (heavy; only for parquet)
  import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top
  try:
    with pq.ParquetFile(path) as parquet:
      schema, metadata = parquet.schema_arrow, parquet.metadata
  except (OSError, pa.ArrowException) as e:
    raise UserError(f'{path} is not a readable parquet file ({str(e).splitlines()[0]})') from None
  if field not in schema.names:
    raise UserError(f'{path} has no column {field!r} (it has {", ".join(schema.names)}); set '
                    '--config.data.text_field to the text column')
  column_type = schema.field(field).type
  if not (pa.types.is_string(column_type) or pa.types.is_large_string(column_type)):
    raise UserError(f'{path}: the column {field!r} holds {column_type}, not strings; set '
                    '--config.data.text_field to a text column')
  column = [metadata.schema.column(i).path for i in range(metadata.num_columns)].index(field)
  tasks, start, size, rows = [], 0, 0, 0
  for group in range(metadata.num_row_groups):
    size += metadata.row_group(group).column(column).total_uncompressed_size
    rows += metadata.row_group(group).num_rows
    if size >= TASK_BYTES or rows >= TASK_RECORDS or group == metadata.num_row_groups - 1:
      if rows:
        tasks.append(Task('parquet', path, start, group + 1, field, skip_bad))
      start, size, rows = group + 1, 0, 0
  return tasks


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


def _byte_lines(task: Task, limit: int) -> Iterator[tuple[int, bytes]]:
  """(offset, line) of each line whose first byte lies in [start, end) (a line cut by `start` belongs
  to the task before), in pieces of at most `limit` bytes (-1: whole lines). A compressed file is one
  task; its offsets count decompressed bytes."""
  compressed = bool(_suffixes(task.path)[1])
  end = math.inf if compressed else task.end
  with _open(task.path) as f:
    try:
      if task.start:
        f.seek(task.start - 1)
        while (chunk := f.readline(MAX_LINE)) and not chunk.endswith(b'\n'):
          pass
      offset, at_line_start = (0 if compressed else f.tell()), True
      while not (at_line_start and offset >= end):
        chunk = f.readline(limit)
        if not chunk:
          return
        yield offset, chunk
        offset += len(chunk)
        at_line_start = chunk.endswith(b'\n')
    except (EOFError, OSError, zlib.error) as e:
      if not compressed:
        raise
      raise UserError(f'{task.path} is truncated or corrupt ({e}); fetch or compress it again, or '
                      'leave it out of the glob') from None


def _line_number(path: str, offset: int) -> int:
  """The number of the line at decompressed byte `offset` (only for errors: it reads up to there)."""
  newlines = 0
  with _open(path) as f:
    while offset > 0 and (chunk := f.read(min(offset, 1 << 20))):
      newlines, offset = newlines + chunk.count(b'\n'), offset - len(chunk)
  return newlines + 1


def _text_lines(task: Task) -> Iterator[str]:
  """Each line, long ones as their pieces that hold more than whitespace: a whitespace-only piece of a
  long line (its line end alone, say) is not a blank line. A line without text is ''."""
  decoder = codecs.getincrementaldecoder('utf-8')(errors='electra_jax.count')
  blank = True  # No piece of the current line has held text yet.
  for _, chunk in _byte_lines(task, MAX_LINE):
    line_ends = chunk.endswith(b'\n')
    piece = decoder.decode(chunk, final=line_ends)
    if piece.strip():
      blank = False
      yield piece
    elif blank and line_ends:
      yield ''
    if line_ends:
      blank = True
  if (rest := decoder.decode(b'', final=True)).strip():  # A character cut by the end of the file.
    yield rest


def _bad_record(task: Task, problem: str, *, offset: int = 0, row: int = 0) -> None:
  """Counts a bad record if the task skips them; else stops, naming its row or its line (that of
  decompressed byte `offset`: counting lines costs a read of the file up to there, so only now)."""
  if not task.skip_bad:
    where = f'row {row}' if row else f'line {_line_number(task.path, offset)}'
    raise UserError(f'{task.path} {where} {problem}, or set --config.data.skip_bad_records=True to '
                    'skip such records')
  _counts['bad_records'] += 1


_JSON_TYPES = {dict: 'an object', list: 'an array', str: 'a string', int: 'a number', float: 'a number',
               bool: 'a boolean', type(None): 'null'}


def _json_text(line: bytes, field: str) -> tuple[str, str]:
  """(the text, '') of a JSON line, or ('', what is wrong with it)."""
  try:
    record = json.loads(line.rstrip(b'\r\n').decode('utf-8', 'electra_jax.count'))
  except json.JSONDecodeError as e:
    return '', (f'is not valid JSON ({e.msg}: column {e.colno}; a jsonl: source reads one object '
                'per line): fix it')
  if not isinstance(record, dict):
    return '', f'is {_JSON_TYPES[type(record)]}, not an object: fix it'
  if field not in record:
    return '', (f'has no {field!r} (it has {", ".join(record)[:200]}): set --config.data.text_field to '
                'the key of the text')
  if not isinstance(record[field], str):
    return '', (f'has {_JSON_TYPES[type(record[field])]} as {field!r}, not a string: set '
                '--config.data.text_field to the key of the text')
  return record[field], ''


def _jsonl_texts(task: Task) -> Iterator[str]:
  for offset, line in _byte_lines(task, -1):
    if line.strip():
      text, problem = _json_text(line, task.text_feature)
      if problem:
        _bad_record(task, problem, offset=offset)
      else:
        yield text


def _parquet_texts(task: Task) -> Iterator[str]:
  import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top
  with pq.ParquetFile(task.path) as parquet:
    row = sum(parquet.metadata.row_group(g).num_rows for g in range(task.start))
    for group in range(task.start, task.end):
      # One row group at a time (the text's column only), converted in small batches.
      for batch in parquet.read_row_group(group, columns=[task.text_feature]).to_batches(1024):
        for text in batch.column(0).to_pylist():
          row += 1
          if text is None:
            _bad_record(task, f'has null as {task.text_feature!r}: fix it', row=row)
          else:
            yield text


def _tfds_texts(task: Task) -> Iterator[str]:
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  source = tfds.builder_from_directory(task.path).as_data_source(split='train')
  for start in range(task.start, task.end, 256):
    for record in source.__getitems__(range(start, min(start + 256, task.end))):
      text = record[task.text_feature]
      yield text.decode('utf-8', 'electra_jax.count') if isinstance(text, bytes) else str(text)


def _document_lines(texts: Iterator[str]) -> Iterator[str]:
  """Each text is one document: its non-empty lines (long ones in MAX_LINE-character pieces), then
  ''. Texts with no such line are counted and give nothing."""
  for text in texts:
    empty = True
    for line in text.splitlines():
      for piece in range(0, len(line), MAX_LINE):
        if line[piece:piece + MAX_LINE].strip():
          empty = False
          yield line[piece:piece + MAX_LINE]
    if empty:
      _counts['empty_records'] += 1
    else:
      yield ''


_RECORDS = {'jsonl': _jsonl_texts, 'parquet': _parquet_texts, 'tfds': _tfds_texts}


def lines(task: Task) -> Iterator[str]:
  """The task's lines without their line ends; '' ends a document."""
  read = _text_lines(task) if task.kind == 'text' else _document_lines(_RECORDS[task.kind](task))
  for line in read:
    yield line.strip()
