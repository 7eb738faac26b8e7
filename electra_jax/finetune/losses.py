"""Fine-tuning losses, one pure function per head: (model outputs, batch) -> (loss, metrics).

Batch labels, by head (rows are examples or QA windows):
  classification  `label` [B] int32 class index
  regression      `label` [B] float32
  span            `start_positions`, `end_positions` [B] int32 (0 = [CLS] when the window has no
                  answer), `answerable` [B] int32
  tagging         `labels` [B, L] int32, `label_mask` [B, L] int32 (1 on each word's first piece)
"""

import jax
import jax.numpy as jnp
import optax


def classification(outputs, batch):
  logits = outputs['logits']
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch['label']).mean()
  accuracy = (jnp.argmax(logits, -1) == batch['label']).mean()
  return loss, {'loss': loss, 'accuracy': accuracy}


def regression(outputs, batch):
  loss = jnp.mean((outputs['logits'] - batch['label']) ** 2)
  return loss, {'loss': loss}


def span(outputs, batch, answerable_weight: float):
  """Mean of the start and end cross-entropies over the window's real tokens; with
  answerable_weight > 0 (SQuAD 2.0) plus that weight times the answerability cross-entropy."""
  padding = (1 - batch['input_mask']) * -1e9

  def position_loss(logits, positions):
    return optax.softmax_cross_entropy_with_integer_labels(logits + padding, positions).mean()

  loss = (position_loss(outputs['start_logits'], batch['start_positions']) +
          position_loss(outputs['end_logits'], batch['end_positions'])) / 2
  metrics = {'span_loss': loss}
  if answerable_weight:
    answerable_loss = optax.sigmoid_binary_cross_entropy(
        outputs['answerable_logits'], batch['answerable'].astype(jnp.float32)).mean()
    loss = loss + answerable_weight * answerable_loss
    metrics['answerable_loss'] = answerable_loss
  return loss, {'loss': loss, **metrics}


def tagging(outputs, batch):
  """Cross-entropy averaged over labelled positions (first pieces of words) of the whole batch."""
  logits, mask = outputs['logits'], batch['label_mask'].astype(jnp.float32)
  per_token = optax.softmax_cross_entropy_with_integer_labels(logits, batch['labels'])
  count = jnp.maximum(mask.sum(), 1.0)
  correct = (jnp.argmax(logits, -1) == batch['labels']) * mask
  loss = (per_token * mask).sum() / count
  return loss, {'loss': loss, 'accuracy': correct.sum() / count}


def for_head(head: str, answerable_weight: float = 0.0):
  """The loss function of a head kind (finetune/model.py HEADS)."""
  if head == 'span':
    return lambda outputs, batch: span(outputs, batch, answerable_weight)
  return {'classification': classification, 'regression': regression, 'tagging': tagging}[head]


def predictions(head: str, outputs) -> dict[str, jax.Array]:
  """What the host needs to score an eval batch; argmax on device keeps tagging transfers small."""
  if head == 'classification':
    return {'logits': outputs['logits'], 'prediction': jnp.argmax(outputs['logits'], -1)}
  if head == 'tagging':
    return {'prediction': jnp.argmax(outputs['logits'], -1)}
  return outputs
