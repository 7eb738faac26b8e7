"""Data pipeline throughput: building examples from text, and loading them as device-ready batches.

  python -m electra_jax.data.bench [--text_mb=16 --seq_len=128 --batch_size=256 --processes=1]

The corpus is the builtin one, repeated up to --text_mb. Build throughput is text MB per second of the
whole dataset build (tokenizing, example building, TFDS writing) with --processes builders; load
throughput is tokens per second of global jax.Arrays delivered to the devices by one reading thread.
The last line is one JSON object.
"""

import json
import os
import sys
import tempfile
import time

from absl import app, flags, logging
import jax
import ml_collections

from electra_jax import sharding
from electra_jax.data import Placement, builtin, corpus, dataset, pipeline
from electra_jax.data import tokenizer as tokenizer_lib

_TEXT_MB = flags.DEFINE_float('text_mb', 16, 'MB of text to build (the builtin corpus, repeated).')
_SEQ_LEN = flags.DEFINE_integer('seq_len', 128, 'Tokens per example.')
_BATCH_SIZE = flags.DEFINE_integer('batch_size', 256, 'Global batch size while loading.')
_LOAD_STEPS = flags.DEFINE_integer('load_steps', 300, 'Batches timed while loading.')
_PROCESSES = flags.DEFINE_integer('processes', 1, 'Example-building processes.')
_VOCAB_SIZE = flags.DEFINE_integer('vocab_size', 8192, 'Pieces of the tokenizer trained first.')


def _repeat_builtin(directory: str, text_mb: float) -> corpus.Corpus:
  with open(builtin.extract(directory), encoding='utf-8') as f:
    text = f.read()
  path = os.path.join(directory, 'bench.txt')
  with open(path, 'w', encoding='utf-8') as f:
    for _ in range(max(1, round(text_mb * 1e6 / len(text.encode('utf-8'))))):
      f.write(text)
  return corpus.from_text_files(path, name='bench')


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


def main(argv):
  del argv
  with tempfile.TemporaryDirectory() as directory:
    text = _repeat_builtin(directory, _TEXT_MB.value)
    start = time.perf_counter()
    tokenizer = tokenizer_lib.train(tokenizer_lib.corpus_lines(text), _VOCAB_SIZE.value,
                                    os.path.join(directory, 'tokenizer'))
    tokenizer_s = time.perf_counter() - start
    plan = dataset.BuildPlan(corpus=text, tokenizer=tokenizer, max_length=_SEQ_LEN.value, seed=0,
                             eval_fraction=0.01, max_eval_examples=1000,
                             processes=_PROCESSES.value)
    start = time.perf_counter()
    path = dataset.build(directory, plan)
    build_s = time.perf_counter() - start
    build_mb_per_sec = text.total_bytes / 1e6 / build_s
    load = _load_tokens_per_sec(path)

  print(f'text: {text.total_bytes / 1e6:.1f} MB; tokenizer ({tokenizer.vocab_size} pieces) trained '
        f'in {tokenizer_s:.1f}s')
  print(f'build: {build_s:.1f}s with {_PROCESSES.value} process(es) = {build_mb_per_sec:.2f} MB/s '
        f'({build_mb_per_sec / _PROCESSES.value:.2f} MB/s per process)')
  print(f'load: {load:,.0f} tokens/s as global batches of {_BATCH_SIZE.value} x {_SEQ_LEN.value} on '
        f'{jax.device_count()} {jax.devices()[0].platform} device(s), one reading thread')
  print(json.dumps({'build_mb_per_sec': round(build_mb_per_sec, 3),
                    'build_processes': _PROCESSES.value,
                    'load_tokens_per_sec': round(load), 'seq_len': _SEQ_LEN.value,
                    'batch_size': _BATCH_SIZE.value}))
  sys.stdout.flush()
  logging.flush()


if __name__ == '__main__':
  app.run(main)
