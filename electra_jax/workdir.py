"""What a run leaves beside its checkpoints so that its directory stands on its own, and what keeps a
workdir safe: one run at a time (`lock`), and a rerun only with a config that fits it (`check_fits`).

`config.json` is the run's resolved config (model sizes, the tokenizer's special ids and options; for
fine-tuning also a `task` section with the head and label names) and the tokenizer file is
`tokenizer.model` (sentencepiece) or `vocab.txt` (WordPiece). Fine-tuning opens a pre-training run this
way; export opens either kind.
"""

import contextlib
import dataclasses
import datetime
import json
import os
import socket
import threading
import time

from absl import logging
import filelock
import jax
from jax.experimental import multihost_utils
import ml_collections
import numpy as np

from electra_jax import files
from electra_jax.data import tokenizer as tokenizer_lib
from electra_jax.errors import UserError

CONFIG_FILE = 'config.json'
LOCK_FILE = 'lock.json'
RESULTS_FILE = 'results.json'  # Fine-tuning's scores: each seed's, and the median seed's for the run.

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
# elsewhere or read it with other threads, and drop init_from_hf (only a fresh run reads it).
PRETRAINING_RESUMABLE = RESUMABLE | {
    'train.steps', 'train.learning_rate', 'train.eval_every', 'train.eval_batches',
    'data.data_dir', 'data.read_threads', 'data.build_processes', 'init_from_hf'}
# Fine-tuning may run other seeds and predict in other batches; its median must come from seeds that
# all trained alike.
FINETUNING_RESUMABLE = RESUMABLE | {'seeds', 'train.eval_batch_size'}

# The lock is a lease: its holder renews the record every RENEW_SECONDS; a record not renewed for
# LEASE_SECONDS belongs to a run that is gone (its machine lost, say), and another run takes it over.
# Hosts that share a workdir must agree on the time to well within LEASE_SECONDS.
LEASE_SECONDS = 300
RENEW_SECONDS = 30
_RECORD_LOCK_SECONDS = 60  # The longest wait to read or write the record (others do so in a moment).


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


# The directories this process holds: the lock refuses a second hold by the same process too.
_held: set[str] = set()


@contextlib.contextmanager
def _record_locked(path: str):
  """Exclusive access to the lock record for a read-and-write (filelock: flock, which the kernel
  releases if the process dies, or a marker file where the filesystem has no flock)."""
  try:
    with filelock.FileLock(path + '.lock', timeout=_RECORD_LOCK_SECONDS):
      yield
  except filelock.Timeout as e:
    raise UserError(f'{path}.lock stayed locked for {_RECORD_LOCK_SECONDS} s; is the filesystem '
                    'stuck?') from e


def _read(path: str) -> dict | None:
  try:
    with open(path, encoding='utf-8') as f:
      held = json.load(f)
  except FileNotFoundError:
    return None
  except ValueError:
    held = None
  if not isinstance(held, dict) or not {'host', 'pid', 'since', 'renewed'} <= held.keys():
    logging.warning('%s is not a lock record; replacing it', path)
    return None
  return held


def _utc(seconds: float) -> str:
  return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime(
      '%Y-%m-%d %H:%M:%S UTC')


def _running(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # Another user's process.
    return True
  return True


def _gone(held: dict, path: str) -> str | None:
  """Why the run that wrote the record `held` no longer holds the lock; None while it does."""
  silent = time.time() - held['renewed']
  if silent > LEASE_SECONDS:
    return f'it has not renewed its lease for {silent:.0f} s'
  if held['host'] != socket.gethostname():
    return None
  if held['pid'] == os.getpid():  # A restarted container often reuses the pid.
    return None if path in _held else 'it was an earlier process with this pid'
  return None if _running(held['pid']) else 'that process is no longer running'


class _Lease:
  """This process's hold on a directory: its record in LOCK_FILE, renewed from a daemon thread."""

  def __init__(self, directory: str):
    self._directory = directory
    self._path = os.path.realpath(os.path.join(directory, LOCK_FILE))
    now = time.time()
    self._mine = {'host': socket.gethostname(), 'pid': os.getpid(), 'since': now, 'renewed': now}
    with _record_locked(self._path):
      held = _read(self._path)
      if held is not None:
        reason = _gone(held, self._path)
        if reason is None:
          raise UserError(
              f'{directory} is in use by another run: host {held["host"]}, pid {held["pid"]}, since '
              f'{_utc(held["since"])}; wait for it to end, or stop it (a lock whose holder is gone '
              f'expires {LEASE_SECONDS} s after its last renewal), or use another --workdir')
        logging.warning('%s: taking over the lock of host %s, pid %d (since %s): %s', directory,
                        held['host'], held['pid'], _utc(held['since']), reason)
      self._write()
      _held.add(self._path)
    self._stop = threading.Event()
    self._renewing = threading.Thread(target=self._renew, name=f'lock {directory}', daemon=True)
    self._renewing.start()

  def _write(self) -> None:
    files.write_atomically(self._path, json.dumps(self._mine))

  def _ours(self, held: dict | None) -> bool:
    return held is not None and all(held[k] == self._mine[k] for k in ('host', 'pid', 'since'))

  def _renew(self) -> None:
    while not self._stop.wait(RENEW_SECONDS):
      try:
        with _record_locked(self._path):
          held = _read(self._path)
          if not self._ours(held):
            logging.warning('%s: another run took over the lock (%s); this run no longer holds it',
                            self._directory, held)
            return
          self._mine['renewed'] = time.time()
          self._write()
      except (OSError, UserError) as e:  # A passing filesystem hiccup: try again next time.
        logging.warning('%s: could not renew the lock: %s', self._directory, e)

  def release(self) -> None:
    self._stop.set()
    self._renewing.join()
    try:
      with _record_locked(self._path):
        if self._ours(_read(self._path)):
          os.remove(self._path)
    except (OSError, UserError) as e:  # The run itself is over; the lease will expire.
      logging.warning('%s: could not release the lock: %s', self._directory, e)
    finally:
      _held.discard(self._path)


def _refused_everywhere(refusal: UserError | None) -> None:
  """Raises on every process when process 0 could not take the lock: the others would otherwise
  wait in the job's first collective for a process that has exited."""
  if jax.process_count() > 1:
    refused = int(multihost_utils.broadcast_one_to_all(np.int32(refusal is not None)))
    if refused and refusal is None:
      raise UserError('process 0 could not lock the workdir; its error says why')
  if refusal is not None:
    raise refusal


@contextlib.contextmanager
def lock(directory: str):
  """Holds `directory` for this run, or raises UserError naming the run that holds it. A record left
  by a dead process on this host, or not renewed for LEASE_SECONDS, is taken over with a warning.
  Process 0 holds it for the whole job; the other processes do not contend."""
  lease, refusal = None, None
  if jax.process_index() == 0:
    try:
      lease = _Lease(directory)
    except UserError as e:
      refusal = e
  _refused_everywhere(refusal)
  try:
    yield
  finally:
    if lease is not None:
      lease.release()


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


def median_seed(per_seed: dict[int, dict[str, float]], main_metric: str) -> int:
  """The fine-tuning seed at the median of the main metric (the lower middle for an even count)."""
  ranked = sorted(per_seed, key=lambda s: per_seed[s][main_metric])
  return ranked[(len(ranked) - 1) // 2]
