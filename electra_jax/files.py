"""Writing files so that a reader never sees a half-written one."""

import os


def write_atomically(path: str, data: bytes | str) -> None:
  """Writes to a temporary name beside `path`, then renames: a crash leaves the old file or none."""
  tmp = f'{path}.tmp{os.getpid()}'
  with open(tmp, 'wb') as f:
    f.write(data.encode('utf-8') if isinstance(data, str) else data)
  os.replace(tmp, path)
