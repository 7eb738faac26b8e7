"""The fine-tuning model: the pre-trained discriminator's embeddings and encoder, plus a task head.

Parameter paths match the pre-training model's after one rename, `discriminator.electra` -> `electra`
(ModernBERT: `discriminator.model` -> `model`; pretrained.py), and the heads are named as Hugging Face
names them (`classifier`, `qa_outputs`; ModernBERT's `head` before its `classifier`), so
classification, regression ('hf' head) and tagging models export as transformers' classes. The
discriminator's replaced-token head is not part of it: the original discards it too.
"""

import jax.numpy as jnp
from flax import nnx
import ml_collections

from electra_jax import model, modernbert

# Head kinds, each with what it reads from the encoder: the [CLS] vector or every position.
HEADS = ('classification', 'regression', 'span', 'tagging')
CLASSIFIER_HEADS = ('hf', 'original')  # Of classification and regression; see configs/finetune.


class ClassificationHead(nnx.Module):
  """transformers' ElectraClassificationHead: dense + GELU + dense on [CLS], dropout before each."""

  def __init__(self, cfg, num_outputs: int, rngs: nnx.Rngs):
    self.dense = model.dense(cfg, cfg.hidden_size, cfg.hidden_size, ('embed', 'heads'), rngs)
    self.out_proj = model.dense(cfg, cfg.hidden_size, num_outputs, ('heads', None), rngs)
    self.dropout_rate = cfg.dropout_rate

  def __call__(self, cls, *, deterministic, rngs):
    x = model.gelu(self.dense(cls))
    return self.out_proj(model.dropout(x, self.dropout_rate, None if deterministic else rngs.dropout()))


class Finetuner(nnx.Module):

  def __init__(self, cfg: ml_collections.ConfigDict, head: str, num_outputs: int, rngs: nnx.Rngs,
               classifier_head: str = 'hf', compute: model.Compute = model.Compute()):
    """`head` is one of HEADS; `num_outputs` is the number of classes (1 for regression and span);
    `classifier_head` (CLASSIFIER_HEADS) shapes the classification and regression heads. The heads
    compute in float32 from the encoder's (compute.dtype) output."""
    self.kind = head
    sentence_level = head in ('classification', 'regression')
    self.hf_classifier = sentence_level and classifier_head == 'hf'
    outputs = 1 if head == 'regression' else num_outputs
    self.modernbert = model.architecture(cfg) == 'modernbert'
    with nnx.use_eager_sharding(False):  # Placed by the jit that creates them (step.py).
      if self.modernbert:
        # ModernBertFor{Sequence,Token}Classification: encoder, prediction head, dropout, classifier.
        self.embeddings = modernbert.Embeddings(cfg, rngs, compute)
        self.model = modernbert.Model(cfg, cfg.num_layers, rngs, compute)
        self.dropout_rate = cfg.classifier_dropout
        self.pooling = cfg.get('classifier_pooling', 'cls')
        self.head = (modernbert.Head(cfg, cfg.num_layers, rngs, compute)
                     if self.hf_classifier or head == 'tagging' else None)
      else:
        self.head = None
        self.embeddings = model.Embeddings(cfg, rngs, compute)
        self.electra = model.ElectraModel(cfg, cfg.hidden_size, cfg.num_heads,
                                          cfg.intermediate_size, cfg.num_layers, rngs, compute)
        self.dropout_rate = cfg.dropout_rate
      if head == 'span':
        self.qa_outputs = model.dense(cfg, cfg.hidden_size, 2, ('embed', None), rngs)
        self.answerable = model.dense(cfg, cfg.hidden_size, 1, ('embed', None), rngs)
      elif self.modernbert:
        self.classifier = modernbert.classifier(cfg, outputs, rngs)
      elif self.hf_classifier:
        self.classifier = ClassificationHead(cfg, outputs, rngs)
      else:
        self.classifier = model.dense(cfg, cfg.hidden_size, outputs, ('embed', None), rngs)

  def _encode(self, batch, deterministic, rngs):
    """The encoder's output, through ModernBERT's prediction head where the task has one, and
    dropout."""
    embedded = self.embeddings(batch['input_ids'], batch['segment_ids'],
                               deterministic=deterministic, rngs=rngs)
    encoder = self.model if self.modernbert else self.electra
    hidden = encoder(embedded, batch['input_mask'], deterministic=deterministic, rngs=rngs)
    if self.head is not None:
      hidden = self.head(self._pool(hidden, batch['input_mask']) if self.hf_classifier else hidden)
    return model.dropout(hidden, self.dropout_rate, None if deterministic else rngs.dropout())

  def _pool(self, hidden, input_mask):
    """ModernBERT's sentence vector [B, 1, H] (config.model.classifier_pooling): [CLS], or the mean
    over the real tokens, as transformers' sequence classifier pools."""
    if self.pooling == 'cls':
      return hidden[:, :1]
    mask = input_mask[:, :, None].astype(jnp.float32)
    mean = (hidden.astype(jnp.float32) * mask).sum(1, keepdims=True) / mask.sum(1, keepdims=True)
    return mean.astype(hidden.dtype)

  def __call__(self, batch, *, deterministic: bool, rngs: nnx.Rngs | None = None) -> dict:
    """float32 outputs: `logits` [B, C] (classification), [B] (regression), [B, L, C] (tagging);
    `start_logits`, `end_logits` [B, L] and `answerable_logits` [B] (span)."""
    hidden = self._encode(batch, deterministic, rngs)
    if self.kind == 'span':
      start, end = jnp.moveaxis(self.qa_outputs(hidden).astype(jnp.float32), -1, 0)
      return {'start_logits': start, 'end_logits': end,
              'answerable_logits': self.answerable(hidden[:, 0])[:, 0].astype(jnp.float32)}
    if self.kind == 'tagging':
      return {'logits': self.classifier(hidden).astype(jnp.float32)}
    if self.hf_classifier and not self.modernbert:
      logits = self.classifier(hidden[:, 0], deterministic=deterministic, rngs=rngs)
    else:
      logits = self.classifier(hidden[:, 0])  # [CLS] (or ModernBERT's pooled vector): no pooler.
    logits = logits.astype(jnp.float32)
    return {'logits': logits[:, 0] if self.kind == 'regression' else logits}
