"""Extractive question answering (SQuAD 1.1 and 2.0): read the questions, cut each context into
windows, and decode answer texts from start and end logits, as BERT's and ELECTRA's run_squad do.

A window (feature) is `[CLS] question [SEP] context-window [SEP] [PAD]...`. The context is tokenized
once, with character offsets, and windows over its tokens start every `doc_stride` tokens. A token
that lies in several windows counts only in the one where it has the most context on both sides.
"""

import dataclasses
import json
import os

import ml_collections
import numpy as np

from electra_jax.data import corpus
from electra_jax.errors import UserError
from electra_jax.finetune import metrics, tasks


@dataclasses.dataclass(frozen=True)
class Example:
  id: str
  question: str
  context: str
  answers: tuple[tuple[str, int], ...]  # (text, character start in context); empty = unanswerable.

  @property
  def is_impossible(self) -> bool:
    return not self.answers


def _example(source: str, qid, question, context, answers, is_impossible) -> Example:
  """An Example whose fields are checked: every answer must be at its answer_start."""
  if not all(isinstance(x, str) for x in (qid, question, context)):
    raise UserError(f'{source}: question {qid}: id, question and context must be strings')
  if is_impossible:
    answers = ()
  for text, start in answers:
    if not (isinstance(text, str) and isinstance(start, int) and 0 <= start and
            context[start:start + len(text)] == text):
      raise UserError(f'{source}: question {qid}: the answer {text!r} is not at answer_start '
                      f'{start!r} of its context')
  return Example(qid, question, context, tuple(answers))


def read_squad_json(path: str) -> list[Example]:
  """The questions of an official SQuAD v1.1 or v2.0 JSON file, in file order."""
  if not os.path.isfile(path):
    raise UserError(f'SQuAD file {path} does not exist')
  try:
    with open(path, encoding='utf-8') as f:
      data = json.load(f)
  except (UnicodeDecodeError, json.JSONDecodeError) as e:
    raise UserError(f'{path} is not a SQuAD JSON file ({e})') from e
  examples, where = [], 'its top level'
  try:
    for i, article in enumerate(data['data']):
      for j, paragraph in enumerate(article['paragraphs']):
        where = f'article {i} paragraph {j}'
        context = paragraph['context']
        for qa in paragraph['qas']:
          where = f'question {qa["id"]}'
          answers = [(a['text'], a['answer_start']) for a in qa['answers']]
          examples.append(_example(path, qa['id'], qa['question'], context, answers,
                                   qa.get('is_impossible', False)))
  except KeyError as e:
    raise UserError(f'{path} is not in the SQuAD format: {where} lacks {e}') from e
  except (TypeError, AttributeError) as e:
    raise UserError(f'{path} is not in the SQuAD format at {where} ({e})') from e
  ids = set()
  for example in examples:
    if example.id in ids:
      raise UserError(f'{path}: question id {example.id} occurs twice; ids must be unique')
    ids.add(example.id)
  return examples


def read_tfds(name: str, data_dir: str, split: str) -> list[Example]:
  """A split of SQuAD as prepared by TFDS in array_record ('squad/v1.1' or 'squad/v2.0')."""
  builder = corpus.tfds_builder(name, data_dir)
  missing = {'id', 'question', 'context', 'answers'} - set(builder.info.features)
  if missing:
    raise UserError(f'tfds:{name} is not SQuAD: it lacks the features {", ".join(sorted(missing))}')
  source = corpus.tfds_split(builder, name, split)
  text = corpus.tfds_text
  examples = []
  for start in range(0, len(source), 1024):
    for record in source.__getitems__(range(start, min(start + 1024, len(source)))):
      answers = [(text(t), int(s)) for t, s in zip(record['answers']['text'],
                                                    record['answers']['answer_start'])]
      examples.append(_example(f'tfds:{name} {split}', text(record['id']),
                               text(record['question']), text(record['context']), answers,
                               bool(record.get('is_impossible', False))))
  return examples


@dataclasses.dataclass
class Features:
  """N windows of length L."""
  # int32 input_ids, segment_ids, input_mask [N, L]; start_positions, end_positions, answerable [N].
  arrays: dict[str, np.ndarray]
  example_index: np.ndarray  # [N] index into the examples of each window.
  # Per window, [L, 2]: each position's character span in the context; (-1, -1) outside it.
  token_spans: list[np.ndarray]
  max_context: list[np.ndarray]  # Per window, [L] bool: this is the window where a token counts.


def _window_starts(num_tokens: int, window: int, doc_stride: int) -> list[int]:
  """BERT's doc spans: the last one reaches the end; a stride above the window skips no tokens."""
  starts = [0]
  while starts[-1] + window < num_tokens:
    starts.append(starts[-1] + min(window, doc_stride))
  return starts


def _max_context_window(num_tokens: int, starts: list[int], window: int) -> np.ndarray:
  """[T] the window in which each token has the most context (BERT's _check_is_max_context)."""
  first = np.asarray(starts)[:, None]
  lengths = np.minimum(window, num_tokens - first)
  position = np.arange(num_tokens)
  left, right = position - first, first + lengths - 1 - position
  score = np.where((left >= 0) & (right >= 0), np.minimum(left, right) + 0.01 * lengths, -np.inf)
  return np.argmax(score, axis=0)  # Ties go to the earlier window, as in BERT.


def _answer_tokens(example: Example, spans: np.ndarray) -> tuple[int, int] | None:
  """The first and last context token that overlap the first answer's characters."""
  if not example.answers:
    return None
  text, start = example.answers[0]
  overlap = np.flatnonzero((spans[:, 0] < start + len(text)) & (spans[:, 1] > start))
  return (int(overlap[0]), int(overlap[-1])) if len(overlap) else None


def featurize(examples: list[Example], tokenizer, *, max_seq_length: int, max_query_length: int,
              doc_stride: int) -> Features:
  """Windows over every example's context, labelled with its first answer."""
  if max_query_length < 0 or doc_stride < 1 or max_seq_length < max_query_length + 4:
    raise UserError(f'max_seq_length={max_seq_length} must exceed max_query_length='
                    f'{max_query_length} by at least 4, and doc_stride={doc_stride} must be >= 1')
  contexts = {}
  for example in examples:
    contexts.setdefault(example.context, len(contexts))
  tokens = [(np.asarray(ids, np.int32), np.asarray(spans, np.int32).reshape(-1, 2))
            for ids, spans in tokenizer.encode_with_offsets(list(contexts))]
  questions = [q[:max_query_length] for q in tokenizer.encode([e.question for e in examples])]
  starts = [_window_starts(len(tokens[contexts[e.context]][0]), max_seq_length - len(q) - 3,
                           doc_stride) for e, q in zip(examples, questions)]

  n = sum(len(s) for s in starts)
  arrays = {key: np.zeros((n, max_seq_length), np.int32)
            for key in ('input_ids', 'segment_ids', 'input_mask')}
  arrays.update({key: np.zeros(n, np.int32)
                 for key in ('start_positions', 'end_positions', 'answerable')})
  example_index = np.zeros(n, np.int32)
  token_spans = np.full((n, max_seq_length, 2), -1, np.int32)
  max_context = np.zeros((n, max_seq_length), bool)
  cls, sep = tokenizer.special_ids['cls_id'], tokenizer.special_ids['sep_id']
  row = 0
  for i, (example, question, window_starts) in enumerate(zip(examples, questions, starts)):
    ids, spans = tokens[contexts[example.context]]
    window = max_seq_length - len(question) - 3
    offset = len(question) + 2  # Where the context begins in a window.
    best = _max_context_window(len(ids), window_starts, window)
    answer = _answer_tokens(example, spans)
    rows = slice(row, row + len(window_starts))
    arrays['input_ids'][rows, :offset] = [cls, *question, sep]
    example_index[rows] = i
    for w, start in enumerate(window_starts):
      r, length = row + w, min(window, len(ids) - start)
      context = slice(offset, offset + length)
      arrays['input_ids'][r, context] = ids[start:start + length]
      arrays['input_ids'][r, offset + length] = sep
      arrays['segment_ids'][r, offset:offset + length + 1] = 1
      arrays['input_mask'][r, :offset + length + 1] = 1
      token_spans[r, context] = spans[start:start + length]
      max_context[r, context] = best[start:start + length] == w
      if answer and start <= answer[0] and answer[1] < start + length:
        arrays['start_positions'][r] = answer[0] - start + offset
        arrays['end_positions'][r] = answer[1] - start + offset
        arrays['answerable'][r] = 1
    row += len(window_starts)
  return Features(arrays, example_index, list(token_spans), list(max_context))


def _top(logits: np.ndarray, k: int) -> np.ndarray:
  """[N, k] positions of the k largest logits of each row, in no particular order."""
  return np.argpartition(-logits, k - 1, axis=1)[:, :k]


def decode(examples: list[Example], features: Features, start_logits: np.ndarray,
           end_logits: np.ndarray, answerable_logits: np.ndarray | None, *, n_best: int,
           max_answer_length: int, answerable_threshold: float = 0.0
           ) -> tuple[dict[str, str], dict[str, list[dict]]]:
  """Each example's best answer text, and its n best ({'text', 'start_logit', 'end_logit',
  'probability'}, best first, distinct texts).

  Spans come from the n_best highest start and end logits of each window among the positions that
  may start (a context token in its max-context window) or end (a context token) an answer. With
  answerable_logits (SQuAD 2.0), an example is unanswerable ('') when its highest answerable logit
  over its windows is below answerable_threshold.
  """
  spans = np.stack(features.token_spans)
  n, length = spans.shape[:2]
  start_logits = np.asarray(start_logits, np.float64)
  end_logits = np.asarray(end_logits, np.float64)
  if start_logits.shape != (n, length) or end_logits.shape != (n, length):
    raise ValueError(f'logits of shapes {start_logits.shape} and {end_logits.shape} do not match '
                     f'the {n} windows of length {length}')
  in_context = spans[:, :, 0] >= 0
  start_logits = np.where(in_context & np.stack(features.max_context), start_logits, -np.inf)
  end_logits = np.where(in_context, end_logits, -np.inf)
  k = min(n_best, length)
  starts, ends = _top(start_logits, k), _top(end_logits, k)
  start_top = np.take_along_axis(start_logits, starts, 1)[:, :, None]
  end_top = np.take_along_axis(end_logits, ends, 1)[:, None, :]
  tokens = ends[:, None, :] - starts[:, :, None] + 1
  valid = (np.isfinite(start_top) & np.isfinite(end_top) & (tokens >= 1) &
           (tokens <= max_answer_length))
  window, a, b = np.nonzero(valid)
  start, end = starts[window, a], ends[window, b]
  start_logit, end_logit = start_top[window, a, 0], end_top[window, 0, b]
  example = features.example_index[window]
  order = np.lexsort((-(start_logit + end_logit), example))  # By example, best first.
  bounds = np.searchsorted(example[order], np.arange(len(examples) + 1))
  char_start, char_end = spans[window, start, 0], spans[window, end, 1]

  answerable = np.full(len(examples), np.inf)
  if answerable_logits is not None:
    answerable = np.full(len(examples), -np.inf)
    np.maximum.at(answerable, features.example_index, np.asarray(answerable_logits, np.float64))
  predictions, nbest = {}, {}
  for i, ex in enumerate(examples):
    entries, seen = [], set()
    for c in order[bounds[i]:bounds[i + 1]]:
      text = ex.context[char_start[c]:char_end[c]].strip()
      if text and text not in seen:  # Whitespace is no answer; a text counts once.
        seen.add(text)
        entries.append({'text': text, 'start_logit': float(start_logit[c]),
                        'end_logit': float(end_logit[c])})
        if len(entries) == n_best:
          break
    if entries:
      scores = np.array([e['start_logit'] + e['end_logit'] for e in entries])
      probabilities = np.exp(scores - scores.max())
      for entry, p in zip(entries, probabilities / probabilities.sum()):
        entry['probability'] = float(p)
    nbest[ex.id] = entries
    answered = entries and answerable[i] >= answerable_threshold
    predictions[ex.id] = entries[0]['text'] if answered else ''
  return predictions, nbest


def load(config: ml_collections.ConfigDict, tokenizer) -> tasks.TaskData:
  """SQuAD from JSON files or TFDS; SQuAD 2.0 (an unanswerable training question) adds the
  answerability loss and lets decoding answer ''."""
  if config.tfds:
    if not config.tfds.startswith('squad/'):
      raise UserError(f'config.tfds={config.tfds!r} is not SQuAD; use squad/v1.1 or squad/v2.0')
    data_dir = corpus.tfds_data_dir(config.tfds_data_dir)
    train_examples = read_tfds(config.tfds, data_dir, 'train')
    eval_examples = read_tfds(config.tfds, data_dir, 'validation')
    name = config.tfds
  else:
    train_path = tasks.check_file(config.train_file, 'train_file')
    train_examples = read_squad_json(train_path)
    eval_examples = read_squad_json(tasks.check_file(config.eval_file, 'eval_file'))
    name = os.path.basename(train_path)
  version_2 = any(example.is_impossible for example in train_examples)
  windows = dict(max_seq_length=config.max_seq_length, max_query_length=config.qa.max_query_length,
                 doc_stride=config.qa.doc_stride)
  train = featurize(train_examples, tokenizer, **windows)
  evaluation = featurize(eval_examples, tokenizer, **windows)
  golds = {example.id: [text for text, _ in example.answers] for example in eval_examples}

  def score(outputs):
    predictions, _ = decode(
        eval_examples, evaluation, outputs['start_logits'], outputs['end_logits'],
        outputs['answerable_logits'] if version_2 else None, n_best=config.qa.n_best,
        max_answer_length=config.qa.max_answer_length,
        answerable_threshold=config.qa.answerable_threshold)
    return metrics.squad(predictions, golds), json.dumps(predictions, ensure_ascii=False, indent=1)

  return tasks.TaskData(
      name=name, head='span', num_outputs=1, train=train.arrays, eval=evaluation.arrays,
      score=score, predictions_file='predictions.json', main_metric='f1', epochs=2,
      answerable_weight=config.qa.answerable_weight if version_2 else 0.0)
