"""The workdir lease: who may take it, waiting for a dead holder's lease, noticing that it was lost,
and a run that loses it stopping without writing more."""

import json
import logging
import os
import re
import socket
import subprocess
import sys
import threading
import time

import jax
import pytest

from electra_jax import files, lease
from electra_jax.errors import UserError
from tests.conftest import ROOT, cli_env, read_metrics
from tests.test_preemption import wait_for_step


def _record(directory) -> dict:
  with open(os.path.join(directory, lease.LOCK_FILE), encoding='utf-8') as f:
    return json.load(f)


def _write_record(directory, **fields) -> None:
  """A lock record as another run would have left it: this machine and pid by default, renewed now."""
  now = time.time()
  held = {**lease.machine(), 'pid': os.getpid(), 'since': now - 3600, 'renewed': now, **fields}
  files.write_atomically(os.path.join(directory, lease.LOCK_FILE), json.dumps(held))


def _dead_pid() -> int:
  process = subprocess.Popen([sys.executable, '-c', ''])
  process.wait()  # Reaped: no process has its pid now.
  return process.pid


def test_a_second_holder_is_refused_naming_host_pid_and_since_until_the_first_releases(tmp_path):
  with lease.hold(str(tmp_path)):
    held = _record(tmp_path)
    assert (held['host'], held['pid']) == (socket.gethostname(), os.getpid())
    since = time.strftime('%Y-%m-%d %H:%M', time.gmtime(held['since']))
    with pytest.raises(UserError, match=(
        rf'^{tmp_path} is in use by another run: host {socket.gethostname()}, pid {os.getpid()}, '
        rf'since {since}:\d\d UTC; wait for it to end.*expires 300 s after its last renewal')):
      with lease.hold(str(tmp_path)):
        pass
  with lease.hold(str(tmp_path)):  # Free again.
    pass
  assert os.listdir(tmp_path) == []  # Neither the record nor the file of its flock is left.


def test_a_holder_in_another_process_is_refused(tmp_path):
  with subprocess.Popen([sys.executable, '-c', 'import sys; sys.stdin.read()'],
                        stdin=subprocess.PIPE) as holder:
    _write_record(tmp_path, pid=holder.pid)
    with pytest.raises(UserError, match=f'pid {holder.pid}, since'):
      with lease.hold(str(tmp_path)):
        pass
    holder.stdin.close()


def test_a_lock_left_by_a_dead_process_of_this_machine_is_taken_over_with_a_warning(tmp_path, caplog):
  dead_pid = _dead_pid()
  _write_record(tmp_path, pid=dead_pid)
  (tmp_path / 'config.json.tmp123').write_text('{"half": ')  # What a killed writer left.
  with caplog.at_level(logging.WARNING), lease.hold(str(tmp_path)):
    assert _record(tmp_path)['pid'] == os.getpid()
    assert not (tmp_path / 'config.json.tmp123').exists()
  assert f'taking over the lock of host {socket.gethostname()}, pid {dead_pid}' in caplog.text
  assert 'that process is no longer running' in caplog.text

  _write_record(tmp_path)  # This pid, which this process never held it with: a restarted container.
  with caplog.at_level(logging.WARNING), lease.hold(str(tmp_path)):
    pass
  assert 'it was an earlier process with this pid' in caplog.text


@pytest.mark.parametrize('other', [{'pid_ns': 1}, {'boot_id': 'another-boot'}])
def test_a_pid_of_another_machine_or_pid_namespace_with_our_hostname_is_not_judged_here(tmp_path,
                                                                                        other):
  """Two containers with one hostname (--network host), or a record without the machine's identity
  (an older version's): that pid means another process, so only the lease decides."""
  _write_record(tmp_path, pid=_dead_pid(), **other)
  with pytest.raises(UserError, match='is in use by another run'):
    with lease.hold(str(tmp_path)):
      pass
  record = _record(tmp_path)
  for name in ('boot_id', 'pid_ns'):
    del record[name]
  files.write_atomically(str(tmp_path / lease.LOCK_FILE), json.dumps(record))
  with pytest.raises(UserError, match='is in use by another run'):
    with lease.hold(str(tmp_path)):
      pass


def test_a_lease_expires_unless_renewed(tmp_path, caplog):
  _write_record(tmp_path, host='lost-machine', pid=1)
  with pytest.raises(UserError, match='host lost-machine, pid 1'):
    with lease.hold(str(tmp_path)):
      pass
  _write_record(tmp_path, host='lost-machine', pid=1, renewed=time.time() - lease.LEASE_SECONDS - 1)
  with caplog.at_level(logging.WARNING), lease.hold(str(tmp_path)):
    pass
  assert re.search(r'pid 1, since .* UTC: it has not renewed its lease for \d+ s', caplog.text)


def test_the_holder_renews_its_lease(tmp_path, monkeypatch):
  monkeypatch.setattr(lease, 'RENEW_SECONDS', 0.05)
  with lease.hold(str(tmp_path)):
    first = _record(tmp_path)
    deadline = time.monotonic() + 30
    while _record(tmp_path)['renewed'] == first['renewed'] and time.monotonic() < deadline:
      time.sleep(0.05)
    later = _record(tmp_path)
  assert later['since'] == first['since'] and later['renewed'] > first['renewed']


def test_waiting_takes_over_a_lease_nobody_renews_with_a_countdown(tmp_path, monkeypatch, caplog):
  monkeypatch.setattr(lease, 'LEASE_SECONDS', 1.0)
  monkeypatch.setattr(lease, 'WAIT_POLL_SECONDS', 0.1)
  _write_record(tmp_path, host='killed-machine', pid=7)
  with caplog.at_level(logging.WARNING), lease.hold(str(tmp_path), wait=True):
    held = _record(tmp_path)
    assert held['pid'] == os.getpid()
    # Dated when it was taken, not when the wait began: else it would look expired at once.
    assert time.time() - held['since'] < 0.5 and time.time() - held['renewed'] < 0.5
  assert re.search(r'waiting for the lease of host killed-machine, pid 7, since .* UTC, which it has '
                   r'not renewed, to expire: \d+ s left', caplog.text)
  assert 'taking over the lock of host killed-machine' in caplog.text


def test_waiting_ends_with_the_refusal_when_the_holder_renews(tmp_path, monkeypatch):
  monkeypatch.setattr(lease, 'LEASE_SECONDS', 30.0)
  monkeypatch.setattr(lease, 'WAIT_POLL_SECONDS', 0.1)
  _write_record(tmp_path, host='live-machine', pid=7)
  renewing = threading.Timer(0.3, lambda: _write_record(tmp_path, host='live-machine', pid=7))
  renewing.start()
  with pytest.raises(UserError, match=r'host live-machine, pid 7, since .* \(it renewed its lease '
                                      r'while this run waited\)'):
    with lease.hold(str(tmp_path), wait=True):
      pass
  renewing.join()


def test_a_holder_notices_another_run_taking_the_lock(tmp_path, monkeypatch):
  monkeypatch.setattr(lease, 'RENEW_SECONDS', 0.05)
  with lease.hold(str(tmp_path)) as held:
    held.check()
    assert held.writable()
    _write_record(tmp_path, host='other-machine', pid=99)
    assert not held.writable()  # Read at once, as a writer asks just before it writes.
    with pytest.raises(lease.LockLost, match=(
        rf'^{tmp_path}: another run took over the lock: host other-machine, pid 99, since .* UTC; '
        'this run stopped without writing more')):
      held.check()
  assert _record(tmp_path)['host'] == 'other-machine'  # Releasing leaves the new holder's record.

  with lease.hold(str(tmp_path / 'renewer')) as held:  # The renewal thread notices it on its own.
    _write_record(tmp_path / 'renewer', host='other-machine', pid=99)
    deadline = time.monotonic() + 30
    while held.lost() is None and time.monotonic() < deadline:
      time.sleep(0.02)
    with pytest.raises(lease.LockLost, match='host other-machine, pid 99'):
      held.check()


def test_a_holder_that_cannot_renew_for_most_of_the_lease_stops(tmp_path, monkeypatch):
  monkeypatch.setattr(lease, 'RENEW_SECONDS', 0.05)
  monkeypatch.setattr(lease, 'GIVE_UP_SECONDS', 0.5)
  with lease.hold(str(tmp_path)) as held:

    def stalled(path):
      raise OSError(5, 'Input/output error', path)

    monkeypatch.setattr(lease, '_read', stalled)  # Renewals fail from now on.
    held.check()
    deadline = time.monotonic() + 30
    while held.lost() is None and time.monotonic() < deadline:
      time.sleep(0.02)
    with pytest.raises(lease.LockLost, match=r'the lock was not renewed for \d+ s'):
      held.check()
    assert lease.GIVE_UP_SECONDS < lease.LEASE_SECONDS  # It stops before others may take it.


def test_a_suspended_holder_stops_before_renewing_again(tmp_path, monkeypatch):
  with lease.hold(str(tmp_path)) as held:
    (holding,) = held._leases  # pylint: disable=protected-access
    holding._renewed_at -= lease.GIVE_UP_SECONDS + 1  # pylint: disable=protected-access
    assert not held.writable()
    with pytest.raises(lease.LockLost, match='this process was suspended'):
      held.check()


def test_a_failure_on_process_0_reaches_every_process(tmp_path, monkeypatch):
  """An unwritable workdir is an OSError, not a refusal; the other processes must hear of it too."""
  broadcast = []

  def broadcast_one_to_all(value):
    broadcast.append(int(value))
    return value

  monkeypatch.setattr(jax, 'process_count', lambda: 2)
  monkeypatch.setattr(lease.distributed.multihost_utils, 'broadcast_one_to_all',
                      broadcast_one_to_all)
  (tmp_path / lease.LOCK_FILE).mkdir()  # Reading the record fails.
  with pytest.raises(UserError, match=rf'^could not lock {tmp_path}: .*Is a directory.*; make it '
                                      'writable, or use another --workdir$'):
    with lease.hold(str(tmp_path)):
      pass
  assert broadcast == [1]

  monkeypatch.setattr(jax, 'process_index', lambda: 1)  # Told by process 0 that it failed.
  monkeypatch.setattr(lease.distributed.multihost_utils, 'broadcast_one_to_all', lambda value: 1)
  with pytest.raises(UserError, match='^process 0 failed; its error says why$'):
    with lease.hold(str(tmp_path)):
      pass


def test_a_run_whose_lock_is_taken_stops_at_once_with_one_line_and_writes_nothing_more(tmp_path):
  workdir = tmp_path / 'run'
  process = subprocess.Popen(
      [sys.executable, '-m', 'electra_jax.main', '--config=tests/small_config.py',
       '--config.train.steps=100000', '--config.train.checkpoint_every=20', f'--workdir={workdir}'],
      cwd=ROOT, env=cli_env(), text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
  wait_for_step(workdir, 3, process)
  _write_record(workdir, host='other-machine', pid=99, since=time.time())
  written = len(read_metrics(workdir))
  started = time.monotonic()
  _, err = process.communicate(timeout=120)
  assert time.monotonic() - started < 120
  assert process.returncode == 1 and 'Traceback' not in err
  assert re.fullmatch(rf'error: {workdir}: another run took over the lock: host other-machine, pid '
                      r'99, since .* UTC; this run stopped without writing more: .*',
                      err.strip().splitlines()[-1])
  # The write that was under way when the record changed, at most; no checkpoint after it.
  records = read_metrics(workdir)
  assert len(records) <= written + 1
  steps = [int(name) for name in os.listdir(workdir / 'checkpoints') if name.isdigit()]
  assert max(steps, default=0) <= records[-1]['step']
  assert _record(workdir)['host'] == 'other-machine'
