"""ELECTRA's generator and discriminator in Flax NNX.

Parameter paths follow Hugging Face's ELECTRA layout one to one, so that export is a rename:
  ours `discriminator.electra.encoder.layer.3.attention.query.kernel`
  HF   `electra.encoder.layer.3.attention.self.query.weight` (transposed: torch Linear is [out, in]);
LayerNorm `scale` is HF `weight`; `embedding` tables are HF `weight`. With embedding_sharing='shared' the
top-level `embeddings` block is the `electra.embeddings` of both exported models.

Every parameter carries logical axis names ('vocab', 'embed', 'heads', 'mlp'); config.mesh.rules maps them
to mesh axes (electra_jax/sharding.py).
"""

import jax
import jax.numpy as jnp
from flax import nnx
import ml_collections


def dense(cfg, d_in: int, d_out: int, axes: tuple, rngs: nnx.Rngs) -> nnx.Linear:
  return nnx.Linear(
      d_in, d_out,
      kernel_init=nnx.with_partitioning(nnx.initializers.truncated_normal(cfg.initializer_range), axes),
      bias_init=nnx.with_partitioning(nnx.initializers.zeros, axes[1:]),
      rngs=rngs)


def _layer_norm(cfg, dim: int, rngs: nnx.Rngs) -> nnx.LayerNorm:
  return nnx.LayerNorm(
      dim, epsilon=cfg.layer_norm_eps,
      scale_init=nnx.with_partitioning(nnx.initializers.ones, ('norm',)),
      bias_init=nnx.with_partitioning(nnx.initializers.zeros, ('norm',)),
      rngs=rngs)


def _embed(cfg, rows: int, dim: int, axes: tuple, rngs: nnx.Rngs) -> nnx.Embed:
  init = nnx.initializers.truncated_normal(cfg.initializer_range)
  return nnx.Embed(rows, dim, embedding_init=nnx.with_partitioning(init, axes), rngs=rngs)


def gelu(x):
  # Exact (erf) GELU, as Hugging Face's ELECTRA uses; the tanh approximation would break export parity.
  return jax.nn.gelu(x, approximate=False)


class Embeddings(nnx.Module):
  """Token + absolute position + segment embeddings, LayerNorm, dropout."""

  def __init__(self, cfg, rngs: nnx.Rngs):
    size = cfg.embedding_size
    self.word_embeddings = _embed(cfg, cfg.vocab_size, size, ('vocab', 'embed'), rngs)
    self.position_embeddings = _embed(cfg, cfg.max_position_embeddings, size, (None, 'embed'), rngs)
    self.token_type_embeddings = _embed(cfg, cfg.type_vocab_size, size, (None, 'embed'), rngs)
    self.LayerNorm = _layer_norm(cfg, size, rngs)  # pylint: disable=invalid-name
    self.dropout = nnx.Dropout(cfg.dropout_rate)

  def __call__(self, input_ids, segment_ids, *, deterministic: bool, rngs: nnx.Rngs | None):
    positions = jnp.arange(input_ids.shape[1])[None, :]
    x = (self.word_embeddings(input_ids) + self.position_embeddings(positions)
         + self.token_type_embeddings(segment_ids))
    return self.dropout(self.LayerNorm(x), deterministic=deterministic, rngs=rngs)


class ResidualOutput(nnx.Module):
  """dense -> dropout -> LayerNorm(x + residual): HF's `attention.output` and `output` blocks."""

  def __init__(self, cfg, d_in: int, d_out: int, in_axis: str, rngs: nnx.Rngs):
    self.dense = dense(cfg, d_in, d_out, (in_axis, 'embed'), rngs)
    self.LayerNorm = _layer_norm(cfg, d_out, rngs)  # pylint: disable=invalid-name
    self.dropout = nnx.Dropout(cfg.dropout_rate)

  def __call__(self, x, residual, *, deterministic, rngs):
    x = self.dropout(self.dense(x), deterministic=deterministic, rngs=rngs)
    return self.LayerNorm(x + residual)


class Attention(nnx.Module):
  """Multi-head self-attention with a padding mask (HF `attention.self` + `attention.output`)."""

  def __init__(self, cfg, hidden: int, heads: int, rngs: nnx.Rngs):
    self.num_heads = heads
    self.dropout_rate = cfg.attention_dropout_rate
    self.query = dense(cfg, hidden, hidden, ('embed', 'heads'), rngs)
    self.key = dense(cfg, hidden, hidden, ('embed', 'heads'), rngs)
    self.value = dense(cfg, hidden, hidden, ('embed', 'heads'), rngs)
    self.output = ResidualOutput(cfg, hidden, hidden, 'heads', rngs)

  def __call__(self, x, attention_mask, *, deterministic, rngs):
    batch, length, hidden = x.shape
    split = lambda t: t.reshape(batch, length, self.num_heads, hidden // self.num_heads)
    use_dropout = not deterministic and self.dropout_rate > 0
    context = nnx.dot_product_attention(
        split(self.query(x)), split(self.key(x)), split(self.value(x)),
        mask=attention_mask,
        dropout_rng=rngs.dropout() if use_dropout else None,
        dropout_rate=self.dropout_rate,
        deterministic=not use_dropout)
    return self.output(context.reshape(batch, length, hidden), x,
                       deterministic=deterministic, rngs=rngs)


class Intermediate(nnx.Module):
  """The FFN's expansion (HF `intermediate.dense`)."""

  def __init__(self, cfg, hidden: int, ffn: int, rngs: nnx.Rngs):
    self.dense = dense(cfg, hidden, ffn, ('embed', 'mlp'), rngs)

  def __call__(self, x):
    return gelu(self.dense(x))


class Layer(nnx.Module):
  """One post-LN BERT block."""

  def __init__(self, cfg, hidden: int, heads: int, ffn: int, rngs: nnx.Rngs):
    self.attention = Attention(cfg, hidden, heads, rngs)
    self.intermediate = Intermediate(cfg, hidden, ffn, rngs)
    self.output = ResidualOutput(cfg, ffn, hidden, 'mlp', rngs)

  def __call__(self, x, attention_mask, *, deterministic, rngs):
    x = self.attention(x, attention_mask, deterministic=deterministic, rngs=rngs)
    return self.output(self.intermediate(x), x, deterministic=deterministic, rngs=rngs)


class Encoder(nnx.Module):

  def __init__(self, cfg, hidden: int, heads: int, ffn: int, num_layers: int, rngs: nnx.Rngs):
    self.layer = nnx.List([Layer(cfg, hidden, heads, ffn, rngs) for _ in range(num_layers)])

  def __call__(self, x, input_mask, *, deterministic, rngs):
    attention_mask = input_mask[:, None, None, :].astype(bool)  # [batch, heads, query, key]
    for layer in self.layer:
      x = layer(x, attention_mask, deterministic=deterministic, rngs=rngs)
    return x


class ElectraModel(nnx.Module):
  """HF's `ElectraModel` without its embedding block, which may be shared: projection + encoder."""

  def __init__(self, cfg, hidden: int, heads: int, ffn: int, num_layers: int, rngs: nnx.Rngs):
    self.embeddings_project = (
        dense(cfg, cfg.embedding_size, hidden, ('embed', 'heads'), rngs)
        if cfg.embedding_size != hidden else None)
    self.encoder = Encoder(cfg, hidden, heads, ffn, num_layers, rngs)

  def __call__(self, embedded, input_mask, *, deterministic, rngs):
    if self.embeddings_project is not None:
      embedded = self.embeddings_project(embedded)
    return self.encoder(embedded, input_mask, deterministic=deterministic, rngs=rngs)


class GeneratorPredictions(nnx.Module):
  """MLM head body: dense to the embedding size + GELU + LayerNorm."""

  def __init__(self, cfg, hidden: int, rngs: nnx.Rngs):
    self.dense = dense(cfg, hidden, cfg.embedding_size, ('heads', 'embed'), rngs)
    self.LayerNorm = _layer_norm(cfg, cfg.embedding_size, rngs)  # pylint: disable=invalid-name

  def __call__(self, x):
    return self.LayerNorm(gelu(self.dense(x)))


class LMHeadBias(nnx.Module):
  """The output bias of the tied MLM projection (HF `generator_lm_head.bias`)."""

  def __init__(self, vocab_size: int):
    self.bias = nnx.Param(jnp.zeros((vocab_size,)), out_sharding=('vocab',))


class DiscriminatorPredictions(nnx.Module):
  """dense + GELU + dense(1): one replaced-or-original logit per position."""

  def __init__(self, cfg, rngs: nnx.Rngs):
    self.dense = dense(cfg, cfg.hidden_size, cfg.hidden_size, ('embed', 'heads'), rngs)
    self.dense_prediction = dense(cfg, cfg.hidden_size, 1, ('heads', None), rngs)

  def __call__(self, x):
    return self.dense_prediction(gelu(self.dense(x)))[..., 0]


def generator_sizes(cfg) -> tuple[int, int, int, int]:
  """(hidden, heads, ffn, layers) of the generator, derived as in the paper."""
  hidden = cfg.generator_hidden_size or int(round(cfg.hidden_size * cfg.generator_fraction))
  heads = max(1, hidden // 64)
  return hidden, heads, 4 * hidden, cfg.generator_num_layers or cfg.num_layers


class Generator(nnx.Module):

  def __init__(self, cfg, rngs: nnx.Rngs):
    hidden, heads, ffn, layers = generator_sizes(cfg)
    self.electra = ElectraModel(cfg, hidden, heads, ffn, layers, rngs)
    self.generator_predictions = GeneratorPredictions(cfg, hidden, rngs)
    self.generator_lm_head = LMHeadBias(cfg.vocab_size)

  def __call__(self, embedded, input_mask, positions, word_embeddings, *, deterministic, rngs):
    """Vocabulary logits (float32) at `positions` [batch, P] only: the gather comes before the head."""
    hidden = self.electra(embedded, input_mask, deterministic=deterministic, rngs=rngs)
    hidden = jnp.take_along_axis(hidden, positions[..., None], axis=1)
    x = self.generator_predictions(hidden)
    logits = x @ word_embeddings.T + self.generator_lm_head.bias
    return logits.astype(jnp.float32)


class Discriminator(nnx.Module):

  def __init__(self, cfg, rngs: nnx.Rngs):
    self.electra = ElectraModel(cfg, cfg.hidden_size, cfg.num_heads, cfg.intermediate_size,
                                cfg.num_layers, rngs)
    self.discriminator_predictions = DiscriminatorPredictions(cfg, rngs)

  def __call__(self, embedded, input_mask, *, deterministic, rngs):
    hidden = self.electra(embedded, input_mask, deterministic=deterministic, rngs=rngs)
    return self.discriminator_predictions(hidden).astype(jnp.float32)


EMBEDDING_SHARING = ('shared', 'untied')


class ElectraPretrainer(nnx.Module):
  """Generator + discriminator. With 'shared' sharing both read one embedding block, whose arrays
  then receive gradients from both losses; with 'untied' the generator has its own."""

  def __init__(self, cfg: ml_collections.ConfigDict, rngs: nnx.Rngs):
    # Variables carry logical axis names, not mesh axes: they are placed by the jit that creates
    # them (step.py), never eagerly as they are made.
    with nnx.use_eager_sharding(False):
      self.embeddings = Embeddings(cfg, rngs)
      self.generator_embeddings = (Embeddings(cfg, rngs) if cfg.embedding_sharing == 'untied'
                                   else None)
      self.generator = Generator(cfg, rngs)
      self.discriminator = Discriminator(cfg, rngs)

  def generator_logits(self, input_ids, segment_ids, input_mask, positions, *,
                       deterministic: bool, rngs: nnx.Rngs | None = None):
    embeddings = self.generator_embeddings or self.embeddings
    embedded = embeddings(input_ids, segment_ids, deterministic=deterministic, rngs=rngs)
    return self.generator(embedded, input_mask, positions, embeddings.word_embeddings.embedding[...],
                          deterministic=deterministic, rngs=rngs)

  def discriminator_logits(self, input_ids, segment_ids, input_mask, *,
                           deterministic: bool, rngs: nnx.Rngs | None = None):
    embedded = self.embeddings(input_ids, segment_ids, deterministic=deterministic, rngs=rngs)
    return self.discriminator(embedded, input_mask, deterministic=deterministic, rngs=rngs)
