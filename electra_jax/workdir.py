"""What a run leaves beside its checkpoints so that its directory stands on its own, and a rerun only
with a config that fits it (`check_fits`, `check_tokenizer`); one run at a time is electra_jax/lease.py.

`config.json` is the run's resolved config (model sizes, the tokenizer's special ids and options; for
fine-tuning also a `task` section with the head and label names) and the tokenizer file is
`tokenizer.model` (sentencepiece) or `vocab.txt` (WordPiece). Fine-tuning opens a pre-training run this
way; export opens either kind.
"""

import dataclasses
import json
import os

import jax
import ml_collections

from electra_jax import files
from electra_jax.data import tokenizer as tokenizer_lib
from electra_jax.errors import UserError

CONFIG_FILE = 'config.json'
# Fine-tuning's scores: each seed's in its directory; in the run's, every finished seed's, their
# median and the median seed.
RESULTS_FILE = 'results.json'

# What any rerun may change and still resume the run in its workdir: how often it logs and
# checkpoints, what it does at a non-finite step, which steps it profiles, how the step computes
# (never the saved state) and on which devices. Everything else (model, objective, data, batch size,
# seed, optimizer) decides what the saved state and the saved data position mean.
RESUMABLE = frozenset({
    'train.log_every', 'train.checkpoint_every', 'train.keep_checkpoints', 'train.nonfinite',
    'train.profile_steps',
    'train.dtype', 'train.attention', 'train.remat', 'train.scan_layers', 'mesh'})
# Pre-training may also go on for more steps (which sets where the learning rate decays to 0), at
# another peak rate (the remedy its non-finite error names), evaluate otherwise, keep its data cache
# elsewhere or read it with other threads, read its tokenizer from elsewhere (check_tokenizer
# compares the contents) and drop init_from_hf (only a fresh run reads it: hf.load.continued_config).
PRETRAINING_RESUMABLE = RESUMABLE | {
    'train.steps', 'train.learning_rate', 'train.eval_every', 'train.eval_batches',
    'data.data_dir', 'data.read_threads', 'data.build_processes', 'data.tokenizer', 'init_from_hf'}
# Fine-tuning may run other seeds and predict in other batches; its median must come from seeds that
# all trained alike.
FINETUNING_RESUMABLE = RESUMABLE | {'seeds', 'train.eval_batch_size'}


def make(workdir: str) -> None:
  """Creates --workdir, or finds it."""
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise UserError(f'--workdir={workdir} exists and is not a directory')
  os.makedirs(workdir, exist_ok=True)


def record(workdir: str, config: ml_collections.ConfigDict,
           tokenizer: tokenizer_lib.Tokenizer | None) -> None:
  if jax.process_index() != 0:
    return
  files.write_atomically(os.path.join(workdir, CONFIG_FILE), config.to_json(indent=2))
  if tokenizer is not None:
    files.write_atomically(os.path.join(workdir, tokenizer.file_name), tokenizer.file_bytes)


def _flat(tree: dict, prefix: str = '') -> dict:
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      flat.update(_flat(value, f'{prefix}{key}.'))
    else:
      flat[f'{prefix}{key}'] = value
  return flat


def check_fits(workdir: str, file_name: str, config: ml_collections.ConfigDict | dict,
               may_change: frozenset[str]) -> None:
  """UserError naming every field, with both values, in which `config` differs from the config
  recorded in workdir/file_name (none: nothing to check), except the fields of `may_change` (a
  section's name covers its fields). A field that only one of them has is not compared: it was added
  or retired between the versions that wrote them."""
  path = os.path.join(workdir, file_name)
  if not os.path.isfile(path):
    return
  try:
    with open(path, encoding='utf-8') as f:
      earlier = _flat(json.load(f))
  except (ValueError, AttributeError) as e:
    raise UserError(f'{path} is not a config ({e}); put back the one the run wrote, or use another '
                    '--workdir') from e
  if isinstance(config, ml_collections.ConfigDict):
    config = json.loads(config.to_json())  # As it would be recorded: tuples become lists.
  current = _flat(config)
  differing = [
      f'{name}: {json.dumps(earlier[name])} there, {json.dumps(current[name])} here'
      for name in sorted(earlier.keys() & current.keys())
      if earlier[name] != current[name]
      and not any(name == field or name.startswith(field + '.') for field in may_change)]
  if differing:
    raise UserError(f'--workdir={workdir} holds a run with another config ({"; ".join(differing)});'
                    ' use another --workdir, or the config it was run with')


def check_tokenizer(workdir: str, tokenizer: tokenizer_lib.Tokenizer | None) -> None:
  """UserError unless `tokenizer` is the one the run in workdir recorded (none recorded: nothing to
  check): the saved embeddings and data position mean its pieces."""
  recorded = [name for name in tokenizer_lib.FILE_NAMES
              if os.path.isfile(os.path.join(workdir, name))]
  if tokenizer is None or not recorded:
    return
  path = os.path.join(workdir, tokenizer.file_name)
  if os.path.isfile(path):
    with open(path, 'rb') as f:
      if f.read() == tokenizer.file_bytes:
        return
  raise UserError(f'--workdir={workdir} was trained with another tokenizer than this config\'s; resume '
                  f'with --config.data.tokenizer={os.path.join(workdir, recorded[0])}, or use another '
                  '--workdir')


@dataclasses.dataclass(frozen=True)
class Run:
  directory: str
  config: ml_collections.ConfigDict  # The run's resolved config.
  tokenizer: tokenizer_lib.Tokenizer | None  # None for a run on the synthetic source.


def open_run(path: str, flag: str) -> Run:
  """The run in directory `path`, which the user gave as `flag` (named in errors)."""
  directory = os.path.abspath(os.path.expanduser(path))
  config_path = os.path.join(directory, CONFIG_FILE)
  if not os.path.isfile(config_path):
    raise UserError(f'{flag}={path} has no {CONFIG_FILE}: it is not the --workdir of an '
                    'electra_jax run')
  try:
    with open(config_path, encoding='utf-8') as f:
      config = ml_collections.ConfigDict(json.load(f))
  except ValueError as e:
    raise UserError(f'{config_path} is not an electra_jax config ({e})') from e
  if 'model' not in config or 'data' not in config:
    raise UserError(f'{config_path} is not an electra_jax config (it has no model or data section)')
  tokenizer = tokenizer_lib.load_from_dir(directory, config.data.get('lowercase', True),
                                          config.data.get('strip_accents'))
  return Run(directory, config, tokenizer)


def finished_seeds(directory: str) -> dict[int, dict[str, float]]:
  """The results of every finished seed (seed_<n>/RESULTS_FILE) of the fine-tuning run in
  `directory`, by seed."""
  finished = {}
  for name in os.listdir(directory):
    path = os.path.join(directory, name, RESULTS_FILE)
    if name.startswith('seed_') and name[len('seed_'):].isdigit() and os.path.isfile(path):
      with open(path, encoding='utf-8') as f:
        finished[int(name[len('seed_'):])] = json.load(f)
  return dict(sorted(finished.items()))


def median_seed(per_seed: dict[int, dict[str, float]], main_metric: str) -> int:
  """The fine-tuning seed at the median of the main metric (the lower middle for an even count)."""
  ranked = sorted(per_seed, key=lambda s: per_seed[s][main_metric])
  return ranked[(len(ranked) - 1) // 2]
