"""Writing files so that a reader never sees a half-written one, and short exclusive sections that
processes on any host sharing the filesystem agree on."""

import contextlib
import ctypes
import errno
import os
import re

from absl import logging
import filelock

from electra_jax.errors import UserError

_TEMPORARY = re.compile(r'\.tmp\d*$')  # What write_atomically writes before its rename.


def write_atomically(path: str, data: bytes | str) -> None:
  """Writes to a temporary name beside `path`, then renames: a crash leaves the old file or none."""
  tmp = f'{path}.tmp{os.getpid()}'
  with open(tmp, 'wb') as f:
    f.write(data.encode('utf-8') if isinstance(data, str) else data)
  os.replace(tmp, path)


_AT_FDCWD, _RENAME_NOREPLACE = -100, 1  # Linux's <fcntl.h> and <linux/fs.h>.


def rename_new(source: str, target: str) -> None:
  """Renames `source` to `target`, or raises FileExistsError if `target` exists (os.rename would
  replace an empty directory). Atomic through Linux's renameat2; elsewhere a check just before."""
  renameat2 = getattr(ctypes.CDLL(None, use_errno=True), 'renameat2', None)
  if renameat2 is not None:
    if renameat2(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(target), _RENAME_NOREPLACE) == 0:
      return
    code = ctypes.get_errno()
    if code not in (errno.EINVAL, errno.ENOSYS):  # Not a filesystem without the flag: a real failure.
      raise OSError(code, os.strerror(code), target)
  if os.path.lexists(target):
    raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), target)
  os.rename(source, target)


def remove_leftovers(directory: str) -> None:
  """Removes the temporary files that writers killed mid-write left directly in `directory`. Only
  for a directory that this process holds, where nobody else is writing."""
  for name in os.listdir(directory):
    path = os.path.join(directory, name)
    if _TEMPORARY.search(name) and os.path.isfile(path):
      logging.info('removing %s, left by a run that was killed while writing it', path)
      os.remove(path)


@contextlib.contextmanager
def exclusive(path: str, timeout: float = 60, waiting: str = ''):
  """Exclusive access to `path` among processes of any host that share its filesystem (filelock on
  PATH.lock: flock, which the kernel releases if the process dies, or a marker file where the
  filesystem has no flock), waiting up to `timeout` seconds (-1: as long as it takes; `waiting` is
  logged if it must wait at all). PATH.lock is removed before it is released, so none is left
  behind (one a killed process left included): a process that meanwhile locked the removed file
  finds another (or none) at PATH.lock and locks again."""
  lock_path = path + '.lock'
  while True:
    locked = []  # The file flock locked; a marker file (no flock) gives none and removes itself.
    lock = filelock.FileLock(lock_path, on_acquired=lambda fd: locked.append(os.fstat(fd)))
    try:
      try:
        lock.acquire(timeout=0)
      except filelock.Timeout:
        if waiting:
          logging.info('%s', waiting)
        lock.acquire(timeout=timeout)
    except filelock.Timeout as e:
      raise UserError(f'{lock_path} stayed locked for {timeout:.0f} s; is the filesystem stuck?') from e
    try:
      current = os.stat(lock_path)
    except FileNotFoundError:
      current = None
    # On NFS a removed file that is still open is only renamed, so filelock's own check (no links
    # left) does not see it.
    if not locked or (current is not None and os.path.samestat(locked[0], current)):
      break
    lock.release()
  try:
    yield
  finally:
    if locked:
      with contextlib.suppress(FileNotFoundError):
        os.remove(lock_path)
    lock.release()
