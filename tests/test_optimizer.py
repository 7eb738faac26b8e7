import jax.numpy as jnp
import numpy as np

from electra_jax import optimizer


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
