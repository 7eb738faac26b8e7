import os

import jax
import numpy as np

from electra_jax import train
from tests.conftest import read_metrics, saved_state


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
