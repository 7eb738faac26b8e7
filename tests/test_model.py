import jax
import jax.numpy as jnp
from flax import nnx
import numpy as np
import pytest

from electra_jax import model, pretrainer, rtd
from electra_jax.data.synthetic import SyntheticSource


def _params_and_graphdef(config):
  pair = pretrainer.ElectraPretrainer(config.model, nnx.Rngs(params=0))
  graphdef, state = nnx.split(pair, nnx.Param)
  return graphdef, nnx.to_pure_dict(state)


def _batch(config, rows=4):
  source = SyntheticSource(vocab_size=config.model.vocab_size,
                           max_seq_length=config.data.max_seq_length, global_batch_size=rows,
                           seed=0, pad_id=0, cls_id=2, sep_id=3)
  return {k: jnp.asarray(v) for k, v in next(source).items()}


def _paths(tree):
  return {'.'.join(str(getattr(k, 'key', k)) for k in path)
          for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]}


def test_parameter_paths_follow_the_hugging_face_layout(config):
  _, params = _params_and_graphdef(config)
  paths = _paths(params)
  for name in [
      'embeddings.word_embeddings.embedding', 'embeddings.position_embeddings.embedding',
      'embeddings.token_type_embeddings.embedding', 'embeddings.LayerNorm.scale',
      'discriminator.electra.embeddings_project.kernel',
      'discriminator.electra.encoder.layer.0.attention.query.kernel',
      'discriminator.electra.encoder.layer.0.attention.output.dense.kernel',
      'discriminator.electra.encoder.layer.0.attention.output.LayerNorm.bias',
      'discriminator.electra.encoder.layer.0.intermediate.dense.kernel',
      'discriminator.electra.encoder.layer.0.output.dense.kernel',
      'discriminator.electra.encoder.layer.0.output.LayerNorm.scale',
      'discriminator.discriminator_predictions.dense.kernel',
      'discriminator.discriminator_predictions.dense_prediction.kernel',
      'generator.generator_predictions.dense.kernel', 'generator.generator_predictions.LayerNorm.scale',
      'generator.generator_lm_head.bias']:
    assert name in paths, name
  assert not any(p.startswith('generator_embeddings') for p in paths)
  # Kernels are [in, out], the transpose of torch's Linear.weight.
  assert params['discriminator']['electra']['encoder']['layer'][0]['intermediate']['dense'][
      'kernel'].shape == (config.model.hidden_size, config.model.intermediate_size)


def test_generator_sizes_follow_the_paper(config):
  config.model.hidden_size, config.model.generator_fraction = 768, 1 / 3
  assert model.generator_sizes(config.model) == (256, 4, 1024, config.model.num_layers)
  config.model.hidden_size, config.model.generator_fraction = 256, 1 / 4
  assert model.generator_sizes(config.model)[:2] == (64, 1)
  config.model.generator_hidden_size, config.model.generator_num_layers = 96, 3
  assert model.generator_sizes(config.model) == (96, 1, 384, 3)


def _split_losses(config, params, graphdef, batch):
  """Gradient of each loss alone, with the masking and sampling of one rtd_loss call."""

  def loss(params, weights):
    config.objective.gen_weight, config.objective.disc_weight = weights
    value, _ = rtd.rtd_loss(nnx.merge(graphdef, params), batch, jax.random.key(0), config,
                            deterministic=True)
    return value

  return jax.grad(loss)(params, (1.0, 0.0)), jax.grad(loss)(params, (0.0, 1.0))


def test_shared_embeddings_are_one_array_trained_by_both_losses(config):
  graphdef, params = _params_and_graphdef(config)
  pair = nnx.merge(graphdef, params)
  assert pair.generator_embeddings is None
  gen_grad, disc_grad = _split_losses(config, params, graphdef, _batch(config))
  for grads in (gen_grad, disc_grad):
    assert np.abs(grads['embeddings']['word_embeddings']['embedding']).sum() > 0
    assert np.abs(grads['embeddings']['LayerNorm']['scale']).sum() > 0
  # Each loss reaches only its own transformer.
  assert not np.abs(gen_grad['discriminator']['discriminator_predictions']['dense']['kernel']).any()
  assert not np.abs(disc_grad['generator']['generator_predictions']['dense']['kernel']).any()


def test_untied_embeddings_are_separate(config):
  config.model.embedding_sharing = 'untied'
  graphdef, params = _params_and_graphdef(config)
  gen_grad, disc_grad = _split_losses(config, params, graphdef, _batch(config))
  assert np.abs(gen_grad['generator_embeddings']['word_embeddings']['embedding']).sum() > 0
  assert not np.abs(gen_grad['embeddings']['word_embeddings']['embedding']).any()
  assert not np.abs(disc_grad['generator_embeddings']['word_embeddings']['embedding']).any()


def test_the_untrained_discriminator_predicts_the_replaced_fraction(config):
  # From p = 0.5, the first updates would drag every weight towards one output for every token.
  pair = pretrainer.ElectraPretrainer(config.model, nnx.Rngs(params=0), replaced_fraction=0.15)
  batch = _batch(config)
  logits = pair.discriminator_logits(batch['input_ids'], batch['segment_ids'],
                                           batch['input_mask'], deterministic=True)
  np.testing.assert_allclose(jax.nn.sigmoid(logits).mean(), 0.15, atol=0.01)
  np.testing.assert_allclose(pair.discriminator.discriminator_predictions.dense_prediction
                             .bias[...], [np.log(0.15 / 0.85)], rtol=1e-6)


def test_gdes_trains_the_shared_table_by_the_generator_loss_only(config):
  config.model.embedding_sharing = 'gdes'
  graphdef, params = _params_and_graphdef(config)
  assert not np.abs(params['embedding_delta']['embedding']).any()  # Zero at init.
  gen_grad, disc_grad = _split_losses(config, params, graphdef, _batch(config))
  words = lambda grads: grads['embeddings']['word_embeddings']['embedding']
  assert np.abs(words(gen_grad)).sum() > 0 and not np.abs(words(disc_grad)).any()
  assert np.abs(disc_grad['embedding_delta']['embedding']).sum() > 0
  assert not np.abs(gen_grad['embedding_delta']['embedding']).any()
  # The rest of the embedding block stays shared, as with 'shared'.
  assert np.abs(disc_grad['embeddings']['position_embeddings']['embedding']).sum() > 0


def test_the_folded_gdes_table_is_what_the_discriminator_reads(config):
  config.model.embedding_sharing = 'gdes'
  pair = pretrainer.ElectraPretrainer(config.model, nnx.Rngs(params=0))
  delta = jax.random.normal(jax.random.key(1), pair.embedding_delta.embedding.shape)
  pair.embedding_delta.embedding[...] = delta
  folded = pretrainer.fold_embedding_delta(nnx.to_pure_dict(nnx.state(pair, nnx.Param)))
  assert 'embedding_delta' not in folded
  config.model.embedding_sharing = 'shared'
  shared = pretrainer.ElectraPretrainer(config.model, nnx.Rngs(params=0))
  nnx.update(shared, nnx.State(folded))
  batch = _batch(config)
  args = batch['input_ids'], batch['segment_ids'], batch['input_mask']
  np.testing.assert_allclose(shared.discriminator_logits(*args, deterministic=True),
                             pair.discriminator_logits(*args, deterministic=True), atol=1e-5)


def test_the_mlm_baseline_keeps_its_encoder_where_the_discriminator_s_is(config):
  mlm = pretrainer.pretraining_model(config.model, 'mlm', nnx.Rngs(params=0))
  paths = _paths(nnx.to_pure_dict(nnx.state(mlm, nnx.Param)))
  assert 'discriminator.electra.encoder.layer.0.attention.query.kernel' in paths
  assert 'discriminator.generator_lm_head.bias' in paths
  assert not any(p.startswith('generator') for p in paths)
  # The discriminator's sizes, not the generator's.
  assert mlm.discriminator.electra.encoder.layer[0].attention.query.kernel.shape == (
      config.model.hidden_size, config.model.hidden_size)
  batch = _batch(config)
  logits = mlm.mlm_logits(batch['input_ids'], batch['segment_ids'], batch['input_mask'],
                          jnp.zeros((4, 3), jnp.int32), deterministic=True)
  assert logits.shape == (4, 3, model.padded_vocab_size(config.model))


def test_padding_does_not_change_real_positions(config):
  graphdef, params = _params_and_graphdef(config)
  pair = nnx.merge(graphdef, params)
  ids = jnp.array([[2, 10, 11, 12, 3, 0, 0, 0]])
  segments = jnp.zeros_like(ids)
  mask = (ids != 0).astype(jnp.int32)
  garbage = ids.at[0, 5:].set(77)
  out = pair.discriminator_logits(ids, segments, mask, deterministic=True)
  out_garbage = pair.discriminator_logits(garbage, segments, mask, deterministic=True)
  np.testing.assert_allclose(out[0, :5], out_garbage[0, :5], atol=1e-6)
  positions = jnp.array([[1, 2]])
  gen = pair.generator_logits(ids, segments, mask, positions, deterministic=True)
  assert gen.shape == (1, 2, config.model.vocab_size) and gen.dtype == jnp.float32


def test_dropout_depends_on_the_rng_only_in_training(config):
  graphdef, params = _params_and_graphdef(config)
  pair = nnx.merge(graphdef, params)
  batch = _batch(config)
  args = (batch['input_ids'], batch['segment_ids'], batch['input_mask'])
  a = pair.discriminator_logits(*args, deterministic=False, rngs=nnx.Rngs(dropout=0))
  b = pair.discriminator_logits(*args, deterministic=False, rngs=nnx.Rngs(dropout=1))
  c = pair.discriminator_logits(*args, deterministic=False, rngs=nnx.Rngs(dropout=0))
  assert not np.allclose(a, b)
  np.testing.assert_array_equal(a, c)


def test_vocabulary_is_padded_and_padding_ids_are_never_predicted(config):
  config.model.vocab_size = 250
  graphdef, params = _params_and_graphdef(config)
  assert params['embeddings']['word_embeddings']['embedding'].shape[0] == 256
  assert params['generator']['generator_lm_head']['bias'].shape == (256,)
  pair = nnx.merge(graphdef, params)
  batch = _batch(config)
  gen = pair.generator_logits(batch['input_ids'], batch['segment_ids'], batch['input_mask'],
                                    jnp.zeros((4, 3), jnp.int32), deterministic=True)
  assert gen.shape == (4, 3, 256)
  assert np.isneginf(gen[..., 250:]).all() and np.isfinite(gen[..., :250]).all()


def _pretrainer(config, compute):
  pair = pretrainer.ElectraPretrainer(config.model, nnx.Rngs(params=0), compute)
  return nnx.split(pair, nnx.Param)


# ModernBERT with six layers, global every third: layer 0, one scanned group (1, 2, 3) and two left
# over (4, 5), windows of 4 keys each side in 32-token rows.
MODERNBERT = dict(architecture='modernbert', num_layers=6, local_attention=8, embedding_dropout=0.1,
                  attention_dropout=0.1, mlp_dropout=0.1)


@pytest.mark.parametrize('compute,architecture', [
    (model.Compute(scan_layers=True), {'num_layers': 3}),
    (model.Compute(remat='full'), {'num_layers': 3}),
    (model.Compute(remat='matmuls', scan_layers=True), {'num_layers': 3}),
    (model.Compute(scan_layers=True), MODERNBERT),
    (model.Compute(remat='matmuls', scan_layers=True), MODERNBERT)])
def test_scan_and_remat_compute_the_same_function(config, compute, architecture):
  """With dropout on: each layer draws from its own key whether unrolled, scanned or recomputed."""
  config.model.update(architecture)
  batch = _batch(config)
  positions = jnp.tile(jnp.arange(1, 6)[None], (4, 1))

  def loss_and_grads(compute):
    graphdef, state = _pretrainer(config, compute)

    def loss(params):
      pair = nnx.merge(graphdef, params)
      rngs = nnx.Rngs(dropout=7)
      disc = pair.discriminator_logits(batch['input_ids'], batch['segment_ids'],
                                             batch['input_mask'], deterministic=False, rngs=rngs)
      gen = pair.generator_logits(batch['input_ids'], batch['segment_ids'],
                                        batch['input_mask'], positions, deterministic=False,
                                        rngs=rngs)
      return jnp.sum(disc ** 2) + jnp.sum(jax.nn.log_softmax(gen)[..., 10])

    return jax.jit(jax.value_and_grad(loss))(nnx.to_pure_dict(state))

  (reference, reference_grads), (value, grads) = loss_and_grads(model.Compute()), loss_and_grads(compute)
  np.testing.assert_allclose(value, reference, rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), grads,
               reference_grads)


def test_bfloat16_keeps_float32_parameters_and_outputs_and_stays_close(config):
  batch = _batch(config)
  args = (batch['input_ids'], batch['segment_ids'], batch['input_mask'])
  outputs = {}
  for name, dtype in model.DTYPES.items():
    graphdef, state = _pretrainer(config, model.Compute(dtype=dtype))
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(nnx.to_pure_dict(state)))
    pair = nnx.merge(graphdef, state)
    outputs[name] = (pair.discriminator_logits(*args, deterministic=True),
                     pair.generator_logits(*args, jnp.ones((4, 2), jnp.int32),
                                                 deterministic=True))
  for bf16, f32 in zip(outputs['bfloat16'], outputs['float32']):
    assert bf16.dtype == jnp.float32
    # bfloat16 keeps 8 bits of mantissa: logits of order 1 differ by a few 1e-2 at most.
    np.testing.assert_allclose(bf16[..., :100], f32[..., :100], atol=0.1)
    assert not np.array_equal(bf16, f32)


@pytest.mark.parametrize('shape', [(64, 128, 256), (64, 128, 255)])  # 16-bit halves; odd: bernoulli.
def test_dropout_keeps_one_minus_rate_of_the_elements_and_the_expectation(shape):
  x = jnp.ones(shape)
  y = model.dropout(x, 0.1, jax.random.key(0))
  assert abs(float((y == 0).mean()) - 0.1) < 0.002  # 2M elements: the standard error is 0.0002.
  assert abs(float(y.mean()) - 1) < 0.003
  assert np.unique(np.asarray(y)).tolist() == [0, np.float32(1 / 0.9)]
  assert model.dropout(x, 0.1, None) is x
