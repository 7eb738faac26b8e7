"""Model FLOPs of one pre-training step (RTD or the MLM baseline), and the peak bfloat16 FLOP/s of the
devices it runs on.

Model FLOPs count the matrix multiplications the model needs, at 2 FLOPs per multiply-add: every
projection and both attention products of generator and discriminator, the embedding projection,
both heads (the generator's only at its prediction slots, over the real vocabulary), times 3 for a
training step (forward, and a backward pass of twice its cost). ModernBERT's GeGLU has three
projections, and its sliding-window layers count only the query-key pairs inside the window.
Elementwise work, sampling, the optimizer and rematerialised recomputation are not counted, so MFU =
model FLOPs per second / peak is comparable across remat and precision settings, as MFU is meant to
be.
"""

import jax
import ml_collections

from electra_jax import model, modernbert, rtd

# Dense (no sparsity) bfloat16 peak per device, by jax device_kind (lower case); the first key
# found in the device kind wins, so more specific names come first.
PEAK_BF16_FLOPS = (
    ('h100 pcie', 756e12),
    ('h100 nvl', 835e12),
    ('h100', 989e12),  # SXM.
    ('h200', 989e12),
    ('a100', 312e12),
    ('tpu v4', 275e12),
    ('tpu v5 lite', 197e12),  # v5e.
    ('tpu v5p', 459e12),
    ('tpu v5', 459e12),  # v5p reports itself as "TPU v5".
    ('tpu v6 lite', 918e12),  # v6e (Trillium).
)


def encoder_forward_flops(length: int, hidden: int, ffn: int, layers: int) -> int:
  """One sequence through the encoder stack: q, k, v, output and the two FFN projections, and the
  attention scores and weighted values (each length x length x hidden)."""
  projections = 2 * length * (4 * hidden * hidden + 2 * hidden * ffn)
  attention = 2 * 2 * length * length * hidden
  return layers * (projections + attention)


def attention_pairs(length: int, half_window: int | None) -> int:
  """(query, key) pairs a layer scores: all of them, or those at most `half_window` apart."""
  if half_window is None or half_window >= length - 1:
    return length * length
  # Each query sees 2 * half_window + 1 keys, less those cut off by the sequence's two ends.
  cut = half_window * (half_window + 1)
  return length * (2 * half_window + 1) - cut


def modernbert_encoder_forward_flops(m, length: int, layers: int) -> int:
  """One sequence through ModernBERT layers: fused q/k/v, output, GeGLU's input, gate and output
  projections, and the attention products over each layer's (query, key) pairs."""
  hidden, ffn = m.hidden_size, m.intermediate_size
  projections = 2 * length * (4 * hidden * hidden + 3 * hidden * ffn)
  attention = sum(
      2 * 2 * hidden * attention_pairs(length, None if modernbert.is_global(m, i)
                                       else m.local_attention // 2) for i in range(layers))
  return layers * projections + attention


def rtd_forward_flops(config: ml_collections.ConfigDict) -> int:
  """One sequence through generator and discriminator (forward), as config.model and .data set."""
  m = config.model
  length = config.data.max_seq_length
  discriminator = (masked_lm_forward_flops(config, *model.discriminator_sizes(m), head=False)
                   + 2 * length * (m.hidden_size * m.hidden_size + m.hidden_size))
  return masked_lm_forward_flops(config, *model.generator_sizes(m)) + discriminator


def masked_lm_forward_flops(config: ml_collections.ConfigDict, hidden: int, heads: int, ffn: int,
                            layers: int, head: bool = True) -> int:
  """One sequence through an encoder of these sizes (embedding projection included) and, with
  `head`, its MLM head at the prediction slots over the real vocabulary."""
  del heads  # The FLOPs do not depend on how the width is split.
  m = config.model
  length = config.data.max_seq_length
  if model.architecture(m) == 'modernbert':
    embed, encoder = hidden, modernbert_encoder_forward_flops(m, length, layers)
  else:
    embed, encoder = m.embedding_size, encoder_forward_flops(length, hidden, ffn, layers)
  project = 2 * length * embed * hidden if embed != hidden else 0
  mlm_head = 2 * rtd.max_predictions(config) * (hidden * embed + embed * m.vocab_size)
  return project + encoder + (mlm_head if head else 0)


def step_flops(config: ml_collections.ConfigDict) -> int:
  """Model FLOPs of one training step on the global batch, for config.objective.kind."""
  if config.objective.kind == 'mlm':
    forward = masked_lm_forward_flops(config, *model.discriminator_sizes(config.model))
  else:
    forward = rtd_forward_flops(config)
  return 3 * config.train.batch_size * forward


def peak_flops(device_kind: str) -> float | None:
  """A device's dense bfloat16 peak FLOP/s, or None for a kind not in the table (CPUs)."""
  kind = device_kind.lower()
  return next((flops for name, flops in PEAK_BF16_FLOPS if name in kind), None)


def total_peak_flops() -> float | None:
  """The peak of all the job's devices together (None if their kind is not in the table); MFU of
  a float32 run is also measured against this bfloat16 peak."""
  peak = peak_flops(jax.devices()[0].device_kind)
  return None if peak is None else peak * jax.device_count()
