"""Evaluation metrics of fine-tuning, computed on the host once predictions are gathered.

Every score is a python float: a fraction in [0, 1] (a correlation in [-1, 1]), never a percentage.
  GLUE      accuracy, f1 (the positive class of binary tasks), matthews_corrcoef (CoLA),
            pearson and spearman (STS-B)
  SQuAD     normalize_answer, exact_match_score, f1_score, squad: as the official evaluate-v2.0.py
  tagging   chunks, span_f1: chunks as CoNLL's conlleval finds and counts them
"""

import collections
import re
import string

import numpy as np


def _pair(predictions, labels) -> tuple[np.ndarray, np.ndarray]:
  """Both as flat numpy arrays; a shape mismatch or nothing to score is an error, not a NaN."""
  predictions, labels = np.asarray(predictions), np.asarray(labels)
  if predictions.shape != labels.shape:
    raise ValueError(f'predictions have shape {predictions.shape} but labels {labels.shape}')
  if not predictions.size:
    raise ValueError('no predictions to score')
  return predictions.ravel(), labels.ravel()


def _f1_from_counts(true_positives: int, false_positives: int, false_negatives: int) -> float:
  # 2tp / (2tp + fp + fn) is 2pr / (p + r) without dividing by a zero precision or recall.
  denominator = 2 * true_positives + false_positives + false_negatives
  return float(2 * true_positives / denominator) if denominator else 0.0


def _confusion_matrix(predictions, labels, num_classes: int) -> np.ndarray:
  """[num_classes, num_classes] counts: rows the true class, columns the predicted one."""
  if num_classes < 2:
    raise ValueError(f'num_classes must be at least 2, got {num_classes}')
  predictions, labels = _pair(predictions, labels)
  for name, values in (('predictions', predictions), ('labels', labels)):
    if values.dtype.kind not in 'biu' or values.min() < 0 or values.max() >= num_classes:
      raise ValueError(f'{name} must be integers in [0, {num_classes})')
  cells = labels.astype(np.int64) * num_classes + predictions
  return np.bincount(cells, minlength=num_classes**2).reshape(num_classes, num_classes)


def accuracy(predictions, labels) -> float:
  predictions, labels = _pair(predictions, labels)
  return float(np.mean(predictions == labels))


def f1(predictions, labels, num_classes: int) -> float:
  """Binary: F1 of the positive class 1 (GLUE's MRPC and QQP). More classes: the macro average of
  the per-class F1 over the classes that occur in labels or predictions (sklearn's 'macro')."""
  matrix = _confusion_matrix(predictions, labels, num_classes)
  true_positives = np.diag(matrix)
  predicted_counts, true_counts = matrix.sum(axis=0), matrix.sum(axis=1)
  scores = np.array([
      _f1_from_counts(tp, predicted - tp, true - tp)
      for tp, predicted, true in zip(true_positives, predicted_counts, true_counts)])
  if num_classes == 2:
    return float(scores[1])
  return float(np.mean(scores[(predicted_counts + true_counts) > 0]))


def matthews_corrcoef(predictions, labels, num_classes: int) -> float:
  """Gorodkin's multiclass R_K, as sklearn computes it; for two classes the usual binary MCC.

  0.0 where it is undefined: all labels, or all predictions, in one class.
  """
  # In float64: the products below are of order n^4, past int64 for n above ~55k examples.
  matrix = _confusion_matrix(predictions, labels, num_classes).astype(np.float64)
  true_counts, predicted_counts = matrix.sum(axis=1), matrix.sum(axis=0)
  total = matrix.sum()
  covariance = np.trace(matrix) * total - true_counts @ predicted_counts
  true_variance = total**2 - true_counts @ true_counts
  predicted_variance = total**2 - predicted_counts @ predicted_counts
  if not true_variance or not predicted_variance:
    return 0.0
  return float(covariance / np.sqrt(true_variance * predicted_variance))


def _correlation(x: np.ndarray, y: np.ndarray) -> float:
  # Constancy is tested by equality: the centred values of a constant float array need not be 0.
  if np.all(x == x[0]) or np.all(y == y[0]):
    return 0.0
  x, y = x - x.mean(), y - y.mean()
  r = x @ y / np.sqrt((x @ x) * (y @ y))
  # Rounding can carry a perfect correlation a hair past 1.
  return float(np.clip(r, -1.0, 1.0))


def pearson(predictions, labels) -> float:
  """Pearson's r; 0.0 when either side is constant."""
  predictions, labels = _pair(predictions, labels)
  return _correlation(predictions.astype(np.float64), labels.astype(np.float64))


def _average_ranks(values: np.ndarray) -> np.ndarray:
  """1-based ranks; tied values share the mean of the ranks they span."""
  _, group, counts = np.unique(values, return_inverse=True, return_counts=True)
  last_rank = np.cumsum(counts)
  return (last_rank - (counts - 1) / 2)[group.ravel()]


def spearman(predictions, labels) -> float:
  """Spearman's rho: Pearson's r of the average ranks; 0.0 when either side is constant."""
  predictions, labels = _pair(predictions, labels)
  return _correlation(_average_ranks(predictions), _average_ranks(labels))


_ARTICLES = re.compile(r'\b(a|an|the)\b', re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(s: str) -> str:
  """Lower case, drop punctuation, then the whole words a/an/the, then collapse whitespace.

  The official order: punctuation goes first, so 'the-cat' becomes 'thecat' and keeps its article.
  """
  s = ''.join(ch for ch in s.lower() if ch not in _PUNCTUATION)
  return ' '.join(_ARTICLES.sub(' ', s).split())


def answer_tokens(s: str) -> list[str]:
  return normalize_answer(s).split()


def exact_match_score(prediction: str, gold: str) -> float:
  return float(normalize_answer(prediction) == normalize_answer(gold))


def f1_score(prediction: str, gold: str) -> float:
  """Token-overlap F1. An answer with no tokens is no answer: 1.0 if both are, else 0.0."""
  predicted, expected = answer_tokens(prediction), answer_tokens(gold)
  if not predicted or not expected:
    return float(predicted == expected)
  same = sum((collections.Counter(predicted) & collections.Counter(expected)).values())
  return _f1_from_counts(same, len(predicted) - same, len(expected) - same)


def squad(predictions: dict[str, str], golds: dict[str, list[str]]) -> dict[str, float]:
  """Exact match and F1 averaged over the questions of `golds`, each the max over its references.

  As evaluate-v2.0.py: references that normalise to nothing are dropped, and a question left with
  none has the one reference '' (an empty list marks an unanswerable question). A question missing
  from `predictions` scores as the prediction ''. When both answerable and unanswerable questions
  occur, the scores of each kind come too, as has_answer_* and no_answer_*.
  """
  if not golds:
    raise ValueError('no questions to score')
  exact_scores, f1_scores, answerable = [], [], []
  for question, answers in golds.items():
    prediction = predictions.get(question, '')
    references = [answer for answer in answers if normalize_answer(answer)] or ['']
    exact_scores.append(max(exact_match_score(prediction, answer) for answer in references))
    f1_scores.append(max(f1_score(prediction, answer) for answer in references))
    # The official split looks at the raw list, before dropping empty references.
    answerable.append(bool(answers))
  exact_scores, f1_scores, answerable = map(np.asarray, (exact_scores, f1_scores, answerable))
  results = {'exact_match': float(exact_scores.mean()), 'f1': float(f1_scores.mean())}
  if answerable.any() and not answerable.all():
    for prefix, subset in (('has_answer', answerable), ('no_answer', ~answerable)):
      results[f'{prefix}_exact_match'] = float(exact_scores[subset].mean())
      results[f'{prefix}_f1'] = float(f1_scores[subset].mean())
  return results


_PREFIXES = frozenset('BIES')


def _split_tag(tag: str) -> tuple[str, str]:
  """(prefix, type) at the first hyphen, as conlleval: 'B-ORG-GOV' -> ('B', 'ORG-GOV')."""
  if tag == 'O':
    return 'O', ''
  prefix, hyphen, kind = tag.partition('-')
  if not hyphen:
    # A bare type, as in data tagged without a scheme: a run of one type is one chunk, as IOB1's I-.
    return 'I', tag
  if prefix not in _PREFIXES:
    raise ValueError(f'tag {tag!r}: the prefix must be one of B, I, E, S')
  return prefix, kind


def _ends_chunk(prev_tag: str, tag: str, prev_type: str, kind: str) -> bool:
  """conlleval's endOfChunk: does a chunk end just before `tag`?

  conlleval knows IOB1, IOB2, IOE1 and IOE2; for IOBES, E and S always close their chunk and an S
  closes an open B or I chunk (conlleval would merge E-X B-X into one chunk).
  """
  return (prev_tag in ('E', 'S')
          or (prev_tag in ('B', 'I') and tag in ('B', 'S', 'O'))
          or (prev_tag != 'O' and prev_type != kind))


def _starts_chunk(prev_tag: str, tag: str, prev_type: str, kind: str) -> bool:
  """conlleval's startOfChunk, with S a chunk of its own and B always a start (for IOBES)."""
  return (tag in ('B', 'S')
          or (tag in ('I', 'E') and prev_tag in ('O', 'E', 'S'))
          or (tag != 'O' and prev_type != kind))


def chunks(tags: list[str]) -> set[tuple[str, int, int]]:
  """(type, start, end exclusive) of every chunk of one sentence, by conlleval's rules.

  Reads BIO (IOB2), IOB1, IOE and IOBES tags and 'O'. A tag without an 'X-' prefix, like 'PER',
  is read as 'I-PER' (so a run of 'PER' is one chunk); any prefix but B, I, E, S is an error.
  """
  found = set()
  start = None
  prev_tag, prev_type = 'O', ''
  # A final 'O' closes a chunk that runs to the end of the sentence, as conlleval's boundary does.
  for position, raw_tag in enumerate([*tags, 'O']):
    tag, kind = _split_tag(raw_tag)
    if start is not None and _ends_chunk(prev_tag, tag, prev_type, kind):
      found.add((prev_type, start, position))
      start = None
    if _starts_chunk(prev_tag, tag, prev_type, kind):
      start = position
    prev_tag, prev_type = tag, kind
  return found


def span_f1(gold: list[list[str]], predicted: list[list[str]]) -> dict[str, float]:
  """conlleval's scores: chunk precision, recall and F1 micro-averaged over all sentences, and the
  fraction of tokens whose tag is right.

  A predicted chunk is right when a gold chunk of the same sentence has its type, start and end.
  A score with nothing to count (no predicted or no gold chunks) is 0.0.
  """
  if len(gold) != len(predicted):
    raise ValueError(f'{len(gold)} gold sentences but {len(predicted)} predicted')
  correct = found = expected = right_tags = tokens = 0
  for sentence, (gold_tags, predicted_tags) in enumerate(zip(gold, predicted)):
    if len(gold_tags) != len(predicted_tags):
      raise ValueError(f'sentence {sentence} has {len(gold_tags)} gold tags but '
                       f'{len(predicted_tags)} predicted')
    gold_chunks, predicted_chunks = chunks(gold_tags), chunks(predicted_tags)
    correct += len(gold_chunks & predicted_chunks)
    found += len(predicted_chunks)
    expected += len(gold_chunks)
    right_tags += sum(g == p for g, p in zip(gold_tags, predicted_tags))
    tokens += len(gold_tags)
  return {
      'precision': correct / found if found else 0.0,
      'recall': correct / expected if expected else 0.0,
      'f1': _f1_from_counts(correct, found - correct, expected - correct),
      'token_accuracy': right_tags / tokens if tokens else 0.0,
  }
