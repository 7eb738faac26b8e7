import jax
from flax import nnx
import jax.numpy as jnp
import numpy as np
import pytest

from electra_jax import flops, pretrainer, rtd


def _tiny(config):
  m = config.model
  m.vocab_size, m.embedding_size, m.hidden_size, m.num_heads, m.intermediate_size = 128, 4, 8, 2, 16
  m.num_layers, m.generator_hidden_size, m.generator_num_layers = 2, 6, 1
  m.max_position_embeddings = config.data.max_seq_length = 10
  config.train.batch_size = 3
  return config


def test_step_flops_match_a_hand_count(config):
  config = _tiny(config)
  config.model.vocab_size = 20
  assert rtd.max_predictions(config) == 1  # int(0.155 * 10)
  # Generator (width 6, FFN 24, 1 layer, 1 head): embedding projection 2*10*4*6 = 480;
  # q, k, v, output 4 * 2*10*6*6 = 2880; FFN 2 * 2*10*6*24 = 5760; scores and values
  # 2 * 2*10*10*6 = 2400; head at its one slot: dense 2*6*4 = 48, projection 2*4*20 = 160.
  generator = 480 + 2880 + 5760 + 2400 + 48 + 160
  # Discriminator (width 8, FFN 16, 2 layers): projection 2*10*4*8 = 640; per layer
  # 4 * 2*10*8*8 = 5120, 2 * 2*10*8*16 = 5120, 2 * 2*10*10*8 = 3200; head 2*10*(8*8 + 8) = 1440.
  discriminator = 640 + 2 * (5120 + 5120 + 3200) + 1440
  assert flops.rtd_forward_flops(config) == generator + discriminator == 40688
  assert flops.step_flops(config) == 3 * 3 * 40688  # Training = 3 forwards; batch of 3.


def _dot_flops(jaxpr) -> int:
  """2 x multiply-adds of every dot_general in a jaxpr, its sub-jaxprs included."""
  total = 0
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == 'dot_general':
      (contracting, _), _ = eqn.params['dimension_numbers']
      lhs = eqn.invars[0].aval.shape
      total += 2 * int(np.prod(eqn.outvars[0].aval.shape)) * int(np.prod([lhs[d] for d in contracting]))
    for param in eqn.params.values():
      for sub in param if isinstance(param, (tuple, list)) else (param,):
        if isinstance(sub, jax.extend.core.ClosedJaxpr):
          total += _dot_flops(sub.jaxpr)
        elif isinstance(sub, jax.extend.core.Jaxpr):
          total += _dot_flops(sub)
  return total


# ModernBERT with windows as long as the sequence: XLA computes every score, as the count then does.
MODERNBERT = dict(architecture='modernbert', local_attention=20, global_attn_every_n_layers=2)


@pytest.mark.parametrize('architecture', [{}, MODERNBERT])
def test_forward_flops_equal_the_matmuls_the_model_runs(config, architecture):
  """The formula against the dot_generals of the traced forward pass (vocabulary a multiple of 128,
  so no padding columns are computed)."""
  config = _tiny(config)
  config.model.update(architecture)
  pair = pretrainer.ElectraPretrainer(config.model, nnx.Rngs(params=0))
  batch = {'input_ids': jnp.full((3, 10), 7, jnp.int32), 'segment_ids': jnp.zeros((3, 10), jnp.int32),
           'input_mask': jnp.ones((3, 10), jnp.int32)}
  jaxpr = jax.make_jaxpr(lambda: rtd.rtd_loss(pair, batch, jax.random.key(0), config,
                                              deterministic=True))()
  assert _dot_flops(jaxpr.jaxpr) == 3 * flops.rtd_forward_flops(config)


def test_sliding_windows_count_only_the_pairs_inside(config):
  # 10 tokens, 2 each side: 3 + 4 + 6 * 5 + 4 + 3 pairs.
  assert flops.attention_pairs(10, 2) == 44
  assert flops.attention_pairs(10, 8) == 98 and flops.attention_pairs(10, 9) == 100
  assert flops.attention_pairs(10, None) == 100
  config = _tiny(config)
  config.model.update(MODERNBERT)
  wide = flops.rtd_forward_flops(config)
  config.model.local_attention = 4
  # The discriminator's layer 1 slides (width 8); the generator's one layer is global.
  assert wide - flops.rtd_forward_flops(config) == 2 * 2 * (100 - 44) * 8


def test_peak_flops_by_device_kind():
  assert flops.peak_flops('NVIDIA H100 80GB HBM3') == 989e12
  assert flops.peak_flops('NVIDIA H100 PCIe') == 756e12
  assert flops.peak_flops('NVIDIA H200') == 989e12
  assert flops.peak_flops('NVIDIA A100-SXM4-80GB') == 312e12
  assert flops.peak_flops('TPU v4') == 275e12
  assert flops.peak_flops('TPU v5 lite') == 197e12
  assert flops.peak_flops('TPU v5') == flops.peak_flops('TPU v5p') == 459e12
  assert flops.peak_flops('TPU v6 lite') == 918e12
  assert flops.peak_flops('cpu') is None
