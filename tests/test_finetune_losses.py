import math

import jax.numpy as jnp
import numpy as np
import pytest

from electra_jax.finetune import losses


def test_classification_and_regression():
  logits = jnp.array([[0.0, math.log(3.0)], [0.0, 0.0]])  # Softmax [1/4, 3/4] and [1/2, 1/2].
  loss, metrics = losses.classification({'logits': logits}, {'label': jnp.array([1, 0])})
  assert float(loss) == pytest.approx((-math.log(0.75) - math.log(0.5)) / 2)
  assert float(metrics['accuracy']) == 1.0  # Row 0 picks class 1; the tie in row 1 picks class 0.
  loss, _ = losses.regression({'logits': jnp.array([1.0, 3.0])}, {'label': jnp.array([2.0, 2.0])})
  assert float(loss) == pytest.approx(1.0)  # ((1 - 2)^2 + (3 - 2)^2) / 2


def test_span_loss_ignores_padding_and_adds_weighted_answerability():
  batch = {'input_mask': jnp.array([[1, 1, 0]]), 'start_positions': jnp.array([1]),
           'end_positions': jnp.array([0]), 'answerable': jnp.array([1])}
  # Padding at position 2 has a huge logit; masked, each side is a softmax over two equal logits.
  outputs = {'start_logits': jnp.array([[0.0, 0.0, 50.0]]),
             'end_logits': jnp.array([[0.0, 0.0, 50.0]]), 'answerable_logits': jnp.array([0.0])}
  loss, metrics = losses.span(outputs, batch, answerable_weight=0.0)
  assert float(loss) == pytest.approx(math.log(2.0)) and 'answerable_loss' not in metrics
  loss, metrics = losses.span(outputs, batch, answerable_weight=0.5)
  assert float(loss) == pytest.approx(math.log(2.0) + 0.5 * math.log(2.0))


def test_tagging_counts_only_first_pieces():
  logits = jnp.zeros((1, 3, 2)).at[0, 0, 1].set(100.0).at[0, 2, 0].set(100.0)
  batch = {'labels': jnp.array([[1, 0, 1]]), 'label_mask': jnp.array([[1, 0, 0]])}
  loss, metrics = losses.tagging({'logits': logits}, batch)
  assert float(loss) == pytest.approx(0.0, abs=1e-6)  # Position 2 is wrong but unlabelled.
  assert float(metrics['accuracy']) == 1.0


def test_predictions_keep_what_scoring_needs():
  outputs = {'logits': jnp.array([[[0.0, 1.0], [2.0, 0.0]]])}
  np.testing.assert_array_equal(losses.predictions('tagging', outputs)['prediction'], [[1, 0]])
