import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np

from electra_jax import train
from tests.conftest import ROOT, cli_env, read_metrics, saved_state
from tests.test_preemption import assert_same_run

# Runs electra_jax.main with orbax's final step of a save (the rename that commits a checkpoint)
# hanging for checkpoint HANG_STEP: the files are being written, and nothing is committed yet.
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

FLAGS = ['--config=tests/small_config.py', '--config.train.steps=8',
         '--config.train.checkpoint_every=2', '--config.train.keep_checkpoints=5']


def _main(workdir, *extra):
  return [sys.executable, '-m', 'electra_jax.main', *FLAGS, f'--workdir={workdir}', *extra]


def test_a_process_killed_mid_save_resumes_from_the_previous_checkpoint(tmp_path):
  reference = tmp_path / 'uninterrupted'
  subprocess.run(_main(reference), cwd=ROOT, env=cli_env(), capture_output=True, timeout=300,
                 check=True)

  workdir, marker = tmp_path / 'killed', tmp_path / 'saving'
  script = tmp_path / 'hanging_save.py'
  script.write_text(_HANGING_SAVE)
  # PYTHONPATH: the root, which python -m would put first, for configs/ and tests/.
  process = subprocess.Popen([sys.executable, str(script), '4', str(marker), *_main(workdir)[3:]],
                             cwd=ROOT, env=cli_env(PYTHONPATH=ROOT), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
  deadline = time.monotonic() + 180
  while not marker.exists():
    assert process.poll() is None and time.monotonic() < deadline
    time.sleep(0.05)
  process.send_signal(signal.SIGKILL)
  process.wait(timeout=60)
  checkpoints = workdir / 'checkpoints'
  unfinished = [name for name in os.listdir(checkpoints) if name.startswith('4.')]
  assert unfinished and os.listdir(checkpoints / unfinished[0])  # Half-written step 4.
  assert sorted(name for name in os.listdir(checkpoints) if name.isdigit()) == ['2']

  rerun = subprocess.run(_main(workdir), cwd=ROOT, env=cli_env(), capture_output=True, text=True,
                         timeout=300, check=False)
  assert rerun.returncode == 0, rerun.stderr[-3000:]
  assert 'at step 2' in rerun.stderr
  assert sorted(os.listdir(checkpoints)) == ['2', '4', '6', '8']  # The leftover is cleaned up.
  assert_same_run(workdir, reference)


def test_a_checkpoint_restores_onto_another_mesh(config, tmp_path):
  config.train.steps, config.train.checkpoint_every, config.train.keep_checkpoints = 4, 2, 5
  config.mesh.data, config.mesh.fsdp, config.mesh.tensor = 8, 1, 1
  first = tmp_path / 'data_parallel'
  reference = train.train_and_evaluate(config, str(first))

  # The step-2 checkpoint of the pure data-parallel run, continued with FSDP and tensor parallelism.
  resharded = tmp_path / 'resharded'
  os.makedirs(resharded / 'checkpoints')
  os.rename(first / 'checkpoints' / '2', resharded / 'checkpoints' / '2')
  config.mesh.data, config.mesh.fsdp, config.mesh.tensor = 2, 2, 2
  state = train.train_and_evaluate(config, str(resharded))

  kernel = state.params['discriminator']['electra']['encoder']['layer'][0]['attention']['query'][
      'kernel']
  assert kernel.sharding.spec == jax.sharding.PartitionSpec('fsdp', 'tensor')
  step_2 = saved_state(resharded / 'checkpoints' / '2')
  assert int(step_2['step']) == 2
  # Another mesh sums in another order: equal up to float32 rounding, not bit for bit.
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=2e-5),
               jax.device_get(state.params), jax.device_get(reference.params))
  for a, b in zip(read_metrics(resharded), read_metrics(first)[2:]):
    assert a['step'] == b['step']
    np.testing.assert_allclose(a['loss'], b['loss'], rtol=1e-5)
