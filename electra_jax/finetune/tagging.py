"""Token tagging (CoNLL chunking, NER): one label per word, predicted on the word's first piece.

Input: CoNLL column files: one word per line, the word in the first column and its tag in
config.tag_column (default the last), a blank line between sentences; `-DOCSTART-` lines are skipped.
"""

import os

from absl import logging
import ml_collections
import numpy as np

from electra_jax.data import tokenizer as tokenizer_lib
from electra_jax.errors import UserError
from electra_jax.finetune import metrics, tasks

Sentence = tuple[list[str], list[str]]  # (words, tags)


def read_conll(path: str, tag_column: int) -> list[Sentence]:
  sentences, words, tags = [], [], []
  try:
    with open(path, encoding='utf-8') as f:
      for number, line in enumerate(f, start=1):
        columns = line.split()
        if not columns or columns[0] == '-DOCSTART-':
          if words:
            sentences.append((words, tags))
            words, tags = [], []
          continue
        if len(columns) < 2:
          raise UserError(f'{path}:{number} has one column; CoNLL lines are "word ... tag"')
        try:
          tags.append(columns[tag_column])
        except IndexError as e:
          raise UserError(f'{path}:{number} has {len(columns)} columns, so config.tag_column='
                          f'{tag_column} does not exist') from e
        words.append(columns[0])
  except UnicodeDecodeError as e:
    raise UserError(f'{path} is not UTF-8 text: {e}') from e
  if words:
    sentences.append((words, tags))
  if not sentences:
    raise UserError(f'{path} has no sentences')
  return sentences


def _featurize(sentences: list[Sentence], names: list[str], tokenizer: tokenizer_lib.Tokenizer,
               max_length: int, where: str):
  """Arrays, plus per sentence the number of its words that fit in max_length (the rest of a long
  sentence gets no prediction from the model)."""
  label_of = {name: i for i, name in enumerate(names)}
  pieces = iter(tokenizer.encode([w for words, _ in sentences for w in words]))
  cls, sep = tokenizer.special_ids['cls_id'], tokenizer.special_ids['sep_id']
  n = len(sentences)
  arrays = {key: np.zeros((n, max_length), np.int32)
            for key in ('input_ids', 'segment_ids', 'input_mask', 'labels', 'label_mask')}
  fitted = []
  for i, (words, tags) in enumerate(sentences):
    ids, fit, cut = [cls], 0, False
    for tag in tags:
      word_pieces = next(pieces)  # Consumed even past the end, to stay aligned with later sentences.
      if tag not in label_of:
        raise UserError(f'{where} has the tag {tag!r}, which is not among {names}; set '
                        '--config.labels to the full list, comma-separated')
      cut = cut or len(ids) + len(word_pieces) > max_length - 1
      if cut:  # Once a word does not fit, the rest of the sentence is left out.
        continue
      arrays['labels'][i, len(ids)] = label_of[tag]
      arrays['label_mask'][i, len(ids)] = 1
      ids.extend(word_pieces)
      fit += 1
    ids.append(sep)
    arrays['input_ids'][i, :len(ids)] = ids
    arrays['input_mask'][i, :len(ids)] = 1
    fitted.append(fit)
  return arrays, fitted


def load(config: ml_collections.ConfigDict, tokenizer: tokenizer_lib.Tokenizer) -> tasks.TaskData:
  train_path = tasks.check_file(config.train_file, 'train_file')
  eval_path = tasks.check_file(config.eval_file, 'eval_file')
  train_sentences = read_conll(train_path, config.tag_column)
  eval_sentences = read_conll(eval_path, config.tag_column)
  names = tasks.label_names(config, [t for _, tags in train_sentences for t in tags])
  train, _ = _featurize(train_sentences, names, tokenizer, config.max_seq_length, train_path)
  evaluation, fitted = _featurize(eval_sentences, names, tokenizer, config.max_seq_length, eval_path)
  outside = 'O' if 'O' in names else names[0]

  def score(outputs):
    gold, predicted, lines = [], [], []
    for i, (words, tags) in enumerate(eval_sentences):
      first_pieces = np.flatnonzero(evaluation['label_mask'][i])
      # Words past max_seq_length get the outside tag: a miss, counted against the model.
      tagged = [names[p] for p in outputs['prediction'][i, first_pieces]]
      tagged += [outside] * (len(words) - fitted[i])
      gold.append(tags)
      predicted.append(tagged)
      lines.extend(f'{w} {g} {p}' for w, g, p in zip(words, tags, tagged))
      lines.append('')
    return metrics.span_f1(gold, predicted), '\n'.join(lines) + '\n'

  truncated = sum(len(words) - fit for (words, _), fit in zip(eval_sentences, fitted))
  if truncated:
    logging.warning('%d words of %s do not fit in max_seq_length=%d and are scored as missed; '
                    'raise --config.max_seq_length to keep them', truncated, eval_path,
                    config.max_seq_length)
  return tasks.TaskData(
      name=os.path.basename(train_path), head='tagging', num_outputs=len(names), train=train,
      eval=evaluation, score=score, predictions_file='predictions.conll', main_metric='f1',
      epochs=3, labels=names)
