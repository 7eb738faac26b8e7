"""One run per directory: process 0 holds a lease on it, a record in DIR/lock.json that a thread
renews every RENEW_SECONDS, for as long as the run writes there.

Another run takes the lease over when its holder is provably gone (a process of this machine and PID
namespace that no longer runs) or has not renewed it for LEASE_SECONDS (a machine lost, a process
killed elsewhere); otherwise it is refused, or, with `wait`, watches the record until the lease
expires. A holder can lose the lease while it still runs (suspended, a stalled filesystem, host
clocks that differ by more than LEASE_SECONDS - GIVE_UP_SECONDS): a record that names another holder,
or renewals failing for GIVE_UP_SECONDS, mark it lost, and the run stops before it writes anything
more (`Hold`).
"""

import contextlib
import datetime
import functools
import json
import math
import os
import socket
import threading
import time

from absl import logging
import jax
from jax.experimental import multihost_utils
import numpy as np

from electra_jax import distributed, files
from electra_jax.errors import UserError

LOCK_FILE = 'lock.json'
LEASE_SECONDS = 300
RENEW_SECONDS = 30
# Well before others may take an unrenewed lease over: the holder stops first.
GIVE_UP_SECONDS = LEASE_SECONDS * 2 // 3
WAIT_POLL_SECONDS = 5


class LockLost(UserError):
  """Another run may hold the directory now; this one stopped without writing more."""


def _clock() -> float:
  """Seconds that go on while the machine sleeps (CLOCK_BOOTTIME), where monotonic ones stop."""
  return time.clock_gettime(getattr(time, 'CLOCK_BOOTTIME', time.CLOCK_MONOTONIC))


def _read_text(path: str) -> str | None:
  try:
    with open(path, encoding='utf-8') as f:
      return f.read().strip()
  except OSError:
    return None


@functools.cache
def machine() -> dict:
  """What tells this machine and PID namespace from others that share its hostname (containers with
  --network host, say): a pid means the same process only where all three agree. Without /proc
  (macOS) the hostname alone does, as nothing else shares it there."""
  try:
    namespace = os.stat('/proc/self/ns/pid').st_ino
  except OSError:
    namespace = None
  return {'host': socket.gethostname(), 'boot_id': _read_text('/proc/sys/kernel/random/boot_id'),
          'pid_ns': namespace}


def _here(record: dict) -> bool:
  """Whether `record` (with machine()'s fields) was written on this machine, in this PID namespace."""
  return all(name in record and record[name] == value for name, value in machine().items())


def running_here(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # Another user's process.
    return True
  return True


def _utc(seconds: float) -> str:
  return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime(
      '%Y-%m-%d %H:%M:%S UTC')


def _read(path: str) -> dict | None:
  try:
    with open(path, encoding='utf-8') as f:
      held = json.load(f)
  except FileNotFoundError:
    return None
  except ValueError:
    held = None
  if not isinstance(held, dict) or not {'host', 'pid', 'since', 'renewed'} <= held.keys():
    logging.warning('%s is not a lock record; it holds nothing', path)
    return None
  return held


def _holder(held: dict) -> str:
  return f'host {held["host"]}, pid {held["pid"]}, since {_utc(held["since"])}'


# The lock files this process holds: the lease refuses a second hold by the same process too.
_held: set[str] = set()


def _gone(held: dict, path: str) -> str | None:
  """Why the run that wrote the record `held` no longer holds the lock; None while it may."""
  silent = time.time() - held['renewed']
  if silent > LEASE_SECONDS:
    return f'it has not renewed its lease for {silent:.0f} s'
  if not _here(held):  # Another machine, or a PID namespace whose pids mean other processes.
    return None
  if held['pid'] == os.getpid():  # A restarted container often reuses the pid.
    return None if path in _held else 'it was an earlier process with this pid'
  return None if running_here(held['pid']) else 'that process is no longer running'


class _Lease:
  """This process's hold on a directory: its record in LOCK_FILE, renewed from a daemon thread."""

  def __init__(self, directory: str, wait: bool):
    self._directory = directory
    self._path = os.path.realpath(os.path.join(directory, LOCK_FILE))
    self._mine = {**machine(), 'pid': os.getpid()}
    self._take(wait)
    self._renewed_at = _clock()
    self.lost: str | None = None
    self._stop = threading.Event()
    self._renewing = threading.Thread(target=self._renew, name=f'lock {directory}', daemon=True)
    self._renewing.start()

  def _take(self, wait: bool) -> None:
    """Writes our record unless a live run holds the lock; with `wait`, first watches a record
    that nobody renews until its lease expires, by the holder's clock or by ours."""
    watched, watched_since, reported = None, 0.0, -math.inf
    while True:
      with files.exclusive(self._path):
        held = _read(self._path)
        reason = None if held is None else _gone(held, self._path)
        if held is not None and reason is None and held == watched:
          if time.monotonic() - watched_since > LEASE_SECONDS:
            reason = f'its record has not changed for {LEASE_SECONDS} s'
        if held is None or reason:
          if held is not None:
            logging.warning('%s: taking over the lock of %s: %s', self._directory, _holder(held),
                            reason)
          self._mine['since'] = self._mine['renewed'] = time.time()  # Not when it began to wait.
          self._write()
          _held.add(self._path)
          files.remove_leftovers(self._directory)
          return
        if not wait or (watched is not None and held != watched):
          renewed = ' (it renewed its lease while this run waited)' if watched is not None else ''
          raise UserError(
              f'{self._directory} is in use by another run: {_holder(held)}{renewed}; wait for it to '
              f'end, or stop it (a lock whose holder is gone expires {LEASE_SECONDS} s after its last '
              'renewal; --wait_for_lock waits for that), or use another --workdir')
        if watched is None:
          watched, watched_since = held, time.monotonic()
      left = LEASE_SECONDS - max(time.time() - held['renewed'], time.monotonic() - watched_since)
      if time.monotonic() - reported >= RENEW_SECONDS:
        logging.warning('%s: waiting for the lease of %s, which it has not renewed, to expire: %.0f s '
                        'left', self._directory, _holder(held), max(left, 0))
        reported = time.monotonic()
      time.sleep(min(WAIT_POLL_SECONDS, max(left, 0) + 1))

  def _write(self) -> None:
    files.write_atomically(self._path, json.dumps(self._mine))

  def _ours(self, held: dict | None) -> bool:
    return held is not None and all(held.get(k) == v for k, v in self._mine.items() if k != 'renewed')

  def _lose(self, problem: str) -> None:
    if self.lost is None:
      self.lost = f'{self._directory}: {problem}'
      logging.warning('%s; this run stops without writing more there', self.lost)

  def _lost_to(self, held: dict | None) -> None:
    self._lose('another run took over the lock: ' + _holder(held) if held is not None else
               f'the lock record {self._path} was removed or overwritten')

  def _silent_for(self) -> float:
    return _clock() - self._renewed_at

  def stale(self) -> bool:
    """Whether renewals have failed (or this process was suspended) for so long that another run
    may take the lease soon; marks the lease lost then."""
    silent = self._silent_for()
    if self.lost is None and silent > GIVE_UP_SECONDS:
      self._lose(f'the lock was not renewed for {silent:.0f} s (this process was suspended, or the '
                 'filesystem stalled), so another run may hold it now')
    return self.lost is not None

  def verify(self) -> bool:
    """Whether the record on disk is still ours, read now; marks the lease lost if not."""
    if not self.stale():
      try:
        held = _read(self._path)
      except OSError as e:  # The renewals decide whether a failing filesystem costs the lease.
        logging.warning('%s: could not read the lock record: %s', self._directory, e)
        return True
      if not self._ours(held):
        self._lost_to(held)
    return self.lost is None

  def _renew(self) -> None:
    while not self._stop.wait(RENEW_SECONDS) and not self.stale():
      try:
        with files.exclusive(self._path):
          held = _read(self._path)
          if not self._ours(held):
            self._lost_to(held)
            return
          self._mine['renewed'] = time.time()
          self._write()
        self._renewed_at = _clock()
      except (OSError, UserError) as e:  # Perhaps a passing hiccup; stale() says when it is not.
        logging.warning('%s: could not renew the lock (last renewed %.0f s ago): %s', self._directory,
                        self._silent_for(), e)

  def release(self) -> None:
    self._stop.set()
    self._renewing.join()
    try:
      with files.exclusive(self._path):
        if self._ours(_read(self._path)):
          os.remove(self._path)
    except (OSError, UserError) as e:  # The run itself is over; the lease will expire.
      logging.warning('%s: could not release the lock: %s', self._directory, e)
    finally:
      _held.discard(self._path)


class Hold:
  """The directories a job holds. Process 0 holds their leases and knows when one is lost; the
  loop asks `check` at every step and `check_everywhere` where every process must agree (before a
  checkpoint), and writers of process 0's files ask `writable` just before they write."""

  def __init__(self, leases: list[_Lease]):
    self._leases = leases

  def lost(self) -> str | None:
    return next((lease.lost for lease in self._leases if lease.stale()), None)

  def writable(self) -> bool:
    """Whether process 0 still holds every lease, by the records on disk now."""
    return all([lease.verify() for lease in self._leases])

  def check(self) -> None:
    """LockLost if this process knows that a lease is lost (only process 0 can)."""
    if (lost := self.lost()) is not None:
      raise LockLost(f'{lost}; this run stopped without writing more: let the other run finish, or '
                     'stop it, then rerun this command to resume from the last checkpoint')

  def check_everywhere(self) -> None:
    """LockLost on every process if process 0 no longer holds a lease; a collective, whose answer
    alone decides, so that every process goes on or stops alike."""
    held = self.writable()
    if jax.process_count() == 1:
      self.check()
    elif not int(multihost_utils.broadcast_one_to_all(np.int32(held))):
      if jax.process_index() == 0:
        self.check()
      raise LockLost('process 0 lost the lock of the workdir; its error says why')


@contextlib.contextmanager
def hold(*directories: str, wait: bool = False):
  """Holds `directories` for this job and yields its Hold, or raises UserError naming the run that
  holds one, on every process. Process 0 holds them for the whole job; the others do not contend."""

  def take() -> list[_Lease]:
    leases = []
    try:
      for directory in directories:
        leases.append(_Lease(directory, wait))
    except BaseException as e:
      for lease in leases:
        lease.release()
      if isinstance(e, OSError):
        raise UserError(f'could not lock {directory}: {e}; make it writable, or use another '
                        '--workdir') from e
      raise
    return leases

  leases = distributed.on_process_0(take) or []
  try:
    yield Hold(leases)
  finally:
    for lease in leases:
      lease.release()


def in_use(directory: str) -> bool:
  """Whether another process holds `directory` now, by its record (unreadable: it may)."""
  path = os.path.realpath(os.path.join(directory, LOCK_FILE))
  try:
    held = _read(path)
  except OSError:
    return True
  return held is not None and path not in _held and _gone(held, path) is None
