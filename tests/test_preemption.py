"""SIGTERM/SIGINT: the run finishes its step, checkpoints, exits 0 with one line, and a rerun resumes
bit-exactly (metrics and final state equal an uninterrupted run's)."""

import os
import re
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from tests.conftest import ROOT, cli_env, read_metrics, saved_state

STEPS = 300  # Enough that the run is still going when each signal arrives.
# log_every does not divide the stop step in general: the unfinished interval must survive too.
FLAGS = ['--config=tests/small_config.py', f'--config.train.steps={STEPS}',
         '--config.train.log_every=7', '--config.train.checkpoint_every=100',
         '--config.train.eval_every=250', '--config.train.eval_batches=2']


def _command(workdir):
  return [sys.executable, '-m', 'electra_jax.main', *FLAGS, f'--workdir={workdir}']


def wait_for_step(workdir, step: int, process, timeout: float = 180) -> None:
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    assert process.poll() is None, process.communicate()[1][-3000:]
    if os.path.exists(os.path.join(workdir, 'metrics.jsonl')):
      records = read_metrics(workdir)
      if records and records[-1]['step'] >= step:
        return
    time.sleep(0.02)
  pytest.fail(f'no step {step} in {timeout}s')


def assert_same_run(workdir, reference) -> None:
  """Every metrics.jsonl record (but the wall-clock rate) and the final state are identical."""
  got, want = read_metrics(workdir), read_metrics(reference)
  assert [(r['step'], r['split']) for r in got] == [(r['step'], r['split']) for r in want]
  for a, b in zip(got, want):
    assert {k: v for k, v in a.items() if k != 'tokens_per_sec'} == {
        k: v for k, v in b.items() if k != 'tokens_per_sec'}, a['step']
  final = os.path.join('checkpoints', str(want[-1]['step']))
  jax.tree.map(np.testing.assert_array_equal, saved_state(os.path.join(workdir, final)),
               saved_state(os.path.join(reference, final)))


def _start(workdir) -> subprocess.Popen:
  return subprocess.Popen(_command(workdir), cwd=ROOT, env=cli_env(), text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _stop(workdir, process, signum, after: int) -> tuple[int, str]:
  """Signals the run once it has logged step `after`; checks how it stopped; returns the step and
  the run's stderr."""
  wait_for_step(workdir, after, process)
  process.send_signal(signum)
  out, err = process.communicate(timeout=120)
  assert process.returncode == 0, err[-3000:]
  assert 'Traceback' not in err
  stopped = re.fullmatch(r'stopped on request at step (\d+): checkpoint saved in (\S+); run the '
                         r'same command again to resume', out.strip())
  assert stopped, out
  step = int(stopped[1])
  assert after <= step < STEPS
  assert stopped[2] == str(workdir / 'checkpoints' / str(step))
  assert os.path.isdir(stopped[2])
  assert read_metrics(workdir)[-1]['step'] <= step
  return step, err


def test_a_stopped_run_saves_exits_0_and_resumes_bit_exactly(tmp_path):
  """Stopped by SIGTERM, resumed, stopped again by SIGINT, resumed to the end: the same run as an
  uninterrupted one (one sequence checks both signals and both resumes)."""
  uninterrupted = tmp_path / 'uninterrupted'
  subprocess.run(_command(uninterrupted), cwd=ROOT, env=cli_env(), capture_output=True,
                 timeout=300, check=True)

  workdir = tmp_path / 'run'
  first, _ = _stop(workdir, _start(workdir), signal.SIGTERM, after=14)
  second, err = _stop(workdir, _start(workdir), signal.SIGINT, after=first + 14)
  assert f'at step {first}' in err  # Resumed from the SIGTERM checkpoint.

  again = subprocess.run(_command(workdir), cwd=ROOT, env=cli_env(), capture_output=True,
                         text=True, timeout=300, check=False)
  assert again.returncode == 0, again.stderr[-3000:]
  assert f'at step {second}' in again.stderr
  assert_same_run(workdir, uninterrupted)
