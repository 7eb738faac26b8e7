"""What a pre-training run trains: the generator + discriminator pair of either architecture
(config.model.architecture: ELECTRA's blocks in model.py, ModernBERT's in modernbert.py), or the MLM
baseline, a masked LM of the discriminator's sizes."""

import jax.numpy as jnp
from flax import nnx
import ml_collections

from electra_jax import model, modernbert

ARCHITECTURES = ('electra', 'modernbert')
EMBEDDING_SHARING = ('shared', 'untied', 'gdes')


def _blocks(cfg):
  """The module that holds the architecture's Embeddings, Generator and Discriminator."""
  return modernbert if model.architecture(cfg) == 'modernbert' else model


class EmbeddingDelta(nnx.Module):
  """GDES (DeBERTa-v3): the discriminator's own additive correction to the shared token table,
  zero at init. Export and fine-tuning fold it in (fold_embedding_delta)."""

  def __init__(self, cfg):
    width = cfg.hidden_size if model.architecture(cfg) == 'modernbert' else cfg.embedding_size
    self.embedding = nnx.Param(jnp.zeros((model.padded_vocab_size(cfg), width)),
                               out_sharding=('vocab', 'embed'))


def fold_embedding_delta(params: dict) -> dict:
  """Parameters (a pure dict with `embeddings`) with a GDES delta added into the token table, as
  the discriminator sees it, and the delta removed; unchanged without one."""
  if 'embedding_delta' not in params:
    return params
  params = dict(params)
  delta = params.pop('embedding_delta')['embedding']
  embeddings = params['embeddings']
  name = next(name for name in model.TOKEN_TABLES if name in embeddings)
  params['embeddings'] = {**embeddings,
                          name: {**embeddings[name], 'embedding': embeddings[name]['embedding'] + delta}}
  return params


class ElectraPretrainer(nnx.Module):
  """Generator + discriminator. With 'shared' sharing both read one embedding block, whose arrays
  then receive gradients from both losses; with 'untied' the generator has its own; with 'gdes' the
  block is shared but the discriminator's loss reaches the token table only through its own delta
  (gradient-disentangled embedding sharing, DeBERTa-v3). `replaced_fraction`: the share of tokens
  the objective replaces (model.DiscriminatorPredictions)."""

  def __init__(self, cfg: ml_collections.ConfigDict, rngs: nnx.Rngs,
               compute: model.Compute = model.Compute(), replaced_fraction: float = 0.5):
    # Variables carry logical axis names, not mesh axes: they are placed by the jit that creates
    # them (step.py), never eagerly as they are made.
    with nnx.use_eager_sharding(False):
      blocks = _blocks(cfg)
      self.embeddings = blocks.Embeddings(cfg, rngs, compute)
      self.generator_embeddings = (blocks.Embeddings(cfg, rngs, compute)
                                   if cfg.embedding_sharing == 'untied' else None)
      self.embedding_delta = EmbeddingDelta(cfg) if cfg.embedding_sharing == 'gdes' else None
      self.generator = blocks.Generator(cfg, rngs, compute)
      self.discriminator = blocks.Discriminator(cfg, rngs, compute, replaced_fraction)

  def generator_logits(self, input_ids, segment_ids, input_mask, positions, *,
                       deterministic: bool, rngs: nnx.Rngs | None = None):
    embeddings = self.generator_embeddings or self.embeddings
    embedded = embeddings(input_ids, segment_ids, deterministic=deterministic, rngs=rngs)
    return self.generator(embedded, input_mask, positions, embeddings.table(),
                          deterministic=deterministic, rngs=rngs)

  def discriminate(self, input_ids, segment_ids, input_mask, *, deterministic: bool,
                   rngs: nnx.Rngs | None = None):
    """(replaced-token logits [batch, length], the discriminator's last hidden layer)."""
    delta = None if self.embedding_delta is None else self.embedding_delta.embedding[...]
    embedded = self.embeddings(input_ids, segment_ids, deterministic=deterministic, rngs=rngs,
                               word_delta=delta)
    return self.discriminator(embedded, input_mask, deterministic=deterministic, rngs=rngs)

  def discriminator_logits(self, input_ids, segment_ids, input_mask, *,
                           deterministic: bool, rngs: nnx.Rngs | None = None):
    return self.discriminate(input_ids, segment_ids, input_mask, deterministic=deterministic,
                             rngs=rngs)[0]


class MaskedLM(nnx.Module):
  """The paper's BERT baseline (config.objective.kind='mlm'): a masked LM of the discriminator's
  sizes and nothing else. Its encoder is stored where an ELECTRA run keeps the encoder it hands on
  (`embeddings` + `discriminator.electra`, or `discriminator.model` for ModernBERT), so fine-tuning
  reads either kind of run alike; its MLM head exports as the architecture's masked-LM class."""

  def __init__(self, cfg: ml_collections.ConfigDict, rngs: nnx.Rngs,
               compute: model.Compute = model.Compute()):
    with nnx.use_eager_sharding(False):
      blocks = _blocks(cfg)
      self.embeddings = blocks.Embeddings(cfg, rngs, compute)
      self.discriminator = blocks.Generator(cfg, rngs, compute, model.discriminator_sizes(cfg))

  def mlm_logits(self, input_ids, segment_ids, input_mask, positions, *, deterministic: bool,
                 rngs: nnx.Rngs | None = None):
    embedded = self.embeddings(input_ids, segment_ids, deterministic=deterministic, rngs=rngs)
    return self.discriminator(embedded, input_mask, positions, self.embeddings.table(),
                              deterministic=deterministic, rngs=rngs)


def pretraining_model(cfg: ml_collections.ConfigDict, kind: str, rngs: nnx.Rngs,
                      compute: model.Compute = model.Compute(),
                      replaced_fraction: float = 0.5) -> nnx.Module:
  """The module a pre-training run of objective `kind` ('rtd' or 'mlm') trains."""
  if kind == 'mlm':
    return MaskedLM(cfg, rngs, compute)
  return ElectraPretrainer(cfg, rngs, compute, replaced_fraction)
