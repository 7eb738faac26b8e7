from flax import nnx
import jax
import jax.numpy as jnp
import numpy as np

from electra_jax import optimizer, pretrainer, sharding
from electra_jax.finetune.model import Finetuner


def test_warmup_then_linear_decay_to_zero(config):
  config.train.learning_rate, config.train.warmup_steps, config.train.steps = 1.0, 10, 110
  schedule = optimizer.learning_rate_schedule(config.train)
  for step, expected in ((0, 0.0), (5, 0.5), (10, 1.0), (60, 0.5), (110, 0.0)):
    np.testing.assert_allclose(schedule(step), expected, atol=1e-6)


def test_a_run_shorter_than_its_warmup_only_ramps(config):
  config.train.learning_rate, config.train.warmup_steps, config.train.steps = 1.0, 100, 10
  schedule = optimizer.learning_rate_schedule(config.train)
  np.testing.assert_allclose([schedule(s) for s in (0, 5, 9)], [0.0, 0.05, 0.09], atol=1e-6)


def test_original_schedule_multiplies_decay_by_the_warmup_ramp(config):
  config.train.learning_rate, config.train.warmup_steps, config.train.steps = 1.0, 10, 100
  config.train.original_optimizer = True
  schedule = optimizer.learning_rate_schedule(config.train)
  for step, expected in ((0, 0.0), (5, 0.5 * 0.95), (10, 0.9), (60, 0.4), (100, 0.0)):
    np.testing.assert_allclose(schedule(step), expected, atol=1e-6)


def test_weight_decay_skips_layer_norm_and_biases():
  params = {'LayerNorm': {'scale': 1, 'bias': 1}, 'dense': {'kernel': 1, 'bias': 1},
            'word_embeddings': {'embedding': 1}, 'generator_lm_head': {'bias': 1}}
  assert optimizer.decay_mask(params) == {
      'LayerNorm': {'scale': False, 'bias': False}, 'dense': {'kernel': True, 'bias': False},
      'word_embeddings': {'embedding': True}, 'generator_lm_head': {'bias': False}}


def _first_update(config, grad):
  config.train.learning_rate, config.train.warmup_steps, config.train.steps = 0.1, 0, 1000
  config.train.weight_decay, config.train.max_grad_norm = 0.0, 1e9
  tx, _ = optimizer.create(config.train)
  params = {'dense': {'kernel': jnp.zeros(3)}}
  updates, _ = tx.update({'dense': {'kernel': grad}}, tx.init(params), params)
  return np.asarray(updates['dense']['kernel'])


def test_adam_with_and_without_bias_correction(config):
  grad = jnp.array([0.5, -2.0, 1e-3])
  eps = config.train.adam_eps
  # Bias-corrected Adam's first step is -lr * g / (|g| + eps).
  np.testing.assert_allclose(_first_update(config, grad), -0.1 * grad / (np.abs(grad) + eps),
                             rtol=1e-5)
  config.train.original_optimizer = True
  m, v = 0.1 * grad, 0.001 * grad**2
  np.testing.assert_allclose(_first_update(config, grad), -0.1 * m / (np.sqrt(v) + eps), rtol=1e-5)


def test_gradients_are_clipped_to_the_global_norm_before_adam(config):
  config.train.learning_rate, config.train.warmup_steps, config.train.weight_decay = 1.0, 0, 0.0
  config.train.max_grad_norm = 1.0
  # With b1 = b2 = 0 and a huge eps, Adam's step is ~ g / eps: linear in the gradient it receives.
  config.train.adam_b1, config.train.adam_b2, config.train.adam_eps = 0.0, 0.0, 1e4
  tx, _ = optimizer.create(config.train)
  params = {'a': jnp.zeros(4)}
  updates, _ = tx.update({'a': jnp.array([3.0, 4.0, 0.0, 0.0])}, tx.init(params), params)
  np.testing.assert_allclose(np.asarray(updates['a']) * -1e4, [0.6, 0.8, 0, 0], rtol=1e-3)


def _finetuner_params(config, layers=3):
  """Every parameter path of a fine-tuning model with `layers` layers and a projection."""
  config.model.num_layers = layers
  abstract = nnx.eval_shape(lambda: Finetuner(config.model, 'classification', 2, nnx.Rngs(0)))
  params = nnx.to_pure_dict(nnx.state(abstract, nnx.Param))
  return {sharding.dotted(path): leaf
          for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]}


def test_layerwise_decay_gives_each_layer_one_factor_less_than_the_one_above(config):
  paths = _finetuner_params(config, layers=3)
  correct = optimizer.layerwise_decay(3, 0.5)
  original = optimizer.layerwise_decay(3, 0.5, original=True)
  expected = {  # path prefix -> (exponent, original exponent)
      'classifier.': (0, 0),
      'electra.encoder.layer.2.': (1, 2),  # The top layer: the original's off-by-one gives it 2.
      'electra.encoder.layer.1.': (2, 3),
      'electra.encoder.layer.0.': (3, 4),
      'electra.embeddings_project.': (4, 5),
      'embeddings.': (4, 5),
  }
  for path in paths:
    prefix = next(p for p in expected if path.startswith(p))
    exponent, original_exponent = expected[prefix]
    assert correct(path) == 0.5 ** exponent, path
    assert original(path) == 0.5 ** original_exponent, path
  assert any(p.startswith('electra.embeddings_project.') for p in paths)


def test_the_optimizer_scales_each_update_by_its_factor(config):
  config.train.learning_rate, config.train.warmup_steps, config.train.steps = 1.0, 0, 10
  config.train.weight_decay = 0.1
  params = {'embeddings': {'w': {'kernel': jnp.ones(3)}}, 'classifier': {'kernel': jnp.ones(3)},
            'electra': {'encoder': {'layer': {'0': {'b': {'bias': jnp.ones(3)}}}}}}
  grads = jax.tree.map(lambda p: jnp.full_like(p, 0.5), params)
  plain, _ = optimizer.create(config.train)
  factored, _ = optimizer.create(config.train, optimizer.layerwise_decay(1, 0.5))
  reference = plain.update(grads, plain.init(params), params)[0]
  scaled = factored.update(grads, factored.init(params), params)[0]
  # One layer: head 1, layer 0 decay^1, embeddings decay^2; weight decay is scaled with the rest.
  for path, factor in ((('classifier', 'kernel'), 1.0), (('embeddings', 'w', 'kernel'), 0.25),
                       (('electra', 'encoder', 'layer', '0', 'b', 'bias'), 0.5)):
    ref, got = reference, scaled
    for key in path:
      ref, got = ref[key], got[key]
    np.testing.assert_allclose(got, factor * ref, rtol=1e-6)
    assert np.all(np.asarray(ref) != 0)


def test_the_generator_gets_its_own_optimizer_and_rate(config):
  config.train.warmup_steps = 0
  config.train.generator_learning_rate = config.train.learning_rate / 10
  params = {'generator': {'w': {'kernel': jnp.ones((2, 2))}},
            'discriminator': {'w': {'kernel': jnp.ones((2, 2))}},
            'embeddings': {'word_embeddings': {'embedding': jnp.ones((3, 2))}}}
  assert optimizer.generator_labels(params) == {
      'generator': {'w': {'kernel': 'generator'}}, 'discriminator': {'w': {'kernel': 'rest'}},
      'embeddings': {'word_embeddings': {'embedding': 'rest'}}}
  tx, _ = optimizer.create(config.train)
  # Adam's first step is lr * sign(g) whatever g's size; weight decay adds lr * wd * param.
  grads = {'generator': {'w': {'kernel': jnp.full((2, 2), 0.01)}},
           'discriminator': {'w': {'kernel': jnp.full((2, 2), 1.0)}},
           'embeddings': {'word_embeddings': {'embedding': jnp.zeros((3, 2))}}}
  updates, _ = tx.update(grads, tx.init(params), params)
  np.testing.assert_allclose(updates['generator']['w']['kernel'],
                             -config.train.generator_learning_rate * (1 + config.train.weight_decay),
                             rtol=1e-3)
  np.testing.assert_allclose(updates['discriminator']['w']['kernel'],
                             -config.train.learning_rate * (1 + config.train.weight_decay), rtol=1e-3)


def _pretrainer_labels(config, sharing):
  """generator_labels of every parameter path of the pre-training model with `sharing`."""
  config.model.embedding_sharing = sharing
  abstract = nnx.eval_shape(lambda: pretrainer.ElectraPretrainer(config.model, nnx.Rngs(0)))
  labels = optimizer.generator_labels(nnx.to_pure_dict(nnx.state(abstract, nnx.Param)))
  return {sharding.dotted(path): label
          for path, label in jax.tree_util.tree_flatten_with_path(labels)[0]}


def test_under_gdes_the_shared_token_table_is_the_generators(config):
  labels = _pretrainer_labels(config, 'gdes')
  # Only the generator's loss reaches the table: the discriminator reads stop_gradient(table) + delta.
  assert labels['embeddings.word_embeddings.embedding'] == 'generator'
  assert labels['embedding_delta.embedding'] == 'rest'
  assert labels['embeddings.position_embeddings.embedding'] == 'rest'  # Both losses train these.
  assert labels['embeddings.LayerNorm.scale'] == 'rest'
  for path, label in labels.items():
    assert label == ('generator' if path.startswith('generator.') or
                     path == 'embeddings.word_embeddings.embedding' else 'rest'), path
  # Plain tying: both losses train the table, so it stays with the discriminator's optimizer.
  assert _pretrainer_labels(config, 'shared')['embeddings.word_embeddings.embedding'] == 'rest'
  untied = _pretrainer_labels(config, 'untied')
  assert untied['generator_embeddings.word_embeddings.embedding'] == 'generator'
  assert untied['embeddings.word_embeddings.embedding'] == 'rest'


def test_under_gdes_modernberts_token_table_is_the_generators(config):
  config.model.architecture = 'modernbert'
  labels = _pretrainer_labels(config, 'gdes')
  assert labels['embeddings.tok_embeddings.embedding'] == 'generator'
  assert labels['embeddings.norm.scale'] == 'rest'


def test_under_gdes_the_shared_token_table_moves_at_the_generators_rate(config):
  config.train.warmup_steps = 0
  config.train.generator_learning_rate = config.train.learning_rate / 10
  params = {'generator': {'w': {'kernel': jnp.ones((2, 2))}},
            'discriminator': {'w': {'kernel': jnp.ones((2, 2))}},
            'embeddings': {'word_embeddings': {'embedding': jnp.ones((3, 2))},
                           'position_embeddings': {'embedding': jnp.ones((3, 2))}},
            'embedding_delta': {'embedding': jnp.ones((3, 2))}}
  grads = jax.tree.map(lambda p: jnp.full_like(p, 0.5), params)
  tx, _ = optimizer.create(config.train)
  updates, _ = tx.update(grads, tx.init(params), params)
  # Adam's first step is lr * sign(g); weight decay adds lr * wd * param (1 here).
  generator_step = -config.train.generator_learning_rate * (1 + config.train.weight_decay)
  rest_step = -config.train.learning_rate * (1 + config.train.weight_decay)
  for block, expected in (('generator', generator_step), ('discriminator', rest_step)):
    np.testing.assert_allclose(updates[block]['w']['kernel'], expected, rtol=1e-3)
  embeddings = updates['embeddings']
  np.testing.assert_allclose(embeddings['word_embeddings']['embedding'], generator_step, rtol=1e-3)
  np.testing.assert_allclose(embeddings['position_embeddings']['embedding'], rest_step, rtol=1e-3)
  np.testing.assert_allclose(updates['embedding_delta']['embedding'], rest_step, rtol=1e-3)


def test_layerwise_decay_reads_modernbert_layers(config):
  config.model.architecture = 'modernbert'
  paths = _finetuner_params(config, layers=3)
  factor = optimizer.layerwise_decay(3, 0.5)
  expected = {'classifier.': 0, 'head.': 0, 'model.final_norm.': 0, 'model.layers.2.': 1,
              'model.layers.1.': 2, 'model.layers.0.': 3, 'embeddings.': 4}
  for path in paths:
    prefix = next(p for p in expected if path.startswith(p))
    assert factor(path) == 0.5 ** expected[prefix], path
  assert any(p.startswith('head.') for p in paths)
