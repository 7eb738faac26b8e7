"""Data pipeline throughput: building examples from text, and loading them as device-ready batches.

  python -m electra_jax.data.bench [--text_mb=16 --seq_len=128 --batch_size=256 --processes=1]

The corpus is the builtin one, repeated up to --text_mb, as a text file and (--record_formats) as the
same documents in records: parquet, zstd-compressed JSON lines. Build throughput is text MB per second
of the whole dataset build (reading, tokenizing, example building, TFDS writing) with --processes
builders; load throughput is tokens per second of global jax.Arrays delivered to the devices by one
reading thread. The last line is one JSON object.
"""

import json
import os
import sys
import tempfile
import time

from absl import flags, logging
import jax
import ml_collections

from electra_jax import cli, sharding
from electra_jax.data import Placement, builtin, corpus, dataset, pipeline
from electra_jax.data import tokenizer as tokenizer_lib

_TEXT_MB = flags.DEFINE_float('text_mb', 16, 'MB of text to build (the builtin corpus, repeated).')
_SEQ_LEN = flags.DEFINE_integer('seq_len', 128, 'Tokens per example.')
_BATCH_SIZE = flags.DEFINE_integer('batch_size', 256, 'Global batch size while loading.')
_LOAD_STEPS = flags.DEFINE_integer('load_steps', 300, 'Batches timed while loading.')
_PROCESSES = flags.DEFINE_integer('processes', 1, 'Example-building processes.')
_VOCAB_SIZE = flags.DEFINE_integer('vocab_size', 8192, 'Pieces of the tokenizer trained first.')
_RECORD_FORMATS = flags.DEFINE_list('record_formats', ['parquet', 'jsonl.zst'],
                                    "The text's documents as records, built too: parquet, jsonl.zst.")
flags.register_validator('record_formats', lambda names: set(names) <= {'parquet', 'jsonl.zst'},
                         'record_formats are parquet and/or jsonl.zst')


def _repeat_builtin(directory: str, text_mb: float) -> corpus.Corpus:
  with open(builtin.extract(directory), encoding='utf-8') as f:
    text = f.read()
  path = os.path.join(directory, 'bench.txt')
  with open(path, 'w', encoding='utf-8') as f:
    for _ in range(max(1, round(text_mb * 1e6 / len(text.encode('utf-8'))))):
      f.write(text)
  return corpus.from_text_files(path, name='bench')


def _as_records(text_path: str, record_format: str, parts: int) -> corpus.Corpus:
  """The text file's documents as records in `parts` files (so that every builder has one)."""
  import pyarrow as pa  # pylint: disable=g-import-not-at-top
  import pyarrow.parquet as pq  # pylint: disable=g-import-not-at-top
  import zstandard  # pylint: disable=g-import-not-at-top
  with open(text_path, encoding='utf-8') as f:
    documents = [document for document in f.read().split('\n\n') if document.strip()]
  directory = os.path.join(os.path.dirname(text_path), record_format)
  os.makedirs(directory)
  size = -(-len(documents) // parts)
  for part in range(parts):
    texts = documents[part * size:(part + 1) * size]
    path = os.path.join(directory, f'{part}.{record_format}')
    if record_format == 'parquet':
      pq.write_table(pa.table({'text': texts}), path, row_group_size=1000)
    else:
      with open(path, 'wb') as f, zstandard.ZstdCompressor().stream_writer(f) as out:
        for text in texts:
          out.write(json.dumps({'text': text}).encode() + b'\n')
  kind = record_format.split('.')[0]
  return corpus.from_files(kind, os.path.join(directory, '*'), name=f'bench-{kind}')


def _load_tokens_per_sec(path: str) -> float:
  mesh = sharding.make_mesh(ml_collections.ConfigDict(
      {'data': -1, 'fsdp': 1, 'tensor': 1, 'dcn_data': 1, 'dcn_fsdp': 1, 'dcn_tensor': 1}))
  placement = Placement(sharding.batch_sharding(mesh, (('batch', ('data',)),)), _BATCH_SIZE.value)
  split = dataset.open_split(path, 'train')
  batches = pipeline.TrainBatches(
      len(split), pipeline.reader(split, _SEQ_LEN.value), dataset_key='bench',
      batch_size=_BATCH_SIZE.value, rows=placement.rows, seed=0, read_threads=1)
  for _ in range(10):  # Warm up the prefetch buffer and the transfer path.
    jax.block_until_ready(placement.place(next(batches)))
  start = time.perf_counter()
  for _ in range(_LOAD_STEPS.value):
    jax.block_until_ready(placement.place(next(batches)))
  seconds = time.perf_counter() - start
  return _LOAD_STEPS.value * _BATCH_SIZE.value * _SEQ_LEN.value / seconds


def _build_seconds(directory: str, plan: dataset.BuildPlan) -> tuple[str, float]:
  start = time.perf_counter()
  path = dataset.build(directory, plan)
  return path, time.perf_counter() - start


def main() -> None:
  processes = _PROCESSES.value
  with tempfile.TemporaryDirectory() as directory:
    text = _repeat_builtin(directory, _TEXT_MB.value)
    start = time.perf_counter()
    tokenizer = tokenizer_lib.train(tokenizer_lib.corpus_lines(text), _VOCAB_SIZE.value,
                                    os.path.join(directory, 'tokenizer'))
    tokenizer_s = time.perf_counter() - start
    sources = {'text': text, **{name: _as_records(text.tasks[0].path, name, processes)
                                for name in _RECORD_FORMATS.value}}
    build_s = {}
    for name, source in sources.items():
      plan = dataset.BuildPlan(corpus=source, tokenizer=tokenizer, max_length=_SEQ_LEN.value, seed=0,
                               eval_fraction=0.01, max_eval_examples=1000, processes=processes)
      path, build_s[name] = _build_seconds(directory, plan)
      if name == 'text':
        load = _load_tokens_per_sec(path)
  # The same text in every format: MB/s are MB of the text file's content per second.
  build_mb_per_sec = {name: text.total_bytes / 1e6 / seconds for name, seconds in build_s.items()}

  print(f'text: {text.total_bytes / 1e6:.1f} MB; tokenizer ({tokenizer.vocab_size} pieces) trained '
        f'in {tokenizer_s:.1f}s')
  for name, seconds in build_s.items():
    print(f'build from {name}: {seconds:.1f}s with {processes} process(es) = '
          f'{build_mb_per_sec[name]:.2f} MB/s ({build_mb_per_sec[name] / processes:.2f} MB/s per process)')
  print(f'load: {load:,.0f} tokens/s as global batches of {_BATCH_SIZE.value} x {_SEQ_LEN.value} on '
        f'{jax.device_count()} {jax.devices()[0].platform} device(s), one reading thread')
  print(json.dumps({'build_mb_per_sec': round(build_mb_per_sec.pop('text'), 3),
                    **{f'build_mb_per_sec_{name.replace(".", "_")}': round(value, 3)
                       for name, value in build_mb_per_sec.items()},
                    'build_processes': processes,
                    'load_tokens_per_sec': round(load), 'seq_len': _SEQ_LEN.value,
                    'batch_size': _BATCH_SIZE.value}))
  sys.stdout.flush()
  logging.flush()


if __name__ == '__main__':
  cli.run_command(main)
