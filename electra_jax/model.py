"""ELECTRA's generator and discriminator in Flax NNX.

Parameter paths follow Hugging Face's ELECTRA layout one to one, so that export is a rename:
  ours `discriminator.electra.encoder.layer.3.attention.query.kernel`
  HF   `electra.encoder.layer.3.attention.self.query.weight` (transposed: torch Linear is [out, in]);
LayerNorm `scale` is HF `weight`; `embedding` tables are HF `weight`. With embedding_sharing='shared' the
top-level `embeddings` block is the `electra.embeddings` of both exported models.

Every parameter carries logical axis names ('vocab', 'embed', 'heads', 'mlp'), and the activations
between blocks are constrained to theirs ('batch', 'act_length', 'act_embed', 'act_heads', 'act_mlp',
'act_vocab'); config.mesh.rules maps both to mesh axes (electra_jax/sharding.py), so that FSDP and
tensor-parallel layouts are ours, not XLA's guesses. The constraints never change a value.

How the model computes (`Compute`: activation dtype, attention kernel, rematerialisation, scan over
layers) never changes its parameters: they are float32 and stored per layer whatever the options, so
checkpoints, export and layer-wise learning rates do not depend on them.
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx
import ml_collections
import numpy as np

from electra_jax.sharding import constrain

DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}
ATTENTION = ('auto', 'xla', 'cudnn')
# Rematerialisation policies: what the backward pass keeps of each layer's forward pass.
REMAT = {
    'none': None,  # Keep everything (fastest, most memory).
    'matmuls': jax.checkpoint_policies.dots_with_no_batch_dims_saveable,  # Keep weight matmuls' outputs.
    'full': jax.checkpoint_policies.nothing_saveable,  # Keep only each layer's input.
}
VOCAB_MULTIPLE = 128  # Rows of the embedding table are padded to this: full MXU/tensor-core tiles.
# Logical axes of the activations: [batch, length, hidden] between blocks, the attention's
# [batch, length, heads, head_dim] and the FFN's [batch, length, intermediate].
ACTIVATION_AXES = ('batch', 'act_length', 'act_embed', 'act_heads', 'act_mlp', 'act_vocab')
HIDDEN = ('batch', 'act_length', 'act_embed')
PER_HEAD = ('batch', 'act_length', 'act_heads', None)
FFN = ('batch', 'act_length', 'act_mlp')


class Compute(NamedTuple):
  """How the model computes (config.train.dtype, .attention, .remat, .scan_layers)."""
  dtype: Any = jnp.float32  # Activations and matmul inputs; parameters, softmax and losses stay float32.
  attention: str = 'xla'  # jax.nn.dot_product_attention's implementation: 'xla' or 'cudnn'.
  remat: str = 'none'  # A REMAT key.
  scan_layers: bool = False  # One compiled layer body for the whole stack (compile time flat in depth).


def compute_options(train: ml_collections.ConfigDict) -> Compute:
  """Compute from a config.train section, 'auto' attention resolved for this backend."""
  dtype = DTYPES[train.dtype]
  attention = train.attention
  if attention == 'auto':
    # cuDNN's flash attention takes half precision only; XLA's is the portable one.
    attention = 'cudnn' if jax.default_backend() == 'gpu' and dtype == jnp.bfloat16 else 'xla'
  return Compute(dtype, attention, train.remat, train.scan_layers)


def padded_vocab_size(cfg) -> int:
  """Rows of the token embedding table and columns of the generator's logits: vocab_size rounded up
  to VOCAB_MULTIPLE. The extra ids never occur in the input and are never predicted (masked logits),
  and export leaves them out."""
  return -(-cfg.vocab_size // VOCAB_MULTIPLE) * VOCAB_MULTIPLE


def dense(cfg, d_in: int, d_out: int, axes: tuple, rngs: nnx.Rngs, dtype=None) -> nnx.Linear:
  return nnx.Linear(
      d_in, d_out, dtype=dtype,
      kernel_init=nnx.with_partitioning(nnx.initializers.truncated_normal(cfg.initializer_range), axes),
      bias_init=nnx.with_partitioning(nnx.initializers.zeros, axes[1:]),
      rngs=rngs)


def _layer_norm(cfg, dim: int, rngs: nnx.Rngs, dtype=None) -> nnx.LayerNorm:
  # Flax takes the mean and variance in float32 whatever `dtype` is.
  return nnx.LayerNorm(
      dim, epsilon=cfg.layer_norm_eps, dtype=dtype,
      scale_init=nnx.with_partitioning(nnx.initializers.ones, ('norm',)),
      bias_init=nnx.with_partitioning(nnx.initializers.zeros, ('norm',)),
      rngs=rngs)


def _embed(cfg, rows: int, dim: int, axes: tuple, rngs: nnx.Rngs) -> nnx.Embed:
  init = nnx.initializers.truncated_normal(cfg.initializer_range)
  return nnx.Embed(rows, dim, embedding_init=nnx.with_partitioning(init, axes), rngs=rngs)


def lookup(table: jax.Array, ids: jax.Array, rows_axis: str | None = None) -> jax.Array:
  """The rows `ids` of `table`, read with FSDP's split of its width gathered first, as every FSDP
  weight is: the gradient is then a sum over the batch's shards (a reduce-scatter), where reading a
  split table makes XLA regather the batch-sharded gradient whole."""
  return jnp.take(constrain(table, rows_axis, None), ids, axis=0)


def dropout(x: jax.Array, rate: float, rng: jax.Array | None) -> jax.Array:
  """Inverted dropout (kept values scaled by 1 / (1 - rate)); off when `rng` is None."""
  if rng is None or rate == 0:
    return x
  return jnp.where(keep_mask(rng, rate, x.shape), x / (1 - rate), 0).astype(x.dtype)


def keep_mask(rng: jax.Array, rate: float, shape: tuple) -> jax.Array:
  """True with probability 1 - rate, from 16 random bits per element (the rate is exact to 2^-16).
  jax.random.bernoulli spends a whole threefry hash and a float conversion on each element; one
  32-bit draw per two elements made dropout about 3x cheaper, 12% of an ELECTRA-Small CPU step.
  Halving the last axis only keeps the leading (sharded) axes as they are."""
  if shape[-1] % 2:
    return jax.random.bernoulli(rng, 1 - rate, shape)
  bits = jax.random.bits(rng, (*shape[:-1], shape[-1] // 2), jnp.uint32)
  bits = jax.lax.bitcast_convert_type(bits, jnp.uint16).reshape(shape)
  return bits >= np.uint16(min(round(rate * 2**16), 2**16 - 1))


def gelu(x):
  # Exact (erf) GELU, as Hugging Face's ELECTRA uses; the tanh approximation would break export parity.
  # Written with erf, as torch does: jax.nn.gelu's erfc form makes XLA:CPU's backward pass ~2x slower.
  return 0.5 * x * (1 + jax.lax.erf(x * np.asarray(1 / np.sqrt(2), x.dtype)))


class Embeddings(nnx.Module):
  """Token + absolute position + segment embeddings, LayerNorm, dropout."""

  def __init__(self, cfg, rngs: nnx.Rngs, compute: Compute = Compute()):
    size = cfg.embedding_size
    self.word_embeddings = _embed(cfg, padded_vocab_size(cfg), size, ('vocab', 'embed'), rngs)
    self.position_embeddings = _embed(cfg, cfg.max_position_embeddings, size, (None, 'embed'), rngs)
    self.token_type_embeddings = _embed(cfg, cfg.type_vocab_size, size, (None, 'embed'), rngs)
    # The sum is float32 (only the gathered rows are read); LayerNorm casts to the compute dtype.
    self.LayerNorm = _layer_norm(cfg, size, rngs, compute.dtype)  # pylint: disable=invalid-name
    self.dropout_rate = cfg.dropout_rate

  def table(self) -> jax.Array:
    return self.word_embeddings.embedding[...]

  def __call__(self, input_ids, segment_ids, *, deterministic: bool, rngs: nnx.Rngs | None,
               word_delta: jax.Array | None = None):
    """`word_delta` (GDES): the token vectors become stop_gradient(shared table) + this table's rows,
    so the caller's loss trains the delta and not the shared table."""
    positions = jnp.arange(input_ids.shape[1])[None, :]
    words = lookup(self.word_embeddings.embedding[...], input_ids, 'vocab')
    if word_delta is not None:
      words = jax.lax.stop_gradient(words) + lookup(word_delta, input_ids, 'vocab')
    x = (words + lookup(self.position_embeddings.embedding[...], positions)
         + lookup(self.token_type_embeddings.embedding[...], segment_ids))
    x = dropout(self.LayerNorm(x), self.dropout_rate, None if deterministic else rngs.dropout())
    return constrain(x, *HIDDEN)


class ResidualOutput(nnx.Module):
  """dense -> dropout -> LayerNorm(x + residual): HF's `attention.output` and `output` blocks."""

  def __init__(self, cfg, d_in: int, d_out: int, in_axis: str, rngs: nnx.Rngs, compute: Compute):
    self.dense = dense(cfg, d_in, d_out, (in_axis, 'embed'), rngs, compute.dtype)
    self.LayerNorm = _layer_norm(cfg, d_out, rngs, compute.dtype)  # pylint: disable=invalid-name
    self.dropout_rate = cfg.dropout_rate

  def __call__(self, x, residual, *, deterministic, rngs):
    x = dropout(self.dense(x), self.dropout_rate, None if deterministic else rngs.dropout())
    return constrain(self.LayerNorm(x + residual), *HIDDEN)


def attention(query, key, value, input_mask, *, implementation: str, dropout_rate: float = 0.0,
              dropout_rng=None, window: int | None = None):
  """Softmax(q k^T / sqrt(d)) v over [batch, length, heads, head_dim] arrays, keys at padding
  (input_mask 0) ignored, and with `window` those more than `window` positions from the query
  (sliding-window attention); the logits and the softmax are float32 whatever the input dtype."""
  if dropout_rng is None or dropout_rate == 0:
    # jax's cuDNN attention takes a window only with a causal mask; sliding layers use XLA's.
    if implementation == 'cudnn' and window is None:
      # cuDNN's padding mask is a length per row; every electra_jax batch is padded on the right.
      lengths = input_mask.sum(axis=-1, dtype=jnp.int32)
      return jax.nn.dot_product_attention(query, key, value, key_value_seq_lengths=lengths,
                                          implementation='cudnn')
    return jax.nn.dot_product_attention(query, key, value, mask=input_mask[:, None, None, :] > 0,
                                        local_window_size=window, implementation='xla')
  # jax.nn.dot_product_attention has no dropout on the probabilities (the paper's attention
  # dropout); the same computation, spelled out, with it.
  logits = jnp.einsum('bqhd,bkhd->bhqk', query, key, preferred_element_type=jnp.float32)
  visible = input_mask[:, None, None, :] > 0
  if window is not None:
    positions = jnp.arange(query.shape[1])
    visible &= jnp.abs(positions[:, None] - positions[None, :]) <= window
  logits = jnp.where(visible, logits / np.sqrt(query.shape[-1]), jnp.finfo(jnp.float32).min)
  probs = jax.nn.softmax(logits, axis=-1)
  probs = dropout(probs, dropout_rate, dropout_rng).astype(value.dtype)
  return jnp.einsum('bhqk,bkhd->bqhd', probs, value)


class Attention(nnx.Module):
  """Multi-head self-attention with a padding mask (HF `attention.self` + `attention.output`)."""

  def __init__(self, cfg, hidden: int, heads: int, rngs: nnx.Rngs, compute: Compute):
    self.num_heads = heads
    self.dropout_rate = cfg.attention_dropout_rate
    self.implementation = compute.attention
    self.query = dense(cfg, hidden, hidden, ('embed', 'heads'), rngs, compute.dtype)
    self.key = dense(cfg, hidden, hidden, ('embed', 'heads'), rngs, compute.dtype)
    self.value = dense(cfg, hidden, hidden, ('embed', 'heads'), rngs, compute.dtype)
    self.output = ResidualOutput(cfg, hidden, hidden, 'heads', rngs, compute)

  def __call__(self, x, input_mask, *, deterministic, rngs):
    batch, length, hidden = x.shape
    split = lambda t: constrain(t.reshape(batch, length, self.num_heads, hidden // self.num_heads),
                                *PER_HEAD)
    context = attention(
        split(self.query(x)), split(self.key(x)), split(self.value(x)), input_mask,
        implementation=self.implementation, dropout_rate=self.dropout_rate,
        dropout_rng=None if deterministic else rngs.dropout())
    return self.output(constrain(context, *PER_HEAD).reshape(batch, length, hidden), x,
                       deterministic=deterministic, rngs=rngs)


class Intermediate(nnx.Module):
  """The FFN's expansion (HF `intermediate.dense`)."""

  def __init__(self, cfg, hidden: int, ffn: int, rngs: nnx.Rngs, compute: Compute):
    self.dense = dense(cfg, hidden, ffn, ('embed', 'mlp'), rngs, compute.dtype)

  def __call__(self, x):
    return constrain(gelu(self.dense(x)), *FFN)


class Layer(nnx.Module):
  """One post-LN BERT block."""

  def __init__(self, cfg, hidden: int, heads: int, ffn: int, rngs: nnx.Rngs, compute: Compute):
    self.attention = Attention(cfg, hidden, heads, rngs, compute)
    self.intermediate = Intermediate(cfg, hidden, ffn, rngs, compute)
    self.output = ResidualOutput(cfg, ffn, hidden, 'mlp', rngs, compute)

  def __call__(self, x, input_mask, *, deterministic, rngs):
    x = self.attention(x, input_mask, deterministic=deterministic, rngs=rngs)
    return self.output(self.intermediate(x), x, deterministic=deterministic, rngs=rngs)


class Encoder(nnx.Module):
  """The stack of layers. Each layer draws its dropout from its own key, so the unrolled loop and the
  scan compute the same function; rematerialisation wraps one layer."""

  def __init__(self, cfg, hidden: int, heads: int, ffn: int, num_layers: int, rngs: nnx.Rngs,
               compute: Compute):
    self.layer = nnx.List([Layer(cfg, hidden, heads, ffn, rngs, compute)
                           for _ in range(num_layers)])
    self.remat, self.scan_layers = compute.remat, compute.scan_layers

  def __call__(self, x, input_mask, *, deterministic, rngs):
    graphdef = nnx.graphdef(self.layer[0])
    params = [nnx.to_pure_dict(nnx.state(layer)) for layer in self.layer]
    keys = None if deterministic else jax.random.split(rngs.dropout(), len(self.layer))

    def apply(x, layer_params, key):
      layer = nnx.merge(graphdef, layer_params)
      return layer(x, input_mask, deterministic=deterministic,
                   rngs=None if key is None else nnx.Rngs(dropout=key))

    if REMAT[self.remat] is not None:
      apply = jax.checkpoint(apply, policy=REMAT[self.remat], prevent_cse=not self.scan_layers)
    if self.scan_layers:
      # The layers' parameters are stacked inside the step (one copy of them per step), so that
      # what is stored stays per layer.
      stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves), *params)
      x, _ = jax.lax.scan(lambda x, xs: (apply(x, *xs), None), x, (stacked, keys))
      return x
    for index, layer_params in enumerate(params):
      x = apply(x, layer_params, None if keys is None else keys[index])
    return x


class ElectraModel(nnx.Module):
  """HF's `ElectraModel` without its embedding block, which may be shared: projection + encoder."""

  def __init__(self, cfg, hidden: int, heads: int, ffn: int, num_layers: int, rngs: nnx.Rngs,
               compute: Compute = Compute()):
    self.embeddings_project = (
        dense(cfg, cfg.embedding_size, hidden, ('embed', 'heads'), rngs, compute.dtype)
        if cfg.embedding_size != hidden else None)
    self.encoder = Encoder(cfg, hidden, heads, ffn, num_layers, rngs, compute)

  def __call__(self, embedded, input_mask, *, deterministic, rngs):
    if self.embeddings_project is not None:
      embedded = self.embeddings_project(embedded)
    return self.encoder(embedded, input_mask, deterministic=deterministic, rngs=rngs)


class GeneratorPredictions(nnx.Module):
  """MLM head body: dense to the embedding size + GELU + LayerNorm."""

  def __init__(self, cfg, hidden: int, rngs: nnx.Rngs, compute: Compute):
    self.dense = dense(cfg, hidden, cfg.embedding_size, ('heads', 'embed'), rngs, compute.dtype)
    self.LayerNorm = _layer_norm(cfg, cfg.embedding_size, rngs, compute.dtype)  # pylint: disable=invalid-name

  def __call__(self, x):
    return self.LayerNorm(gelu(self.dense(x)))


class LMHeadBias(nnx.Module):
  """The output bias of the tied MLM projection (HF `generator_lm_head.bias`)."""

  def __init__(self, vocab_size: int):
    self.bias = nnx.Param(jnp.zeros((vocab_size,)), out_sharding=('vocab',))


class DiscriminatorPredictions(nnx.Module):
  """dense + GELU + dense(1): one replaced-or-original logit per position.

  The output bias starts at the log-odds of `replaced_fraction`, the share of tokens the objective
  will replace, so the untrained discriminator already predicts the base rate. From a zero bias
  (p = 0.5) the first updates all push every logit down, and Adam moves every weight at full rate
  to do it: the encoder learns to give every token one vector (the collapse docs/quality.md
  measures), which leaves fine-tuning nothing to build on.
  """

  def __init__(self, cfg, rngs: nnx.Rngs, compute: Compute, replaced_fraction: float = 0.5):
    self.dense = dense(cfg, cfg.hidden_size, cfg.hidden_size, ('embed', 'heads'), rngs,
                       compute.dtype)
    # float32: the logit feeds the loss, and this matmul is one column wide.
    self.dense_prediction = dense(cfg, cfg.hidden_size, 1, ('heads', None), rngs, jnp.float32)
    self.dense_prediction.bias[...] = jnp.full(
        (1,), np.log(replaced_fraction) - np.log1p(-replaced_fraction), jnp.float32)

  def __call__(self, x):
    return self.dense_prediction(gelu(self.dense(x)))[..., 0]


def architecture(cfg) -> str:
  """config.model's architecture (runs from before the choice existed are ELECTRA)."""
  return cfg.get('architecture', 'electra')


# The token table's name inside an embeddings block: ELECTRA's, ModernBERT's.
TOKEN_TABLES = ('word_embeddings', 'tok_embeddings')


def generator_sizes(cfg) -> tuple[int, int, int, int]:
  """(hidden, heads, ffn, layers) of the generator, derived as in the paper; for ModernBERT the
  discriminator's width with fewer layers (DeBERTa-v3's choice), so that the token table is shared
  without a projection."""
  if architecture(cfg) == 'modernbert':
    return (cfg.hidden_size, cfg.num_heads, cfg.intermediate_size,
            cfg.generator_num_layers or max(1, cfg.num_layers // 2))
  hidden = cfg.generator_hidden_size or int(round(cfg.hidden_size * cfg.generator_fraction))
  heads = max(1, hidden // 64)
  return hidden, heads, 4 * hidden, cfg.generator_num_layers or cfg.num_layers


def discriminator_sizes(cfg) -> tuple[int, int, int, int]:
  """(hidden, heads, ffn, layers) of the discriminator."""
  return cfg.hidden_size, cfg.num_heads, cfg.intermediate_size, cfg.num_layers


class Generator(nnx.Module):
  """A masked LM: encoder + MLM head tied to the word embeddings. The generator's sizes by default;
  MaskedLM builds one of the discriminator's sizes."""

  def __init__(self, cfg, rngs: nnx.Rngs, compute: Compute,
               sizes: tuple[int, int, int, int] | None = None):
    hidden, heads, ffn, layers = sizes or generator_sizes(cfg)
    self.vocab_size = cfg.vocab_size
    self.electra = ElectraModel(cfg, hidden, heads, ffn, layers, rngs, compute)
    self.generator_predictions = GeneratorPredictions(cfg, hidden, rngs, compute)
    self.generator_lm_head = LMHeadBias(padded_vocab_size(cfg))

  def __call__(self, embedded, input_mask, positions, word_embeddings, *, deterministic, rngs):
    """float32 logits [batch, P, padded vocab] at `positions` [batch, P] only (the gather comes
    before the head); the padding ids' logits are -inf."""
    hidden = self.electra(embedded, input_mask, deterministic=deterministic, rngs=rngs)
    hidden = jnp.take_along_axis(hidden, positions[..., None], axis=1)
    x = self.generator_predictions(hidden)
    logits = jnp.einsum('bpe,ve->bpv', x, word_embeddings.astype(x.dtype),
                        preferred_element_type=jnp.float32) + self.generator_lm_head.bias
    real = jnp.arange(logits.shape[-1]) < self.vocab_size
    return constrain(jnp.where(real, logits, -jnp.inf), 'batch', None, 'act_vocab')


class Discriminator(nnx.Module):

  def __init__(self, cfg, rngs: nnx.Rngs, compute: Compute, replaced_fraction: float = 0.5):
    self.electra = ElectraModel(cfg, *discriminator_sizes(cfg), rngs, compute)
    self.discriminator_predictions = DiscriminatorPredictions(cfg, rngs, compute,
                                                              replaced_fraction)

  def __call__(self, embedded, input_mask, *, deterministic, rngs):
    """(one logit per position, the last layer's output)."""
    hidden = self.electra(embedded, input_mask, deterministic=deterministic, rngs=rngs)
    return self.discriminator_predictions(hidden), hidden
