import jax
from jax.sharding import NamedSharding, PartitionSpec as P
from flax import nnx
import numpy as np
import pytest

from electra_jax import optimizer, pretrainer, sharding, step
from electra_jax.data.synthetic import SyntheticSource
from electra_jax.errors import UserError


def test_mesh_shape_fills_the_minus_one_axis(config):
  config.mesh.data, config.mesh.fsdp, config.mesh.tensor = -1, 2, 1
  assert sharding.mesh_shape(config.mesh, 8) == (4, 2, 1)
  config.mesh.data, config.mesh.fsdp = 2, 4
  assert sharding.mesh_shape(config.mesh, 8) == (2, 4, 1)
  mesh = sharding.make_mesh(config.mesh)
  assert dict(mesh.shape) == {'data': 2, 'fsdp': 4, 'tensor': 1}


@pytest.mark.parametrize('shape,message', [
    ((-1, -1, 1), 'at most one may be -1'),
    ((3, -1, 1), 'does not divide'),
    ((2, 2, 1), 'needs 4 devices'),
    ((0, 8, 1), 'must be positive'),
])
def test_mesh_shape_rejects_impossible_meshes(config, shape, message):
  config.mesh.data, config.mesh.fsdp, config.mesh.tensor = shape
  with pytest.raises(UserError, match=message):
    sharding.mesh_shape(config.mesh, 8)


def _abstract_variables(config):
  abstract = nnx.eval_shape(lambda: pretrainer.ElectraPretrainer(config.model, nnx.Rngs(params=0)))
  return nnx.split(abstract, nnx.Param)[1]


def test_logical_axes_map_to_mesh_axes_through_the_rules(config):
  specs = sharding.param_partition_specs(_abstract_variables(config), config.mesh.rules)
  layer = specs['discriminator']['electra']['encoder']['layer'][0]
  assert layer['attention']['query']['kernel'] == P('fsdp', 'tensor')
  assert layer['output']['dense']['kernel'] == P('tensor', 'fsdp')
  assert specs['embeddings']['word_embeddings']['embedding'] == P('tensor', 'fsdp')
  assert specs['embeddings']['position_embeddings']['embedding'] == P(None, 'fsdp')
  assert specs['embeddings']['LayerNorm']['scale'] == P(None)  # 'norm' has no rule: replicated.


def test_check_divisible_names_the_parameter(config):
  config.model.intermediate_size = 130  # Not divisible by a 4-way tensor axis.
  config.mesh.data, config.mesh.tensor = 2, 4
  variables = _abstract_variables(config)
  specs = sharding.param_partition_specs(variables, config.mesh.rules)
  params = nnx.to_pure_dict(variables)
  with pytest.raises(UserError, match='intermediate.dense.bias of shape .130,.'):
    sharding.check_divisible(params, specs, sharding.make_mesh(config.mesh))


def test_dcn_axes_multiply_the_slice_axes(config):
  config.mesh.data, config.mesh.fsdp, config.mesh.tensor = -1, 2, 1
  config.mesh.dcn_data = 2
  assert sharding.mesh_shape(config.mesh, 8) == (4, 2, 1)  # 4 devices a slice: data 1 x 2 slices.
  config.mesh.dcn_data = 3
  with pytest.raises(UserError, match='ask for 3 slices, which does not divide the 8 devices'):
    sharding.mesh_shape(config.mesh, 8)


def test_dcn_axes_need_as_many_slices_or_processes(config):
  config.mesh.dcn_data = 2  # One process here, with one slice.
  with pytest.raises(UserError, match='ask for 2 processes, but the job has 1'):
    sharding.make_mesh(config.mesh)


@pytest.mark.parametrize('mesh_shape', [(8, 1, 1), (1, 8, 1), (2, 2, 2)])
def test_replication_report_matches_the_bytes_on_a_device(config, mesh_shape):
  config.mesh.data, config.mesh.fsdp, config.mesh.tensor = mesh_shape
  mesh = sharding.make_mesh(config.mesh)
  training = step.build(step.rtd_objective(config), *optimizer.create(config.train), mesh,
                        config.mesh.rules)
  params = training.init(jax.random.key(0)).params
  total, per_device, replicated = sharding.replication(training.abstract_state.params)
  device = jax.devices()[0]
  leaves = jax.tree.leaves(params)
  assert total == sum(p.nbytes for p in leaves)
  assert per_device == sum(s.data.nbytes for p in leaves for s in p.addressable_shards
                           if s.device == device)
  assert replicated == pytest.approx(
      sum(p.nbytes for p in leaves if p.sharding.is_fully_replicated) / total)
  if mesh_shape == (8, 1, 1):
    assert replicated == 1 and per_device == total
  else:
    assert replicated < 0.05 and per_device < total / 3


def test_activation_constraints_apply_only_inside_an_activation_layout(config):
  config.mesh.data, config.mesh.tensor = 2, 4
  mesh = sharding.make_mesh(config.mesh)
  x = jax.numpy.zeros((8, 4, 16))
  assert sharding.constrain(x, 'batch', None, 'act_mlp') is x  # One device, fine-tuning, tests.
  with sharding.activation_layout(mesh, config.mesh.rules):
    y = jax.jit(lambda x: sharding.constrain(x, 'batch', None, 'act_mlp'))(x)
  assert y.sharding.is_equivalent_to(NamedSharding(mesh, P(('data', 'fsdp'), None, 'tensor')), 3)


def _base_sized_layers(config):
  """One layer of Base's sizes, short rows, the MLM objective (embeddings, encoder, vocabulary
  logits; no second encoder to compile): a train step that compiles in seconds."""
  config.model.update(embedding_size=768, hidden_size=768, num_heads=12, intermediate_size=3072)
  config.objective.kind = 'mlm'
  config.data.max_seq_length, config.train.batch_size = 16, 8
  return config


def _one_step(config, mesh):
  training = step.build(step.pretraining_objective(config), *optimizer.create(config.train), mesh,
                        config.mesh.rules)
  state = training.init(jax.random.key(0))
  source = SyntheticSource(vocab_size=config.model.vocab_size, max_seq_length=16,
                           global_batch_size=8, seed=0, pad_id=0, cls_id=2, sep_id=3)
  batch = jax.device_put(next(source), training.batch_sharding)
  return jax.device_get(training.train_step(state, batch, jax.random.key(1)))


def test_base_sized_layers_split_without_involuntary_rematerialisation(config, capfd):
  config = _base_sized_layers(config)
  expected_state, expected_metrics = _one_step(config, sharding.make_mesh(config.mesh,
                                                                          jax.devices()[:1]))
  for mesh_shape in [(2, 4, 1), (2, 1, 4)]:
    config.mesh.data, config.mesh.fsdp, config.mesh.tensor = mesh_shape
    state, metrics = _one_step(config, sharding.make_mesh(config.mesh))
    # XLA's SPMD partitioner logs it (C++, to the stderr file descriptor) while compiling.
    assert 'Involuntary full rematerialization' not in capfd.readouterr().err, mesh_shape
    np.testing.assert_allclose(metrics['loss'], expected_metrics['loss'], rtol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
                 state.params, expected_state.params)
