import jax
from jax.sharding import PartitionSpec as P
import numpy as np
import pytest

from electra_jax import data, optimizer, sharding, step, validation
from tests.conftest import small_config


def _run(config, devices, steps):
  mesh = sharding.make_mesh(config.mesh, devices)
  training = step.build(step.pretraining_objective(config), *optimizer.create(config.train), mesh,
                        config.mesh.rules)
  init_rng, step_rng = jax.random.split(jax.random.key(config.train.seed))
  state = training.init(init_rng)
  placement = data.Placement(training.batch_sharding, config.train.batch_size)
  source = data.prepare(config, placement.rows).train
  history = []
  for _ in range(steps):
    state, metrics = training.train_step(state, placement.place(next(source)), step_rng)
    history.append(jax.device_get(metrics))
  return state, history


@pytest.fixture(scope='module')
def one_device_run():
  """The small config's first 2 steps on one device: what every sharded layout must reproduce
  (run once for all of them)."""
  config = small_config()
  config.mesh.data, config.mesh.fsdp, config.mesh.tensor = 1, 1, 1
  state, history = _run(config, jax.devices()[:1], steps=2)
  return jax.device_get(state.params), history


@pytest.mark.parametrize('mesh_shape', [(2, 4, 1), (2, 2, 2)])
def test_sharded_step_matches_one_device(config, mesh_shape, one_device_run):
  config.mesh.data, config.mesh.fsdp, config.mesh.tensor = mesh_shape
  sharded_state, sharded = _run(config, jax.devices(), steps=2)
  single_params, single = one_device_run
  for a, b in zip(sharded, single):
    for name in ('loss', 'gen_loss', 'disc_loss', 'disc_accuracy', 'grad_norm'):
      np.testing.assert_allclose(a[name], b[name], rtol=2e-5, err_msg=name)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=2e-5),
               jax.device_get(sharded_state.params), single_params)


def test_a_modernbert_step_on_data_fsdp_and_tensor_axes_matches_one_device(config):
  """Tensor parallelism splits the fused q/k/v and GeGLU kernels by head and column within each
  part, never across parts; sliding and global layers alike."""
  config.model.update(architecture='modernbert', num_layers=3, local_attention=8)
  config.mesh.data, config.mesh.fsdp, config.mesh.tensor = 1, 1, 1
  single_state, single = _run(config, jax.devices()[:1], steps=2)
  config.mesh.data, config.mesh.fsdp, config.mesh.tensor = 2, 2, 2
  sharded_state, sharded = _run(config, jax.devices(), steps=2)
  layer = sharded_state.params['discriminator']['model']['layers'][1]
  assert layer['attn']['Wqkv']['kernel'].sharding.spec == P('fsdp', None, 'tensor')
  assert layer['mlp']['Wi']['kernel'].sharding.spec == P('fsdp', None, 'tensor')
  assert layer['mlp']['Wo']['kernel'].sharding.spec == P('tensor', 'fsdp')
  for a, b in zip(sharded, single):  # The second step's losses read the first step's update.
    for name in ('loss', 'gen_loss', 'disc_loss', 'disc_accuracy', 'grad_norm'):
      np.testing.assert_allclose(a[name], b[name], rtol=2e-5, err_msg=name)
  sharded_params, single_params = (jax.device_get(s.params) for s in (sharded_state, single_state))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=2e-5),
               sharded_params['discriminator'], single_params['discriminator'])
  # The generator's gradients start at rounding level (at init its masked positions read nearly
  # one vector, and their gradients nearly cancel), and Adam scales each entry to the learning
  # rate, so an entry may move by up to the rate either way on another mesh.
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=2 * config.train.learning_rate),
               sharded_params, single_params)


def test_state_is_created_sharded_and_the_step_counts(config):
  config.mesh.data, config.mesh.fsdp, config.mesh.tensor = 2, 2, 2
  state, history = _run(config, jax.devices(), steps=1)
  kernel = state.params['discriminator']['electra']['encoder']['layer'][0]['attention']['query'][
      'kernel']
  assert kernel.sharding.spec == P('fsdp', 'tensor')
  mu = state.opt_state[1].mu['discriminator']['electra']['encoder']['layer'][0]['attention'][
      'query']['kernel']
  assert mu.sharding.spec == P('fsdp', 'tensor')  # Optimizer state is sharded like its parameter.
  assert int(state.step) == 1
  assert set(history[0]) == {
      'loss', 'gen_loss', 'gen_accuracy', 'disc_loss', 'disc_accuracy', 'disc_precision',
      'disc_recall', 'replaced_fraction', 'grad_norm', 'learning_rate', 'update_skipped',
      'sampled_accuracy', 'disc_auc', 'disc_accuracy_replaced', 'disc_accuracy_original',
      'disc_spread', 'disc_base_rate_entropy'}


@pytest.mark.parametrize('kind,mask_prob', [('rtd', float(np.nextafter(1.0, 0.0))), ('mlm', 1.0)])
def test_the_largest_valid_mask_prob_trains_a_finite_step(config, kind, mask_prob):
  # Nearly every candidate is replaced; RTD's discriminator starts at a bias of log-odds ~37.
  config.objective.kind, config.objective.mask_prob = kind, mask_prob
  validation.validate(config, num_devices=8)
  _, history = _run(config, jax.devices(), steps=1)
  assert np.isfinite(history[0]['loss']) and history[0]['update_skipped'] == 0


def test_under_gdes_the_shared_token_table_moves_at_the_generators_rate(config):
  config.model.embedding_sharing, config.train.warmup_steps = 'gdes', 0
  config.train.generator_learning_rate = config.train.learning_rate / 10
  before = jax.device_get(_run(config, jax.devices(), steps=0)[0].params)
  after = jax.device_get(_run(config, jax.devices(), steps=1)[0].params)
  # Adam's first step moves each entry with a gradient by the rate (weight decay adds ~1e-4 of it).
  for path, rate in ((('embeddings', 'word_embeddings'), config.train.generator_learning_rate),
                     (('embedding_delta',), config.train.learning_rate)):
    table_before, table_after = before, after
    for key in path + ('embedding',):
      table_before, table_after = table_before[key], table_after[key]
    np.testing.assert_allclose(np.abs(table_after - table_before).max(), rate, rtol=0.02)


def test_loss_falls_on_a_learnable_corpus(config):
  config.train.learning_rate, config.train.warmup_steps, config.train.steps = 3e-3, 5, 80
  _, history = _run(config, jax.devices(), steps=80)
  losses = np.array([m['loss'] for m in history])
  gen_losses = np.array([m['gen_loss'] for m in history])
  aucs = np.array([m['disc_auc'] for m in history])
  # The untrained discriminator already predicts the base rate (model.DiscriminatorPredictions),
  # so the loss falls by what the two models learn, not by learning that rate.
  assert losses[-10:].mean() < 0.98 * losses[:5].mean()
  assert gen_losses[-10:].mean() < gen_losses[:5].mean() - 0.2
  assert aucs[-10:].mean() > aucs[:5].mean() + 0.02


def test_bfloat16_and_float32_steps_agree(config):
  """Mixed precision changes the numbers by bfloat16's rounding (8-bit mantissa), not the step:
  from the same initial parameters, batches and keys, three steps give losses within 2% and
  parameters whose distance from the float32 ones is under 5% of the float32 update's norm."""
  config.mesh.data = 1
  runs = {}
  for dtype in ('float32', 'bfloat16'):
    config.train.dtype = dtype
    runs[dtype] = _run(config, jax.devices()[:1], steps=3)
  (f32_state, f32), (bf16_state, bf16) = runs['float32'], runs['bfloat16']
  for a, b in zip(bf16, f32):
    for name in ('loss', 'gen_loss', 'disc_loss'):
      np.testing.assert_allclose(a[name], b[name], rtol=0.02, err_msg=name)
  initial = jax.device_get(_run(config, jax.devices()[:1], steps=0)[0].params)
  f32_params, bf16_params = jax.device_get(f32_state.params), jax.device_get(bf16_state.params)
  assert all(leaf.dtype == np.float32 for leaf in jax.tree.leaves(bf16_params))
  norm = lambda tree: np.sqrt(sum(np.sum(np.square(leaf)) for leaf in jax.tree.leaves(tree)))
  update = jax.tree.map(np.subtract, f32_params, initial)
  difference = norm(jax.tree.map(np.subtract, bf16_params, f32_params)) / norm(update)
  assert 0 < difference < 0.05, difference  # 0 would mean the bfloat16 step was not bfloat16.
