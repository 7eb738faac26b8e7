"""ModernBERT (transformers' `models/modernbert`) in Flax NNX: config.model.architecture='modernbert'.

Parameter paths follow transformers' ModernBERT names, so that export is a rename, as model.py's are
ELECTRA's: ours `discriminator.model.layers.3.attn.Wqkv.kernel`, theirs
`model.layers.3.attn.Wqkv.weight`. The top-level `embeddings` block is ModernBERT's
`model.embeddings` (token table and norm), shared by generator and discriminator as model.py
shares ELECTRA's. The fused q/k/v and GeGLU input/gate kernels are stored [in, parts, out]
(hf/convert.py flattens them to torch's [parts * out, in]): tensor parallelism splits `out`, so a
device holds the same heads of q, k and v, and the same columns of input and gate.

Layer i attends globally when i % global_attn_every_n_layers == 0 (layer 0 is global), otherwise
to keys at most local_attention // 2 positions away; each kind has its own RoPE theta.
"""

import jax
import jax.numpy as jnp
from flax import nnx
import numpy as np

from electra_jax import model
from electra_jax.sharding import constrain


def _normal(std: float):
  # Truncated at 2 standard deviations: ModernBertConfig's initializer_cutoff_factor.
  return nnx.initializers.truncated_normal(std)


def _init_stds(cfg, layers: int) -> tuple[float, float]:
  """(input projections, output projections): ModernBERT scales the latter down with depth."""
  return cfg.initializer_range, cfg.initializer_range / np.sqrt(2.0 * layers)


def _dense(d_in: int, d_out: int, axes: tuple, std: float, use_bias: bool, rngs: nnx.Rngs,
           dtype=None) -> nnx.Linear:
  return nnx.Linear(d_in, d_out, use_bias=use_bias, dtype=dtype,
                    kernel_init=nnx.with_partitioning(_normal(std), axes),
                    bias_init=nnx.with_partitioning(nnx.initializers.zeros, axes[1:]), rngs=rngs)


def _norm(cfg, rngs: nnx.Rngs, dtype=None) -> nnx.LayerNorm:
  return nnx.LayerNorm(
      cfg.hidden_size, epsilon=cfg.norm_eps, use_bias=cfg.norm_bias, dtype=dtype,
      scale_init=nnx.with_partitioning(nnx.initializers.ones, ('norm',)),
      bias_init=nnx.with_partitioning(nnx.initializers.zeros, ('norm',)), rngs=rngs)


class Fused(nnx.Module):
  """`parts` projections of one input, side by side (ModernBERT's Wqkv and Wi): kernel [in, parts,
  out], bias [parts, out]; the output is [..., parts, out]."""

  def __init__(self, d_in: int, parts: int, d_out: int, out_axis: str, std: float, use_bias: bool,
               rngs: nnx.Rngs, dtype=None):
    self.kernel = nnx.Param(_normal(std)(rngs.params(), (d_in, parts, d_out)),
                            out_sharding=('embed', None, out_axis))
    self.bias = (nnx.Param(jnp.zeros((parts, d_out)), out_sharding=(None, out_axis))
                 if use_bias else None)
    self.dtype = dtype

  def __call__(self, x):
    dtype = self.dtype or x.dtype
    y = jnp.einsum('...d,dpo->...po', x.astype(dtype), self.kernel[...].astype(dtype))
    return y if self.bias is None else y + self.bias[...].astype(dtype)


class Embeddings(nnx.Module):
  """Token embeddings -> norm -> dropout; no position or segment tables (segment ids are ignored)."""

  def __init__(self, cfg, rngs: nnx.Rngs, compute: model.Compute = model.Compute()):
    init = nnx.with_partitioning(_normal(cfg.initializer_range), ('vocab', 'embed'))
    self.tok_embeddings = nnx.Embed(model.padded_vocab_size(cfg), cfg.hidden_size,
                                    embedding_init=init, rngs=rngs)
    self.norm = _norm(cfg, rngs, compute.dtype)
    self.dropout_rate = cfg.embedding_dropout

  def table(self) -> jax.Array:
    return self.tok_embeddings.embedding[...]

  def __call__(self, input_ids, segment_ids, *, deterministic: bool, rngs: nnx.Rngs | None,
               word_delta: jax.Array | None = None):
    del segment_ids
    x = model.lookup(self.table(), input_ids, 'vocab')
    if word_delta is not None:  # GDES: model.Embeddings says how.
      x = jax.lax.stop_gradient(x) + model.lookup(word_delta, input_ids, 'vocab')
    x = model.dropout(self.norm(x), self.dropout_rate, None if deterministic else rngs.dropout())
    return constrain(x, *model.HIDDEN)


def rotary(length: int, head_dim: int, theta: float) -> tuple[jax.Array, jax.Array]:
  """float32 (cos, sin) [length, head_dim] of rotary embeddings with base `theta`, each frequency
  on both halves (transformers' rotate_half layout, not interleaved)."""
  inv_freq = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float32) / head_dim)
  angles = jnp.arange(length, dtype=jnp.float32)[:, None] * inv_freq[None, :]
  angles = jnp.concatenate([angles, angles], axis=-1)
  return jnp.cos(angles), jnp.sin(angles)


def apply_rotary(x, cos, sin):
  """x [batch, length, heads, head_dim] rotated by position, in float32."""
  x32 = x.astype(jnp.float32)
  half = x.shape[-1] // 2
  rotated = jnp.concatenate([-x32[..., half:], x32[..., :half]], axis=-1)
  return (x32 * cos[:, None] + rotated * sin[:, None]).astype(x.dtype)


class Attention(nnx.Module):
  """Fused q/k/v -> RoPE -> attention (a window of keys, or all) -> output projection -> dropout."""

  def __init__(self, cfg, rngs: nnx.Rngs, compute: model.Compute, std_in: float, std_out: float):
    self.num_heads = cfg.num_heads
    self.dropout_rate = cfg.attention_dropout
    self.implementation = compute.attention
    hidden = cfg.hidden_size
    self.Wqkv = Fused(hidden, 3, hidden, 'heads', std_in, cfg.attention_bias, rngs, compute.dtype)  # pylint: disable=invalid-name
    self.Wo = _dense(hidden, hidden, ('heads', 'embed'), std_out, cfg.attention_bias, rngs,  # pylint: disable=invalid-name
                     compute.dtype)

  def __call__(self, x, input_mask, rope, window: int | None, *, deterministic, rngs):
    batch, length, hidden = x.shape
    qkv = self.Wqkv(x).reshape(batch, length, 3, self.num_heads, hidden // self.num_heads)
    query, key, value = (constrain(qkv[:, :, i], *model.PER_HEAD) for i in range(3))
    query, key = apply_rotary(query, *rope), apply_rotary(key, *rope)
    context = model.attention(
        query, key, value, input_mask, implementation=self.implementation,
        dropout_rate=self.dropout_rate, dropout_rng=None if deterministic else rngs.dropout(),
        window=window)
    out = self.Wo(constrain(context, *model.PER_HEAD).reshape(batch, length, hidden))
    return model.dropout(out, self.dropout_rate, None if deterministic else rngs.dropout())


class MLP(nnx.Module):
  """GeGLU: Wi to (input, gate), Wo(gelu(input) * gate)."""

  def __init__(self, cfg, rngs: nnx.Rngs, compute: model.Compute, std_in: float, std_out: float):
    ffn = cfg.intermediate_size
    self.Wi = Fused(cfg.hidden_size, 2, ffn, 'mlp', std_in, cfg.mlp_bias, rngs, compute.dtype)  # pylint: disable=invalid-name
    self.Wo = _dense(ffn, cfg.hidden_size, ('mlp', 'embed'), std_out, cfg.mlp_bias, rngs,  # pylint: disable=invalid-name
                     compute.dtype)
    self.dropout_rate = cfg.mlp_dropout

  def __call__(self, x, *, deterministic, rngs):
    projected = self.Wi(x)
    x = constrain(model.gelu(projected[..., 0, :]) * projected[..., 1, :], *model.FFN)
    return self.Wo(model.dropout(x, self.dropout_rate, None if deterministic else rngs.dropout()))


class Layer(nnx.Module):
  """Pre-norm block: x + attn(attn_norm(x)), then x + mlp(mlp_norm(x)); layer 0 has no attn_norm
  (the embeddings' norm precedes it)."""

  def __init__(self, cfg, first: bool, rngs: nnx.Rngs, compute: model.Compute, stds):
    self.attn_norm = None if first else _norm(cfg, rngs, compute.dtype)
    self.attn = Attention(cfg, rngs, compute, *stds)
    self.mlp_norm = _norm(cfg, rngs, compute.dtype)
    self.mlp = MLP(cfg, rngs, compute, *stds)

  def __call__(self, x, input_mask, rope, window, *, deterministic, rngs):
    normed = x if self.attn_norm is None else self.attn_norm(x)
    x = x + self.attn(normed, input_mask, rope, window, deterministic=deterministic, rngs=rngs)
    x = x + self.mlp(self.mlp_norm(x), deterministic=deterministic, rngs=rngs)
    return constrain(x, *model.HIDDEN)


def is_global(cfg, index: int) -> bool:
  return index % cfg.global_attn_every_n_layers == 0


class Model(nnx.Module):
  """ModernBERT's `model` without its embeddings (which may be shared): the layers, final norm.

  With scan_layers, layer 0 runs on its own (it has no attn_norm) and the others in groups of
  global_attn_every_n_layers consecutive layers, one scan step per group: each position in a group
  has one attention kind, so windows stay static; layers left over after the last whole group run
  unrolled. Each layer draws its dropout from its own key, so both orders compute one function."""

  def __init__(self, cfg, num_layers: int, rngs: nnx.Rngs, compute: model.Compute = model.Compute()):
    stds = _init_stds(cfg, num_layers)
    self.layers = nnx.List([Layer(cfg, i == 0, rngs, compute, stds) for i in range(num_layers)])
    self.final_norm = _norm(cfg, rngs, compute.dtype)
    self.remat, self.scan_layers = compute.remat, compute.scan_layers
    self.head_dim = cfg.hidden_size // cfg.num_heads
    self.period = cfg.global_attn_every_n_layers
    self.kinds = [is_global(cfg, i) for i in range(num_layers)]
    self.half_window = cfg.local_attention // 2
    self.thetas = {True: cfg.global_rope_theta, False: cfg.local_rope_theta}

  def __call__(self, x, input_mask, *, deterministic, rngs):
    ropes = {kind: rotary(x.shape[1], self.head_dim, theta) for kind, theta in self.thetas.items()}
    keys = (None if deterministic else
            list(jax.random.split(rngs.dropout(), len(self.layers))))

    def apply(index: int, in_scan: bool = False):
      graphdef = nnx.graphdef(self.layers[index])
      kind = self.kinds[index]

      def layer_fn(x, layer_params, key):
        layer = nnx.merge(graphdef, layer_params)
        return layer(x, input_mask, ropes[kind], None if kind else self.half_window,
                     deterministic=deterministic,
                     rngs=None if key is None else nnx.Rngs(dropout=key))
      if model.REMAT[self.remat] is not None:
        # Outside a scan, CSE could merge the recomputation back into the forward pass.
        layer_fn = jax.checkpoint(layer_fn, policy=model.REMAT[self.remat], prevent_cse=not in_scan)
      return layer_fn

    params = [nnx.to_pure_dict(nnx.state(layer)) for layer in self.layers]
    key_of = lambda i: None if keys is None else keys[i]
    groups = (len(self.layers) - 1) // self.period if self.scan_layers else 0
    x = apply(0)(x, params[0], key_of(0))
    if groups:
      fns = [apply(1 + j, in_scan=True) for j in range(self.period)]

      def group(x, xs):
        for j, fn in enumerate(fns):
          x = fn(x, xs[0][j], None if xs[1] is None else xs[1][j])
        return x, None

      # Stacked inside the step (one copy per step), so that what is stored stays per layer.
      members = [[1 + g * self.period + j for g in range(groups)] for j in range(self.period)]
      stacked = [jax.tree.map(lambda *leaves: jnp.stack(leaves), *[params[i] for i in m])
                 for m in members]
      group_keys = None if keys is None else [jnp.stack([keys[i] for i in m]) for m in members]
      x, _ = jax.lax.scan(group, x, (stacked, group_keys))
    for index in range(1 + groups * self.period, len(self.layers)):
      x = apply(index)(x, params[index], key_of(index))
    return self.final_norm(x)


class Head(nnx.Module):
  """ModernBertPredictionHead: dense -> GELU -> norm, initialised as an output projection of a
  model of `num_layers` layers."""

  def __init__(self, cfg, num_layers: int, rngs: nnx.Rngs, compute: model.Compute):
    self.dense = _dense(cfg.hidden_size, cfg.hidden_size, ('embed', 'heads'),
                        _init_stds(cfg, num_layers)[1], cfg.classifier_bias, rngs, compute.dtype)
    self.norm = _norm(cfg, rngs, compute.dtype)

  def __call__(self, x):
    return self.norm(model.gelu(self.dense(x)))


class Decoder(nnx.Module):
  """The output bias of the tied decoder (transformers' `decoder.bias`); the weight is the table."""

  def __init__(self, cfg):
    self.bias = nnx.Param(jnp.zeros((model.padded_vocab_size(cfg),)), out_sharding=('vocab',))


class Generator(nnx.Module):
  """ModernBertForMaskedLM without its embeddings: the generator's layers (model.generator_sizes),
  or with the discriminator's `sizes` the MLM baseline; head and tied decoder. Only the depth differs
  from the discriminator's: width, heads and GeGLU are its own."""

  def __init__(self, cfg, rngs: nnx.Rngs, compute: model.Compute,
               sizes: tuple[int, int, int, int] | None = None):
    num_layers = (sizes or model.generator_sizes(cfg))[3]
    self.vocab_size = cfg.vocab_size
    self.model = Model(cfg, num_layers, rngs, compute)
    self.head = Head(cfg, num_layers, rngs, compute)
    self.decoder = Decoder(cfg) if cfg.decoder_bias else None

  def __call__(self, embedded, input_mask, positions, word_embeddings, *, deterministic, rngs):
    """float32 logits [batch, P, padded vocab] at `positions` only (model.Generator's contract)."""
    hidden = self.model(embedded, input_mask, deterministic=deterministic, rngs=rngs)
    hidden = jnp.take_along_axis(hidden, positions[..., None], axis=1)
    x = self.head(hidden)
    logits = jnp.einsum('bpe,ve->bpv', x, word_embeddings.astype(x.dtype),
                        preferred_element_type=jnp.float32)
    if self.decoder is not None:
      logits = logits + self.decoder.bias[...]
    real = jnp.arange(logits.shape[-1]) < self.vocab_size
    return constrain(jnp.where(real, logits, -jnp.inf), 'batch', None, 'act_vocab')


def classifier(cfg, outputs: int, rngs: nnx.Rngs, dtype=None) -> nnx.Linear:
  """The classifier of ModernBERT's task classes (hidden -> outputs, with bias), initialised at
  hidden_size ** -0.5 as transformers initialises it."""
  return _dense(cfg.hidden_size, outputs, ('heads', None), cfg.hidden_size ** -0.5, True, rngs,
                dtype)


class Discriminator(nnx.Module):
  """ModernBertForTokenClassification with one label: the RTD logit. The classifier's bias starts
  at the log-odds of `replaced_fraction` (model.DiscriminatorPredictions says why)."""

  def __init__(self, cfg, rngs: nnx.Rngs, compute: model.Compute, replaced_fraction: float = 0.5):
    self.model = Model(cfg, cfg.num_layers, rngs, compute)
    self.head = Head(cfg, cfg.num_layers, rngs, compute)
    # float32: the logit feeds the loss, and this matmul is one column wide.
    self.classifier = classifier(cfg, 1, rngs, jnp.float32)
    self.classifier.bias[...] = jnp.full(
        (1,), np.log(replaced_fraction) - np.log1p(-replaced_fraction), jnp.float32)
    self.dropout_rate = cfg.classifier_dropout

  def __call__(self, embedded, input_mask, *, deterministic, rngs):
    """(one logit per position, the last layer's output)."""
    hidden = self.model(embedded, input_mask, deterministic=deterministic, rngs=rngs)
    x = model.dropout(self.head(hidden), self.dropout_rate,
                      None if deterministic else rngs.dropout())
    return self.classifier(x)[..., 0], hidden
