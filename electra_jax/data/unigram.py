"""The corpus's unigram entropy: the loss, in nats per piece, of a generator (or masked LM) that
guesses every masked piece from the pieces' frequencies alone, without reading its context. The
console shows it beside the generator's loss, which is under it once the generator has learned from
the context (docs/training.md); data/dataset.py stores it with the built dataset and
data/synthetic.py computes it from its chain."""

import numpy as np

# Pieces that are never masked (rtd.choose_positions leaves them out), so never a target.
_NEVER_MASKED = ('pad_id', 'cls_id', 'sep_id')


def entropy(weights: np.ndarray) -> float:
  """-sum p ln p of the distribution proportional to `weights` (counts or probabilities), in nats."""
  weights = np.asarray(weights, np.float64)
  p = weights[weights > 0] / weights.sum()
  return float(-np.sum(p * np.log(p)))


def count(ids: np.ndarray, vocab_size: int) -> np.ndarray:
  """How often each piece id below `vocab_size` occurs in `ids`."""
  return np.bincount(ids, minlength=vocab_size)


def piece_entropy(counts: np.ndarray, special_ids: dict[str, int]) -> float:
  """The entropy of piece `counts` (count) over the pieces a generator predicts: all but the
  tokenizer's [PAD], [CLS] and [SEP] (`special_ids`, keyed as Tokenizer.special_ids)."""
  counts = np.array(counts)
  counts[[special_ids[name] for name in _NEVER_MASKED]] = 0
  return entropy(counts)
