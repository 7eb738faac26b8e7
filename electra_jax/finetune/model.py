"""The fine-tuning model: the pre-trained discriminator's embeddings and encoder, plus a task head.

Parameter paths match the pre-training model's after one rename, `discriminator.electra` -> `electra`
(pretrained.py), and the heads are named as Hugging Face names them (`classifier`, `qa_outputs`), so
classification, regression ('hf' head) and tagging models export as transformers' classes. The
discriminator's replaced-token head is not part of it: the original discards it too.
"""

import jax.numpy as jnp
from flax import nnx
import ml_collections

from electra_jax import model

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
    self.head = head
    sentence_level = head in ('classification', 'regression')
    self.hf_classifier = sentence_level and classifier_head == 'hf'
    with nnx.use_eager_sharding(False):  # Placed by the jit that creates them (step.py).
      self.embeddings = model.Embeddings(cfg, rngs, compute)
      self.electra = model.ElectraModel(cfg, cfg.hidden_size, cfg.num_heads, cfg.intermediate_size,
                                        cfg.num_layers, rngs, compute)
      self.dropout_rate = cfg.dropout_rate
      if head == 'span':
        self.qa_outputs = model.dense(cfg, cfg.hidden_size, 2, ('embed', None), rngs)
        self.answerable = model.dense(cfg, cfg.hidden_size, 1, ('embed', None), rngs)
      else:
        outputs = 1 if head == 'regression' else num_outputs
        self.classifier = (ClassificationHead(cfg, outputs, rngs) if self.hf_classifier else
                           model.dense(cfg, cfg.hidden_size, outputs, ('embed', None), rngs))

  def __call__(self, batch, *, deterministic: bool, rngs: nnx.Rngs | None = None) -> dict:
    """float32 outputs: `logits` [B, C] (classification), [B] (regression), [B, L, C] (tagging);
    `start_logits`, `end_logits` [B, L] and `answerable_logits` [B] (span)."""
    embedded = self.embeddings(batch['input_ids'], batch['segment_ids'],
                               deterministic=deterministic, rngs=rngs)
    hidden = self.electra(embedded, batch['input_mask'], deterministic=deterministic, rngs=rngs)
    hidden = model.dropout(hidden, self.dropout_rate, None if deterministic else rngs.dropout())
    if self.head == 'span':
      start, end = jnp.moveaxis(self.qa_outputs(hidden).astype(jnp.float32), -1, 0)
      return {'start_logits': start, 'end_logits': end,
              'answerable_logits': self.answerable(hidden[:, 0])[:, 0].astype(jnp.float32)}
    if self.head == 'tagging':
      return {'logits': self.classifier(hidden).astype(jnp.float32)}
    if self.hf_classifier:
      logits = self.classifier(hidden[:, 0], deterministic=deterministic, rngs=rngs)
    else:
      logits = self.classifier(hidden[:, 0])  # [CLS]: no pooler, as the original.
    logits = logits.astype(jnp.float32)
    return {'logits': logits[:, 0] if self.head == 'regression' else logits}
