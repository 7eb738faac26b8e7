"""What the fine-tuning loop gets from a task, whatever its kind: device arrays and a scorer.

Each kind reads its own inputs (classification.py: CSV/TSV/JSONL and GLUE; qa.py: SQuAD; tagging.py:
CoNLL) and returns a `TaskData`. The loop never looks inside examples: it trains on `train`, runs the
model over `eval` and hands the outputs, in row order, to `score`.
"""

import dataclasses
import functools
import hashlib
import os
from typing import Callable

import ml_collections
import numpy as np

from electra_jax.data import tokenizer as tokenizer_lib
from electra_jax.errors import UserError

KINDS = ('classification', 'regression', 'qa', 'tagging')


@dataclasses.dataclass
class TaskData:
  name: str  # For logs, e.g. 'glue/cola' or the train file's name.
  head: str  # One of finetune/model.py HEADS.
  num_outputs: int  # Classes (1 for regression and span).
  train: dict[str, np.ndarray]  # Device inputs and labels, [N, ...] each; see finetune/losses.py.
  eval: dict[str, np.ndarray]
  # Model outputs over `eval` (finetune/losses.py `predictions`, rows in order) -> (metrics,
  # contents of the predictions file).
  score: Callable[[dict[str, np.ndarray]], tuple[dict[str, float], str]]
  predictions_file: str  # File name in the workdir, e.g. 'predictions.jsonl'.
  main_metric: str  # The metric that picks the median seed.
  epochs: float  # The paper's default for this task.
  answerable_weight: float = 0.0  # Span head only: weight of the answerability loss (SQuAD 2.0).
  labels: list[str] | None = None  # Class (or tag) names by output index; exported as id2label.

  @functools.cached_property
  def fingerprint(self) -> str:
    """Identifies the training rows, so that a resumed run refuses data that changed under it."""
    digest = hashlib.sha256()
    for key in sorted(self.train):
      digest.update(key.encode())
      digest.update(np.ascontiguousarray(self.train[key]).tobytes())
    return digest.hexdigest()[:16]


def pack(first: list[list[int]], second: list[list[int]] | None, max_length: int,
         tokenizer: tokenizer_lib.Tokenizer) -> dict[str, np.ndarray]:
  """`[CLS] A [SEP] (B [SEP])` rows padded to max_length, with segment ids and input mask. Pairs are
  truncated by dropping the last piece of the longer side until they fit (the original's rule)."""
  cls, sep = tokenizer.special_ids['cls_id'], tokenizer.special_ids['sep_id']
  n = len(first)
  arrays = {key: np.zeros((n, max_length), np.int32)
            for key in ('input_ids', 'segment_ids', 'input_mask')}
  for i in range(n):
    a, b = first[i], (second[i] if second is not None else None)
    if b is None:
      a = a[:max_length - 2]
      ids, segments = [cls, *a, sep], [0] * (len(a) + 2)
    else:
      a, b = list(a), list(b)
      while len(a) + len(b) > max_length - 3:
        (a if len(a) > len(b) else b).pop()
      ids = [cls, *a, sep, *b, sep]
      segments = [0] * (len(a) + 2) + [1] * (len(b) + 1)
    arrays['input_ids'][i, :len(ids)] = ids
    arrays['segment_ids'][i, :len(ids)] = segments
    arrays['input_mask'][i, :len(ids)] = 1
  return arrays


def label_names(config: ml_collections.ConfigDict, train_labels) -> list[str]:
  """config.labels (comma-separated, fixing the order) or the training labels sorted, numerically
  when they are all numbers. Binary F1 counts the second name as the positive class."""
  if config.labels:
    return [name.strip() for name in config.labels.split(',')]
  names = sorted(set(train_labels))
  try:
    return sorted(names, key=float)
  except ValueError:
    return names


def label_ids(labels, names: list[str], where: str) -> np.ndarray:
  index = {name: i for i, name in enumerate(names)}
  unknown = sorted(set(labels) - index.keys())
  if unknown:
    raise UserError(f'{where} has labels {unknown[:5]} that are not among {names}; set '
                    '--config.labels to the full list, comma-separated')
  return np.array([index[label] for label in labels], np.int32)


def check_file(path: str, name: str) -> str:
  if not path:
    raise UserError(f'config.{name} is not set; give a file, e.g. --config.{name}=data/{name}.csv')
  path = os.path.expanduser(path)
  if not os.path.isfile(path):
    raise UserError(f'config.{name}={path} does not exist')
  return path

