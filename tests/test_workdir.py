import json
import logging
import os
import re
import socket
import subprocess
import sys
import time

import pytest

from electra_jax import workdir
from electra_jax.errors import UserError


def _write_config(directory, config: dict) -> None:
  with open(os.path.join(directory, 'config.json'), 'w', encoding='utf-8') as f:
    json.dump(config, f)


def test_a_config_that_differs_outside_what_may_change_is_refused_naming_each_field(tmp_path):
  _write_config(tmp_path, {'model': {'hidden_size': 128, 'num_layers': 2},
                           'train': {'steps': 10, 'batch_size': 16, 'learning_rate': 2e-4},
                           'mesh': {'data': -1}, 'retired': 1})
  changed = {'model': {'hidden_size': 64, 'num_layers': 2},
             'train': {'steps': 20, 'batch_size': 32, 'learning_rate': 1e-4},
             'mesh': {'data': 4}, 'added': 2}
  with pytest.raises(UserError) as refused:
    workdir.check_fits(str(tmp_path), 'config.json', changed, frozenset({'train.steps', 'mesh'}))
  assert str(refused.value) == (
      f'--workdir={tmp_path} holds a run with another config (model.hidden_size: 128 there, 64 '
      'here; train.batch_size: 16 there, 32 here; train.learning_rate: 0.0002 there, 0.0001 here); '
      'use another --workdir, or the config it was run with')

  workdir.check_fits(str(tmp_path), 'config.json', changed,
                     frozenset({'model', 'train.batch_size', 'train.learning_rate', 'train.steps',
                                'mesh'}))
  workdir.check_fits(str(tmp_path / 'new'), 'config.json', changed, frozenset())  # No record.


def test_the_fields_a_resume_may_change_leave_out_what_the_saved_state_means():
  assert {'train.steps', 'train.log_every'} <= workdir.PRETRAINING_RESUMABLE
  assert 'seeds' in workdir.FINETUNING_RESUMABLE
  for fields in (workdir.PRETRAINING_RESUMABLE, workdir.FINETUNING_RESUMABLE):
    assert not fields & {'train.batch_size', 'train.seed', 'model', 'data', 'objective', 'data.source',
                         'data.max_seq_length'}


def test_a_second_holder_is_refused_naming_host_pid_and_since_until_the_first_releases(tmp_path):
  with workdir.lock(str(tmp_path)):
    with open(tmp_path / workdir.LOCK_FILE, encoding='utf-8') as f:
      held = json.load(f)
    assert (held['host'], held['pid']) == (socket.gethostname(), os.getpid())
    since = time.strftime('%Y-%m-%d %H:%M', time.gmtime(held['since']))
    with pytest.raises(UserError, match=(
        rf'^{tmp_path} is in use by another run: host {socket.gethostname()}, pid {os.getpid()}, '
        rf'since {since}:\d\d UTC; wait for it to end.*expires 300 s after its last renewal')):
      with workdir.lock(str(tmp_path)):
        pass
  assert not os.path.exists(tmp_path / workdir.LOCK_FILE)
  with workdir.lock(str(tmp_path)):  # Free again.
    pass


def _write_record(directory, **fields) -> None:
  """A lock record as another run would have left it: this host and pid, by default, renewed now."""
  now = time.time()
  held = {'host': socket.gethostname(), 'pid': os.getpid(), 'since': now - 3600, 'renewed': now,
          **fields}
  with open(os.path.join(directory, workdir.LOCK_FILE), 'w', encoding='utf-8') as f:
    json.dump(held, f)


def test_a_holder_in_another_process_is_refused(tmp_path):
  with subprocess.Popen([sys.executable, '-c', 'import sys; sys.stdin.read()'],
                        stdin=subprocess.PIPE) as holder:
    _write_record(tmp_path, pid=holder.pid)
    with pytest.raises(UserError, match=f'pid {holder.pid}, since'):
      with workdir.lock(str(tmp_path)):
        pass
    holder.stdin.close()


def test_a_lock_left_by_a_dead_process_on_this_host_is_taken_over_with_a_warning(tmp_path, caplog):
  process = subprocess.Popen([sys.executable, '-c', ''])
  process.wait()  # Reaped: no process has its pid now.
  dead_pid = process.pid
  _write_record(tmp_path, pid=dead_pid)
  with caplog.at_level(logging.WARNING), workdir.lock(str(tmp_path)):
    with open(tmp_path / workdir.LOCK_FILE, encoding='utf-8') as f:
      assert json.load(f)['pid'] == os.getpid()
  assert f'taking over the lock of host {socket.gethostname()}, pid {dead_pid}' in caplog.text
  assert 'that process is no longer running' in caplog.text

  _write_record(tmp_path)  # This pid, which this process never held it with: a restarted container.
  with caplog.at_level(logging.WARNING), workdir.lock(str(tmp_path)):
    pass
  assert 'it was an earlier process with this pid' in caplog.text


def test_a_lease_expires_unless_renewed(tmp_path, caplog):
  _write_record(tmp_path, host='lost-machine', pid=1)
  with pytest.raises(UserError, match='host lost-machine, pid 1'):
    with workdir.lock(str(tmp_path)):
      pass
  _write_record(tmp_path, host='lost-machine', pid=1, renewed=time.time() - workdir.LEASE_SECONDS - 1)
  with caplog.at_level(logging.WARNING), workdir.lock(str(tmp_path)):
    pass
  assert re.search(r'pid 1 \(since .*\): it has not renewed its lease for \d+ s', caplog.text)


def test_the_holder_renews_its_lease(tmp_path, monkeypatch):
  monkeypatch.setattr(workdir, 'RENEW_SECONDS', 0.05)

  def held():
    with open(tmp_path / workdir.LOCK_FILE, encoding='utf-8') as f:
      return json.load(f)

  with workdir.lock(str(tmp_path)):
    first = held()
    deadline = time.monotonic() + 30
    while held()['renewed'] == first['renewed'] and time.monotonic() < deadline:
      time.sleep(0.05)
    later = held()
  assert later['since'] == first['since'] and later['renewed'] > first['renewed']
