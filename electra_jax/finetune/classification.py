"""Sequence classification and regression on [CLS]: user files or GLUE from TFDS.

User files have columns `text`, optional `text_pair` and `label`:
  .csv / .tsv   a header row naming the columns (TSV is read without quoting, as GLUE's files are)
  .jsonl        one JSON object per line
"""

import csv
import json
import os

import ml_collections
import numpy as np

from electra_jax.data import corpus
from electra_jax.data import tokenizer as tokenizer_lib
from electra_jax.errors import UserError
from electra_jax.finetune import metrics, tasks

# GLUE in TFDS: text features, whether it is regression, the metric the paper reports, the
# evaluation split and the paper's epochs.
GLUE = {
    'cola': (('sentence',), False, 'mcc', 'validation', 3),
    'sst2': (('sentence',), False, 'accuracy', 'validation', 3),
    'mrpc': (('sentence1', 'sentence2'), False, 'f1', 'validation', 3),
    'qqp': (('question1', 'question2'), False, 'f1', 'validation', 3),
    'stsb': (('sentence1', 'sentence2'), True, 'spearman', 'validation', 10),
    'mnli': (('premise', 'hypothesis'), False, 'accuracy', 'validation_matched', 3),
    'qnli': (('question', 'sentence'), False, 'accuracy', 'validation', 3),
    'rte': (('sentence1', 'sentence2'), False, 'accuracy', 'validation', 10),
}


def read_file(path: str) -> list[dict]:
  """Rows of a CSV, TSV or JSONL file as dicts with `text`, `label` and maybe `text_pair`."""
  extension = os.path.splitext(path)[1].lower()
  try:
    with open(path, encoding='utf-8', newline='') as f:
      if extension in ('.csv', '.tsv'):
        rows = list(csv.DictReader(f, delimiter='\t' if extension == '.tsv' else ',',
                                   quoting=csv.QUOTE_NONE if extension == '.tsv' else csv.QUOTE_MINIMAL))
      elif extension in ('.jsonl', '.json'):
        rows = [json.loads(line) for line in f if line.strip()]
      else:
        raise UserError(f'{path}: unknown file type {extension!r}; use .csv, .tsv or .jsonl')
  except (UnicodeDecodeError, json.JSONDecodeError, csv.Error) as e:
    raise UserError(f'{path} could not be read: {e}') from e
  if not rows:
    raise UserError(f'{path} has no rows')
  for number, row in enumerate(rows, start=1):
    missing = [column for column in ('text', 'label') if not isinstance(row, dict) or
               row.get(column) is None]
    if missing:
      raise UserError(f'{path}: row {number} has no {" or ".join(missing)} (its columns: '
                      f'{", ".join(row) if isinstance(row, dict) else type(row).__name__}); '
                      'the columns are text, optional text_pair, and label')
  return rows


def read_glue(name: str, data_dir: str, split: str) -> tuple[list[dict], list[str] | None]:
  """Rows of a prepared GLUE task in the same form as read_file, and its label names (None for
  regression)."""
  features = GLUE[name.split('/', 1)[1]][0]
  builder = corpus.tfds_builder(name, data_dir)
  source = corpus.tfds_split(builder, name, split)
  records = source.__getitems__(list(range(len(source))))
  rows = [{'text': corpus.tfds_text(r[features[0]]),
           'text_pair': corpus.tfds_text(r[features[1]]) if len(features) > 1 else None,
           'label': r['label']} for r in records]
  label = builder.info.features['label']
  names = list(label.names) if hasattr(label, 'names') else None
  if names is not None:
    rows = [{**row, 'label': names[int(row['label'])]} for row in rows]
  return rows, names


def _encode(rows: list[dict], tokenizer: tokenizer_lib.Tokenizer, max_length: int, where: str):
  pairs = [row.get('text_pair') for row in rows]
  has_pair = [p is not None and p != '' for p in pairs]
  if any(has_pair) and not all(has_pair):
    raise UserError(f'{where}: some rows have a text_pair and some do not; give it in every row or '
                    'in none')
  first = tokenizer.encode([str(row['text']) for row in rows])
  second = tokenizer.encode([str(p) for p in pairs]) if all(has_pair) else None
  return tasks.pack(first, second, max_length, tokenizer)


def _regression_labels(rows: list[dict], where: str) -> np.ndarray:
  try:
    return np.array([float(row['label']) for row in rows], np.float32)
  except ValueError as e:
    raise UserError(f'{where}: a regression label is not a number ({e})') from e


def load(config: ml_collections.ConfigDict, tokenizer: tokenizer_lib.Tokenizer) -> tasks.TaskData:
  regression = config.kind == 'regression'
  epochs, main_metric = 3, ('spearman' if regression else 'accuracy')
  names = None
  if config.tfds:
    task = config.tfds.partition('/')[2]
    if not config.tfds.startswith('glue/') or task not in GLUE:
      raise UserError(f'config.tfds={config.tfds!r} is not a GLUE task; use one of '
                      f'{", ".join("glue/" + t for t in GLUE)}')
    _, regression_task, main_metric, eval_split, epochs = GLUE[task]
    if regression_task != regression:
      right = 'regression' if regression_task else 'classification'
      raise UserError(f'{config.tfds} is a {right} task; use configs/finetune/{right}.py')
    train_rows, names = read_glue(config.tfds, corpus.tfds_data_dir(config.tfds_data_dir), 'train')
    eval_rows, _ = read_glue(config.tfds, corpus.tfds_data_dir(config.tfds_data_dir), eval_split)
    train_where, eval_where, name = f'{config.tfds} train', f'{config.tfds} {eval_split}', config.tfds
  else:
    train_where = tasks.check_file(config.train_file, 'train_file')
    eval_where = tasks.check_file(config.eval_file, 'eval_file')
    train_rows, eval_rows = read_file(train_where), read_file(eval_where)
    name = os.path.basename(train_where)

  train = _encode(train_rows, tokenizer, config.max_seq_length, train_where)
  evaluation = _encode(eval_rows, tokenizer, config.max_seq_length, eval_where)
  if regression:
    train['label'] = _regression_labels(train_rows, train_where)
    gold = _regression_labels(eval_rows, eval_where)
    num_outputs = 1
  else:
    train_labels = [str(row['label']) for row in train_rows]
    names = names or tasks.label_names(config, train_labels)
    if len(names) < 2:
      raise UserError(f'{train_where} has a single label {names}; classification needs two or more')
    train['label'] = tasks.label_ids(train_labels, names, train_where)
    gold = tasks.label_ids([str(row['label']) for row in eval_rows], names, eval_where)
    num_outputs = len(names)
  evaluation['label'] = gold

  def score(outputs):
    if regression:
      predicted = outputs['logits']
      results = {'pearson': metrics.pearson(predicted, gold),
                 'spearman': metrics.spearman(predicted, gold),
                 'mse': float(np.mean((predicted - gold) ** 2))}
      values = [float(p) for p in predicted]
    else:
      predicted = outputs['prediction']
      results = {'accuracy': metrics.accuracy(predicted, gold),
                 'f1': metrics.f1(predicted, gold, num_outputs),
                 'mcc': metrics.matthews_corrcoef(predicted, gold, num_outputs)}
      values = [names[p] for p in predicted]
    lines = [json.dumps({'index': i, 'prediction': v, 'label': row['label'] if regression else
                         str(row['label'])}) for i, (v, row) in enumerate(zip(values, eval_rows))]
    return results, '\n'.join(lines) + '\n'

  return tasks.TaskData(
      name=name, head='regression' if regression else 'classification', num_outputs=num_outputs,
      train=train, eval=evaluation, score=score, predictions_file='predictions.jsonl',
      main_metric=main_metric, epochs=epochs, labels=None if regression else names)
