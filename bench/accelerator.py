r"""Everything a lent GPU should measure, in one command: step benchmarks of the presets, a 200-step
bfloat16 training run of the quick start, a profile of Base, and Base with the other random-bit
implementations. Run through bench/accelerator.sh:

  bash bench/accelerator.sh --prepare       # here: wheels/ for the GPU machine, and its command
  bash bench/accelerator.sh                 # there: results under $OUT
  bash bench/accelerator.sh --smoke --output=DIR   # the same code paths on CPU at toy sizes

Each measurement is its own process (an out-of-memory or crash loses only that one), with its own
time limit inside an overall deadline, most important first. Its record is appended to
results.jsonl the moment it ends, so a run cut short still returns figures; at the end
results.json and results.md (printed too) hold them all, and profile.txt the top ops of Base.
"""

import argparse
import collections
import dataclasses
import functools
import glob
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WHEELS = 'wheels'
# What electra_jax imports at run time that the GPU machine's image lacks (the device tool's
# KINDS.md lists what it has), with their own needs that it lacks too; versions as in
# requirements.txt, and as pip resolved them for its dependencies.
MISSING_WHEELS = (
    'ml-collections==1.1.0', 'tensorflow-datasets==4.9.10', 'importlib-resources==7.1.0',
    'array-record==0.8.6', 'grain==0.2.18', 'tensorboardx==2.6.5', 'dm-tree==0.1.10',
    'docstring-parser==0.18.0', 'googleapis-common-protos==1.76.0', 'immutabledict==4.3.1',
    'portpicker==1.6.0', 'simple-parsing==0.1.9', 'tensorflow-metadata==1.21.0',
    'termcolor==3.3.0', 'toml==0.10.2')
# No wheel on PyPI, pure Python: built here (tensorflow_datasets.core imports it).
SOURCE_ONLY = ('promise==2.3',)
PLATFORMS = ('manylinux_2_28_x86_64', 'manylinux_2_27_x86_64', 'manylinux_2_24_x86_64',
             'manylinux_2_17_x86_64', 'manylinux2014_x86_64', 'manylinux1_x86_64')
DEVICE_COMMAND = (
    'export PYTHONUNBUFFERED=1; python3 -m pip install -q --no-index --no-deps --no-compile '
    f'--no-cache-dir --target /tmp/site {WHEELS}/*.whl && export PYTHONPATH=/tmp/site && '
    'bash bench/accelerator.sh')
COMMAND_LIMIT = 2000
DEFAULT_PRNG = 'threefry2x32'
CARRY_LIMIT = 64 * 2**20

# The presets' dimensions shrunk for --smoke; the rest of each preset stays.
TOY_MODEL = ('--config.model.vocab_size=128', '--config.model.embedding_size=32',
             '--config.model.hidden_size=64', '--config.model.num_layers=1',
             '--config.model.num_heads=2', '--config.model.intermediate_size=128')


@dataclasses.dataclass(frozen=True)
class Bench:
  name: str
  config: str
  batch_size: int
  seq_len: int


BENCHES = (Bench('Base s128', 'configs/base.py', 256, 128),
           Bench('Small s128', 'configs/small.py', 128, 128),
           Bench('Base s512', 'configs/base.py', 32, 512),
           Bench('ModernBERT-base s1024', 'configs/modernbert_base.py', 32, 1024),
           Bench('Large s128', 'configs/large.py', 64, 128))


@dataclasses.dataclass(frozen=True)
class Mode:
  """What differs between the GPU run and --smoke: sizes, step counts, time limits."""
  smoke: bool
  benches: tuple[Bench, ...]
  steps: int
  warmup: int
  item_timeout_s: float
  deadline_s: float
  train_steps: int
  # jax_default_prng_impl values timed against the default (threefry2x32) on Base s128 with dropout.
  prng_impls: tuple[str, ...]

  def sizes(self, bench: Bench) -> tuple[int, int]:
    """Batch size and length."""
    return (8, 16) if self.smoke else (bench.batch_size, bench.seq_len)

  def attention(self, kernel: str) -> str:
    # cuDNN attention needs a GPU; 'auto' picks it there and XLA's on a CPU.
    return 'auto' if self.smoke and kernel == 'cudnn' else kernel


def gpu_mode(deadline_s: float) -> Mode:
  return Mode(smoke=False, benches=BENCHES, steps=10, warmup=2, item_timeout_s=240,
              deadline_s=deadline_s, train_steps=200, prng_impls=('rbg', 'unsafe_rbg'))


def smoke_mode(deadline_s: float) -> Mode:
  # One preset's pair of kernels covers the benchmark path; each more costs a compile on a CPU.
  return Mode(smoke=True, benches=BENCHES[:1], steps=2, warmup=1, item_timeout_s=180,
              deadline_s=deadline_s, train_steps=8, prng_impls=('rbg',))


class Recorder:
  """results.jsonl, one line per finished item, written and flushed as each one ends."""

  def __init__(self, output: str):
    self.output = output
    self.records = []
    os.makedirs(output, exist_ok=True)
    self._jsonl = os.path.join(output, 'results.jsonl')
    for name in ('results.jsonl', 'log.txt'):  # A rerun into the same folder starts them afresh.
      open(os.path.join(output, name), 'w', encoding='utf-8').close()

  def add(self, record: dict) -> None:
    self.records.append(record)
    with open(self._jsonl, 'a', encoding='utf-8') as f:
      f.write(json.dumps(record) + '\n')
    print(json.dumps(record), flush=True)

  def log(self, name: str, result: subprocess.CompletedProcess | None, text: str = '') -> None:
    """Each item's output, kept for the failures (out of memory, compiler errors)."""
    with open(os.path.join(self.output, 'log.txt'), 'a', encoding='utf-8') as f:
      f.write(f'=== {name}\n{text}')
      if result is not None:
        f.write(result.stdout + result.stderr)


class Clock:
  """The overall deadline: each item's time limit is cut to what is left of it."""

  def __init__(self, deadline_s: float):
    self._end = time.monotonic() + deadline_s

  def limit(self, item_timeout_s: float) -> float:
    return min(item_timeout_s, self._end - time.monotonic())


def _run(args: list[str], env: dict, timeout_s: float) -> tuple[subprocess.CompletedProcess | None,
                                                                str]:
  """The command's result, or None and why not (time limit)."""
  try:
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout_s, check=False), ''
  except subprocess.TimeoutExpired as e:
    out = e.stdout.decode(errors='replace') if isinstance(e.stdout, bytes) else (e.stdout or '')
    return None, f'timed out after {timeout_s:.0f} s\n{out}'


def _last_line(text: str) -> str:
  lines = [line for line in text.strip().splitlines() if line.strip()]
  return lines[-1][:300] if lines else ''


def _failure(result: subprocess.CompletedProcess | None, why: str) -> dict | None:
  """The status and error of an item that timed out or failed; None if it ran to the end."""
  if result is None:
    return {'status': 'timeout', 'error': _last_line(why)}
  if result.returncode != 0:
    return {'status': 'failed', 'error': _last_line(result.stderr)}
  return None


def _out_of_memory(result: subprocess.CompletedProcess | None) -> bool:
  return result is not None and ('RESOURCE_EXHAUSTED' in result.stderr
                                 or 'out of memory' in result.stderr.lower())


def bench_args(mode: Mode, bench: Bench, kernel: str, remat: str,
               trace_dir: str | None) -> list[str]:
  batch_size, seq_len = mode.sizes(bench)
  args = [sys.executable, '-m', 'electra_jax.bench', f'--config={bench.config}',
          f'--batch_size={batch_size}', f'--seq_len={seq_len}', *(TOY_MODEL if mode.smoke else ()),
          '--dtype=bfloat16', f'--steps={mode.steps}', f'--warmup={mode.warmup}',
          f'--config.train.attention={mode.attention(kernel)}', f'--config.train.remat={remat}']
  if kernel == 'cudnn':
    args.append('--config.model.attention_dropout_rate=0')  # No fused kernel with dropout.
  if trace_dir:
    args.append(f'--trace_dir={trace_dir}')
  return args


def run_bench(mode: Mode, bench: Bench, kernel: str, env: dict, clock: Clock, recorder: Recorder,
              scratch: str, trace: bool = False, prng: str = DEFAULT_PRNG) -> dict:
  """One benchmark, again with remat=matmuls if it ran out of device memory."""
  trace_dir = os.path.join(scratch, 'trace') if trace else None
  batch_size, seq_len = mode.sizes(bench)
  record = {'kind': 'profile' if trace else 'bench', 'name': bench.name, 'attention': kernel,
            'batch_size': batch_size, 'seq_len': seq_len, 'prng': prng}
  env = {**env, 'JAX_DEFAULT_PRNG_IMPL': prng}
  for remat in ('none', 'matmuls'):
    timeout_s = clock.limit(mode.item_timeout_s)
    if timeout_s <= 0:
      return {**record, 'remat': remat, 'status': 'skipped', 'error': 'overall deadline reached'}
    started = time.monotonic()
    result, why = _run(bench_args(mode, bench, kernel, remat, trace_dir), env, timeout_s)
    recorder.log(f'{bench.name} {kernel} remat={remat} {prng}', result, why)
    record.update(remat=remat, seconds=round(time.monotonic() - started, 1))
    if not _out_of_memory(result):
      break
  if (failure := _failure(result, why)) is not None:
    return {**record, **failure}
  lines = result.stdout.strip().splitlines()
  return {**record, 'status': 'ok', 'setup': lines[0], **json.loads(lines[-1])}


def train_args(mode: Mode, workdir: str) -> list[str]:
  args = [sys.executable, '-m', 'electra_jax.main', '--config=configs/tiny.py',
          f'--workdir={workdir}', f'--config.train.steps={mode.train_steps}',
          '--config.train.dtype=bfloat16', '--config.train.nonfinite=skip',
          f'--config.train.checkpoint_every={mode.train_steps}', '--config.train.eval_every=0']
  if mode.smoke:
    # So few steps learn only past a short warmup and at a higher rate.
    args += ['--config.train.log_every=2', '--config.train.warmup_steps=2',
             '--config.train.learning_rate=1e-3', '--config.model.num_layers=1',
             '--config.train.batch_size=8']
  else:
    args.append('--config.train.log_every=20')
  return args


def check_training(metrics_path: str) -> dict:
  """Loss at the first and last record, and the updates skipped for non-finite values."""
  with open(metrics_path, encoding='utf-8') as f:
    train = [r for r in map(json.loads, f) if r['split'] == 'train']
  skipped = sum(r['update_skipped'] for r in train)
  fell = train[-1]['loss'] < train[0]['loss']
  return {'status': 'ok' if fell and skipped == 0 else 'failed', 'first_loss': train[0]['loss'],
          'last_loss': train[-1]['loss'], 'steps': train[-1]['step'],
          'skipped_updates': skipped, 'loss_fell': fell}


def run_training(mode: Mode, env: dict, clock: Clock, recorder: Recorder, scratch: str) -> dict:
  record = {'kind': 'train', 'name': f'tiny.py, {mode.train_steps} steps, bfloat16'}
  timeout_s = clock.limit(mode.item_timeout_s)
  if timeout_s <= 0:
    return {**record, 'status': 'skipped', 'error': 'overall deadline reached'}
  workdir = os.path.join(scratch, 'train')
  started = time.monotonic()
  # The builtin corpus, tokenizer and dataset are built afresh on a bare machine.
  result, why = _run(train_args(mode, workdir),
                     {**env, 'ELECTRA_JAX_DATA_DIR': os.path.join(scratch, 'data')}, timeout_s)
  recorder.log(record['name'], result, why)
  record['seconds'] = round(time.monotonic() - started, 1)
  if (failure := _failure(result, why)) is not None:
    return {**record, **failure}
  return {**record, **check_training(os.path.join(workdir, 'metrics.jsonl'))}


def top_ops(trace_dir: str, count: int = 15) -> list[tuple[str, str, float, float, int]]:
  """(track, name, total ms, share of its track's time, calls) of the longest ops in the Perfetto
  trace: the device's tracks when there are any (a CPU trace has host threads alone). Shares are per
  track because a device's tracks nest (a module's span holds its ops')."""
  [path] = glob.glob(os.path.join(trace_dir, '**', 'perfetto_trace.json.gz'), recursive=True)
  with gzip.open(path, 'rt', encoding='utf-8') as f:
    events = json.load(f)['traceEvents']
  names = {(e['pid'], e.get('tid')): e['args']['name'] for e in events if e.get('ph') == 'M'
           and e.get('name') in ('process_name', 'thread_name')}
  device = {pid for (pid, tid), name in names.items() if tid is None and '/device:' in name}
  totals, calls, per_track = collections.Counter(), collections.Counter(), collections.Counter()
  for e in events:
    if e.get('ph') == 'X' and (not device or e['pid'] in device):
      track = names.get((e['pid'], e.get('tid')), str(e.get('tid')))
      totals[track, e['name']] += e.get('dur', 0)
      calls[track, e['name']] += 1
      per_track[track] += e.get('dur', 0)
  return [(track, name, us / 1000, us / (per_track[track] or 1), calls[track, name])
          for (track, name), us in totals.most_common(count)]


def run_profile(mode: Mode, env: dict, clock: Clock, recorder: Recorder, scratch: str) -> dict:
  """Base at length 128 with cuDNN attention, 3 steps traced; its top ops to profile.txt."""
  record = run_bench(mode, mode.benches[0], 'cudnn', env, clock, recorder, scratch, trace=True)
  if record['status'] != 'ok':
    return record
  ops = top_ops(os.path.join(scratch, 'trace'))
  lines = [f'Top ops of 3 traced steps: {record["setup"]}', '',
           '| track | op | total ms | share of track | calls |', '|---|---|---|---|---|']
  lines += [f'| {track} | `{name}` | {ms:.2f} | {100 * share:.1f}% | {n} |'
            for track, name, ms, share, n in ops]
  with open(os.path.join(recorder.output, 'profile.txt'), 'w', encoding='utf-8') as f:
    f.write('\n'.join(lines) + '\n')
  return {**record, 'top_ops': [name for _, name, *_ in ops]}


def plan(mode: Mode):
  """Items in the order of their importance: Base s128, then Small, then Base s512, training,
  the profile, then the rest, and last the other random-bit implementations."""
  items = [functools.partial(run_bench, mode, bench, kernel)
           for bench in mode.benches for kernel in ('xla', 'cudnn')]
  items.insert(min(6, len(items)), functools.partial(run_training, mode))
  items.insert(min(7, len(items)), functools.partial(run_profile, mode))
  return items + [functools.partial(run_bench, mode, mode.benches[0], 'xla', prng=impl)
                  for impl in mode.prng_impls]


def _cell(value, form: str, unit: str = '') -> str:
  return '' if value is None else format(value, form) + unit


def markdown(records: list[dict]) -> str:
  rows = ['| benchmark (bf16) | batch x length | attention | remat | random bits | status | '
          'median step | tokens/s | MFU | compile | peak memory |',
          '|---|---|---|---|---|---|---|---|---|---|---|']
  for r in records:
    if r['kind'] != 'bench':
      continue
    mfu, memory = r.get('mfu'), r.get('peak_memory_bytes')
    rows.append(
        f'| {r["name"]} | {r["batch_size"]} x {r["seq_len"]} | {r["attention"]} | {r["remat"]} | '
        f'{r["prng"]} | {r["status"]} | {_cell(r.get("step_time_s"), ".4f", " s")} | '
        f'{_cell(r.get("tokens_per_sec"), ",.0f")} | '
        f'{"n/a" if mfu is None else format(100 * mfu, ".1f") + "%"} | '
        f'{_cell(r.get("compile_s"), ".1f", " s")} | '
        f'{_cell(None if memory is None else memory / 2**30, ".2f", " GiB")} |')
  for r in records:
    if r['kind'] == 'train':
      rows += ['', f'Training ({r["name"]}): {r["status"]}' + (
          f'; loss {r["first_loss"]:.4f} -> {r["last_loss"]:.4f} by step {r["steps"]}, '
          f'{r["skipped_updates"]:g} updates skipped' if 'first_loss' in r else
          f': {r.get("error", "")}')]
    if r['kind'] == 'profile':
      rows += ['', f'Profile of {r["name"]} ({r["attention"]}): {r["status"]}' + (
          '; top ops in profile.txt: ' + ', '.join(f'`{op}`' for op in r['top_ops'][:5])
          if 'top_ops' in r else f': {r.get("error", "")}')]
  return '\n'.join(rows) + '\n'


def run_all(mode: Mode, output: str) -> None:
  recorder = Recorder(output)
  env = {**os.environ}
  if mode.smoke:
    env['JAX_PLATFORMS'] = 'cpu'
  clock = Clock(mode.deadline_s)
  with tempfile.TemporaryDirectory(prefix='electra_jax_accelerator_') as scratch:
    for item in plan(mode):
      recorder.add(item(env, clock, recorder, scratch))
  with open(os.path.join(output, 'results.json'), 'w', encoding='utf-8') as f:
    json.dump({'smoke': mode.smoke, 'results': recorder.records}, f, indent=1)
  table = markdown(recorder.records)
  with open(os.path.join(output, 'results.md'), 'w', encoding='utf-8') as f:
    f.write(table)
  print(table, flush=True)


def prepare() -> None:
  """Wheels of what the GPU machine lacks into wheels/, then the device tool's command."""
  folder = os.path.join(ROOT, WHEELS)
  shutil.rmtree(folder, ignore_errors=True)
  pip = [sys.executable, '-m', 'pip']
  platforms = [arg for p in PLATFORMS for arg in ('--platform', p)]
  for args in ([*pip, 'download', '--no-deps', '--only-binary=:all:', '--python-version', '3.12',
                '--implementation', 'cp', '--abi', 'cp312', *platforms, '-d', folder,
                *MISSING_WHEELS],
               [*pip, 'wheel', '--no-deps', '-w', folder, *SOURCE_ONLY]):
    if subprocess.run(args, check=False).returncode != 0:
      sys.exit(f'error: {" ".join(args[3:5])} failed (above); is PyPI reachable from here?')
  size = sum(os.path.getsize(p) for p in glob.glob(os.path.join(folder, '*')))
  if size > CARRY_LIMIT or len(DEVICE_COMMAND) > COMMAND_LIMIT:
    sys.exit(f'error: {WHEELS}/ is {size / 2**20:.1f} MiB (limit 64) and the command '
             f'{len(DEVICE_COMMAND)} characters (limit {COMMAND_LIMIT})')
  print(f'{WHEELS}/: {len(os.listdir(folder))} wheels, {size / 2**20:.1f} MiB')
  print(f'device run: command ({len(DEVICE_COMMAND)} characters), timeout_s 600, '
        f'carry {json.dumps([WHEELS])}:')
  print(DEVICE_COMMAND)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--prepare', action='store_true', help='Download wheels/ (here).')
  parser.add_argument('--smoke', action='store_true', help='Toy sizes on CPU.')
  parser.add_argument('--output', default=os.environ.get('OUT'),
                      help='Results folder; default: $OUT.')
  parser.add_argument('--deadline_s', type=float, default=480,
                      help='Start no item after this many seconds (each one is cut at it too).')
  args = parser.parse_args()
  if args.prepare:
    prepare()
    return
  if not args.output:
    sys.exit('error: no results folder: set $OUT or pass --output=DIR')
  run_all((smoke_mode if args.smoke else gpu_mode)(args.deadline_s), args.output)


if __name__ == '__main__':
  main()
