"""A job of two processes (4 fake CPU devices each, gloo collectives) against one process with 8."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from electra_jax import distributed, files, lease
from electra_jax.errors import UserError
from tests.conftest import ROOT, cli_env, read_metrics, write_corpus
from tests.test_preemption import wait_for_step

STEPS = 120  # Enough that the job is still going when the stop request reaches both processes.
# The small config (float32, like tiny) on a generated text corpus: the tokenizer and dataset are
# built by process 0 while process 1 waits, as with any text source.
FLAGS = ['--config=tests/small_config.py', f'--config.train.steps={STEPS}',
         '--config.train.log_every=5', '--config.train.eval_every=60',
         '--config.train.eval_batches=2', '--config.train.checkpoint_every=60',
         '--config.data.eval_fraction=0.2']


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _text(data_dir) -> str:
  return f'--config.data.source=text:{os.path.join(os.path.dirname(data_dir), "corpus", "*.txt")}'


def _start_job(workdir, data_dir, flags=None) -> list[subprocess.Popen]:
  """Two processes; the slow network (dcn) axis across them, FSDP within each."""
  address = f'127.0.0.1:{_free_port()}'
  flags = flags or [*FLAGS, _text(data_dir)]
  return [subprocess.Popen(
      [sys.executable, '-m', 'electra_jax.main', *flags, f'--workdir={workdir}',
       '--config.mesh.dcn_data=2', '--config.mesh.fsdp=2', f'--coordinator_address={address}',
       '--num_processes=2', f'--process_id={index}'],
      cwd=ROOT, env=cli_env(4, data_dir), text=True, stdout=subprocess.PIPE,
      stderr=subprocess.PIPE) for index in range(2)]


def _finish(processes) -> list[tuple[str, str]]:
  outputs = [p.communicate(timeout=600) for p in processes]
  for p, (_, err) in zip(processes, outputs):
    assert p.returncode == 0, err[-3000:]
  return outputs


def test_two_processes_log_what_one_process_with_all_devices_logs(tmp_path):
  data_dir, workdir = str(tmp_path / 'data'), tmp_path / 'two'
  write_corpus(str(tmp_path / 'corpus'), documents=80)
  # Both processes start on an empty data cache: process 0 builds, process 1 reuses.
  processes = _start_job(workdir, data_dir)
  wait_for_step(workdir, 5, processes[0])
  processes[1].send_signal(signal.SIGTERM)  # A preemption notice to one host stops both.
  outputs = _finish(processes)
  stopped = re.search(r'stopped on request at step (\d+): checkpoint saved in (\S+);',
                      outputs[0][0])
  assert stopped and 5 <= int(stopped[1]) < STEPS, outputs[0]
  assert 'stopped on request' not in outputs[1][0]  # Logs and messages come from process 0.
  assert os.path.isdir(stopped[2])

  _finish(_start_job(workdir, data_dir))  # Resumes from the checkpoint both processes wrote.
  single = tmp_path / 'one'
  subprocess.run([sys.executable, '-m', 'electra_jax.main', *FLAGS, _text(data_dir),
                  f'--workdir={single}',
                  '--config.mesh.data=4', '--config.mesh.fsdp=2'], cwd=ROOT,
                 env=cli_env(8, data_dir), capture_output=True, timeout=600, check=True)

  two, one = read_metrics(workdir), read_metrics(single)
  assert [(r['step'], r['split']) for r in two] == [(r['step'], r['split']) for r in one]
  assert [r['step'] for r in one if r['split'] == 'eval'] == [60, 120]
  for a, b in zip(two, one):
    for name in ('loss', 'gen_loss', 'disc_loss', 'disc_accuracy', 'grad_norm'):
      if name in b:
        np.testing.assert_allclose(a[name], b[name], atol=1e-5, rtol=0, err_msg=(a['step'], name))


def test_a_job_whose_lock_another_run_takes_stops_on_every_process(tmp_path):
  workdir = tmp_path / 'run'
  processes = _start_job(workdir, str(tmp_path / 'data'), [
      '--config=tests/small_config.py', '--config.train.steps=100000',
      '--config.train.checkpoint_every=1000'])
  wait_for_step(workdir, 3, processes[0])
  now = time.time()
  files.write_atomically(str(workdir / lease.LOCK_FILE), json.dumps(
      {'host': 'other-machine', 'pid': 99, 'since': now, 'renewed': now}))
  outputs = [p.communicate(timeout=300) for p in processes]
  assert [p.returncode for p in processes] == [1, 1], outputs
  assert all('Traceback' not in err for _, err in outputs)
  assert re.match(rf'error: {workdir}: another run took over the lock: host other-machine, pid 99',
                  outputs[0][1].strip().splitlines()[-1])
  assert outputs[1][1].strip().splitlines()[-1] == (
      'error: process 0 lost the lock of the workdir; its error says why')
  # They stopped together through the preemption sync point, whose stop saves, but not this one.
  saved = os.listdir(workdir / 'checkpoints') if os.path.isdir(workdir / 'checkpoints') else []
  assert not [name for name in saved if name.isdigit()]


def test_some_but_not_all_flags_are_an_error():
  with pytest.raises(UserError, match='--coordinator_address, --process_id missing'):
    distributed.initialize(None, 2, None)
  with pytest.raises(UserError, match=r'--process_id=2 must be in \[0, --num_processes=2\)'):
    distributed.initialize('127.0.0.1:1234', 2, 2)


def test_without_flags_or_a_cluster_the_process_runs_alone():
  env = {name: value for name, value in os.environ.items()
         if not name.startswith(('SLURM_', 'OMPI_', 'KUBERNETES_', 'JAX_COORDINATOR'))}
  result = subprocess.run(
      [sys.executable, '-c', 'import jax; from electra_jax import distributed; '
       'distributed.initialize(None, None, None); '
       'print(jax.distributed.is_initialized(), jax.process_count())'],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True)
  assert result.stdout.split() == ['False', '1']


def test_the_cli_names_missing_flags_in_one_line(tmp_path):
  result = subprocess.run(
      [sys.executable, '-m', 'electra_jax.main', '--config=tests/small_config.py',
       f'--workdir={tmp_path}', '--num_processes=2'],
      cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=120, check=False)
  assert result.returncode == 1 and 'Traceback' not in result.stderr
  assert result.stderr.strip().splitlines()[-1].startswith(
      'error: --coordinator_address, --process_id missing')
