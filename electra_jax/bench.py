r"""Throughput of a config's RTD training step on this machine's devices, on synthetic data.

  python -m electra_jax.bench --config=configs/small.py --batch_size=32 --seq_len=128 --steps=10 \
      --dtype=float32

--batch_size, --seq_len and --dtype override config.train.batch_size, config.data.max_seq_length and
config.train.dtype; any other field is set as --config.a.b=v (e.g. --config.train.remat=full). It
prints the compile time, the median step time over --steps timed steps (after --warmup), tokens/s,
model FLOPs and MFU (electra_jax/flops.py), and peak device memory. The last line is one JSON object.
--trace_dir=DIR also traces 3 more steps with jax.profiler (TensorBoard's and a Perfetto trace).
"""

import json
import time

from absl import flags
import jax
import ml_collections
from ml_collections import config_flags
import numpy as np

from electra_jax import cli, data, flops, loop, optimizer, sharding, step, validation
from electra_jax.data.synthetic import SyntheticSource
from electra_jax.errors import UserError

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Config file, e.g. configs/small.py.',
                                          lock_config=True)
_BATCH_SIZE = flags.DEFINE_integer('batch_size', None, 'Global batch size; default: the config\'s.')
_SEQ_LEN = flags.DEFINE_integer('seq_len', None, 'Tokens per sequence; default: the config\'s.')
_DTYPE = flags.DEFINE_enum('dtype', None, ['float32', 'bfloat16'], 'Default: the config\'s.')
_STEPS = flags.DEFINE_integer('steps', 10, 'Timed steps; the median is reported.')
_WARMUP = flags.DEFINE_integer('warmup', 2, 'Steps run after compiling and before timing.')
_TRACE_DIR = flags.DEFINE_string('trace_dir', None, 'Also trace 3 steps after the timed ones with '
                                 'jax.profiler into this folder, a Perfetto trace beside it.')
flags.mark_flag_as_required('config')


def bench_config() -> ml_collections.ConfigDict:
  """The --config with the command-line overrides applied, checked."""
  config = _CONFIG.value.copy_and_resolve_references()
  with config.unlocked():
    if _BATCH_SIZE.value is not None:
      config.train.batch_size = _BATCH_SIZE.value
    if _SEQ_LEN.value is not None:
      config.data.max_seq_length = _SEQ_LEN.value
    if _DTYPE.value is not None:
      config.train.dtype = _DTYPE.value
  if _STEPS.value < 1 or _WARMUP.value < 0:
    raise UserError(f'--steps={_STEPS.value} must be positive and --warmup={_WARMUP.value} not '
                    'negative')
  validation.validate(config, jax.device_count(), jax.process_count())
  return config


def _peak_memory(compiled) -> tuple[int, str]:
  """Peak bytes on device 0 as the allocator saw them, or else as the compiler planned them."""
  stats = jax.local_devices()[0].memory_stats()
  if stats and 'peak_bytes_in_use' in stats:
    return int(stats['peak_bytes_in_use']), 'allocator peak'
  plan = compiled.memory_analysis()
  planned = (plan.argument_size_in_bytes + plan.output_size_in_bytes - plan.alias_size_in_bytes
             + plan.temp_size_in_bytes)
  return int(planned), 'compiler plan: arguments + outputs + temporaries'


def time_steps(run_step, next_batch, steps: int, warmup: int) -> list[float]:
  """Seconds of each of `steps` calls of run_step(batch), which must return only when the step is
  done, after `warmup` untimed ones; batches are made outside the timing."""
  times = []
  for index in range(warmup + steps):
    batch = next_batch()
    start = time.perf_counter()
    run_step(batch)
    if index >= warmup:
      times.append(time.perf_counter() - start)
  return times


def measure(config: ml_collections.ConfigDict, steps: int, warmup: int,
            trace_dir: str | None = None) -> dict:
  """Compiles and times config's training step, then traces a few more into trace_dir if given;
  returns the figures the command prints."""
  mesh = sharding.make_mesh(config.mesh)
  training = step.build(step.pretraining_objective(config), *optimizer.create(config.train), mesh,
                        config.mesh.rules)
  batch_size, length = config.train.batch_size, config.data.max_seq_length
  placement = data.Placement(training.batch_sharding, batch_size)
  source = SyntheticSource(vocab_size=config.model.vocab_size, max_seq_length=length,
                           global_batch_size=batch_size, seed=0, pad_id=config.data.pad_id,
                           cls_id=config.data.cls_id, sep_id=config.data.sep_id,
                           rows=placement.rows, word_starts=config.objective.whole_word_masking)
  init_rng, rng = jax.random.split(jax.random.key(config.train.seed))
  state = training.init(init_rng)

  started = time.perf_counter()
  compiled = training.train_step.lower(state, placement.place(next(source)), rng).compile()
  compile_s = time.perf_counter() - started

  def run_step(batch):
    nonlocal state
    state, metrics = compiled(state, batch, rng)
    jax.block_until_ready((state, metrics))

  times = time_steps(run_step, lambda: placement.place(next(source)), steps, warmup)
  if trace_dir:
    # Outside the timing: the profiler's own overhead must not count in the figures.
    first = int(state.step)
    profiler = loop.StepProfiler(f'{first}:{first + 3}', trace_dir, perfetto=True)
    for index in range(first, first + 3):
      batch = placement.place(next(source))
      with profiler.step(index):
        run_step(batch)
      profiler.stepped(index, state)
  step_time = float(np.median(times))
  memory, memory_source = _peak_memory(compiled)
  flops_per_step = flops.step_flops(config)
  peak = flops.total_peak_flops()
  return {
      'tokens_per_sec': batch_size * length / step_time,
      'step_time_s': step_time,
      'mfu': None if peak is None else flops_per_step / step_time / peak,
      'compile_s': compile_s,
      'peak_memory_bytes': memory,
      'peak_memory_source': memory_source,
      'step_times_s': times,
      'model_flops_per_step': flops_per_step,
  }


def describe(config: ml_collections.ConfigDict) -> str:
  """The setup in one line: devices, sizes, precision."""
  return (f'{jax.device_count()} x {jax.devices()[0].device_kind}; batch {config.train.batch_size}'
          f' x {config.data.max_seq_length}; {config.train.dtype}; hidden '
          f'{config.model.hidden_size} x {config.model.num_layers} layers')


def report(result: dict) -> None:
  times = result['step_times_s']
  print(f'compile: {result["compile_s"]:.1f} s')
  print(f'step: median {result["step_time_s"]:.4f} s over {len(times)} steps '
        f'(min {min(times):.4f}, max {max(times):.4f})')
  print(f'throughput: {result["tokens_per_sec"]:,.0f} tokens/s; '
        f'{result["model_flops_per_step"] / result["step_time_s"] / 1e12:.3g} model TFLOP/s')
  print('MFU: ' + ('n/a (no bfloat16 peak known for this device kind)' if result['mfu'] is None
                   else f'{100 * result["mfu"]:.1f}% of the bfloat16 peak'))
  print(f'peak memory: {result["peak_memory_bytes"] / 2**30:.2f} GiB per device '
        f'({result["peak_memory_source"]})')


def main() -> None:
  config = bench_config()
  print(describe(config), flush=True)
  result = measure(config, _STEPS.value, _WARMUP.value, _TRACE_DIR.value)
  report(result)
  print(json.dumps({key: result[key] for key in
                    ('tokens_per_sec', 'step_time_s', 'mfu', 'compile_s', 'peak_memory_bytes')}),
        flush=True)


if __name__ == '__main__':
  cli.run_command(main)
