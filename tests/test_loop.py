"""The step loop under hard kills: a run SIGKILLed at random moments (inside a step, during an
asynchronous checkpoint save, during an evaluation) and relaunched each time ends as an uninterrupted
one, bit for bit, with every step and every evaluation in metrics.jsonl once (a record cut short
dropped) and no leftovers."""

import os
import random
import re
import subprocess
import sys
import time

import pytest

from electra_jax import metric_writer, train
from tests.conftest import ROOT, cli_env, read_metrics
from tests.test_preemption import assert_same_run

STEPS, EVAL_EVERY, CHECKPOINT_EVERY = 60, 10, 5
FLAGS = ['--config=tests/small_config.py', f'--config.train.steps={STEPS}',
         '--config.train.log_every=2', f'--config.train.checkpoint_every={CHECKPOINT_EVERY}',
         f'--config.train.eval_every={EVAL_EVERY}', '--config.train.eval_batches=4']
# Names of what a writer leaves until it finishes: orbax's temporary checkpoints, our temporary
# files, exports in progress, lock files.
TEMPORARY = re.compile(r'tmp|partial|\.lock$|^lock\.json$')
# Runs electra_jax.main with orbax's last step of a save (the rename that commits a checkpoint)
# hanging for checkpoint HANG_STEP: its files are being written, and nothing is committed yet.
_HANGING_SAVE = '''
import asyncio, os, runpy, sys
from orbax.checkpoint._src.path import atomicity

HANG_STEP, MARKER = sys.argv[1], sys.argv[2]
commit = atomicity.AtomicRenameTemporaryPath.finalize

async def finalize(self):
  if self.get_final().name == HANG_STEP:
    open(MARKER, 'w').close()
    await asyncio.sleep(3600)
  return await commit(self)

atomicity.AtomicRenameTemporaryPath.finalize = finalize
sys.argv = ['electra_jax.main'] + sys.argv[3:]
runpy.run_module('electra_jax.main', run_name='__main__')
'''


def _command(workdir) -> list[str]:
  return [sys.executable, '-m', 'electra_jax.main', *FLAGS, f'--workdir={workdir}']


def _records(workdir) -> list[dict]:
  try:
    return read_metrics(workdir)
  except (FileNotFoundError, ValueError):  # Not written yet, or a line being written.
    return []


def _evaluating(workdir, after: int) -> bool:
  """The loop writes the train record of an evaluation's step, then evaluates, then writes its eval
  record: the newest record is that train record while the evaluation runs. `after`: a step that an
  earlier attempt logged, which this one may not have reached again."""
  records = _records(workdir)
  return bool(records) and records[-1]['split'] == 'train' and records[-1]['step'] > after and (
      records[-1]['step'] % EVAL_EVERY == 0)


def _kill_when(workdir, moment, rng: random.Random) -> bool:
  """Starts the run and SIGKILLs it at `moment`; False if it finished first."""
  first = (_records(workdir) or [{'step': 0}])[-1]['step']
  command = _command(workdir)
  if moment == 'save':  # Inside the next checkpoint's save, for certain.
    hang = first - first % CHECKPOINT_EVERY + CHECKPOINT_EVERY
    marker = workdir.parent / f'saving_{hang}'
    script = workdir.parent / 'hanging_save.py'
    script.write_text(_HANGING_SAVE)
    command = [sys.executable, str(script), str(hang), str(marker), *command[3:]]
  process = subprocess.Popen(command, cwd=ROOT, env=cli_env(PYTHONPATH=ROOT),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
  target = first + rng.randint(1, 4)
  ready = {'step': lambda: (_records(workdir) or [{'step': 0}])[-1]['step'] >= target,
           'save': lambda: marker.exists(), 'eval': lambda: _evaluating(workdir, first)}[moment]
  deadline = time.monotonic() + 240
  while process.poll() is None and not ready():
    assert time.monotonic() < deadline, f'no {moment} to kill in 240 s'
    time.sleep(0.01)
  if process.poll() is not None:
    assert process.returncode == 0, process.stderr.read()[-3000:]
    return False
  time.sleep(rng.uniform(0, 0.02))  # Somewhere inside it.
  process.kill()
  process.wait()
  if moment == 'save':  # Half-written, never committed.
    assert [name for name in os.listdir(workdir / 'checkpoints') if name.startswith(f'{hang}.')]
    assert not (workdir / 'checkpoints' / str(hang)).exists()
  return True


def test_a_run_killed_at_random_moments_ends_as_an_uninterrupted_one(tmp_path):
  reference = tmp_path / 'uninterrupted'
  subprocess.run(_command(reference), cwd=ROOT, env=cli_env(), capture_output=True, timeout=300,
                 check=True)

  workdir, rng = tmp_path / 'killed', random.Random(0)
  killed = [moment for moment in ('step', 'eval', 'save', 'step', 'save')
            if _kill_when(workdir, moment, rng)]
  assert len(killed) == 5, killed  # The run outlasted all of them, as meant.
  with open(workdir / 'metrics.jsonl', 'a', encoding='utf-8') as f:
    f.write('{"step": 61, "split": "train", "lo')  # A kill while a record was being written.
  result = subprocess.run(_command(workdir), cwd=ROOT, env=cli_env(), capture_output=True,
                          text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-3000:]

  assert_same_run(workdir, reference)  # Every record once, equal, and the same final state.
  assert [r['step'] for r in read_metrics(workdir) if r['split'] == 'eval'] == list(
      range(EVAL_EVERY, STEPS + 1, EVAL_EVERY))
  leftovers = [os.path.join(root, name) for root, dirs, names in os.walk(workdir)
               for name in dirs + names if TEMPORARY.search(name)]
  assert not leftovers


def test_an_evaluation_cut_short_is_run_again_when_the_run_resumes(config, tmp_path, monkeypatch):
  """A run killed while it evaluates step n (its checkpoint n committed or not) must evaluate step n
  when it resumes: the loop saves checkpoint n only after evaluating it."""
  config.train.steps, config.train.checkpoint_every = 4, 2
  config.train.eval_every, config.train.eval_batches = 2, 1
  workdir, write = str(tmp_path / 'run'), metric_writer.MetricWriter.write

  def killed_while_evaluating_step_2(self, step, metrics, *, split='train', **kwargs):
    if split == 'eval' and step == 2:
      raise KeyboardInterrupt
    write(self, step, metrics, split=split, **kwargs)

  monkeypatch.setattr(metric_writer.MetricWriter, 'write', killed_while_evaluating_step_2)
  with pytest.raises(KeyboardInterrupt):
    train.train_and_evaluate(config, workdir)  # Pending checkpoints still finish, as they may.
  monkeypatch.setattr(metric_writer.MetricWriter, 'write', write)
  train.train_and_evaluate(config, workdir)
  assert [r['step'] for r in read_metrics(workdir) if r['split'] == 'eval'] == [2, 4]
