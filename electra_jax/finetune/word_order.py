"""A small CoLA-like task made offline from the builtin corpus: is the word order of a line intact?

  python -m electra_jax.finetune.word_order --output=runs/word_order

writes train.csv and dev.csv (columns text, label: `intact` or `swapped`) for trying fine-tuning on a
fresh machine. Half the lines have two of their words swapped, which is what a replaced-token
detector is pre-trained to notice, so a pre-trained model should beat --config.from_scratch=True.
Dev lines come from other documents than train lines.
"""

import csv
import io
import os
import random
import sys

from absl import app, flags, logging

from electra_jax import files
from electra_jax.data import builtin, cache_dir
from electra_jax.errors import UserError

_OUTPUT = flags.DEFINE_string('output', None, 'Directory for train.csv and dev.csv.')
_TRAIN = flags.DEFINE_integer('train_examples', 4000, 'Rows of train.csv.')
_DEV = flags.DEFINE_integer('dev_examples', 1000, 'Rows of dev.csv.')
_SEED = flags.DEFINE_integer('seed', 0, 'Seeds the choice of lines and swaps.')


def _documents(path: str) -> list[list[str]]:
  """Lines of 6 to 40 words, grouped by document (blank lines separate documents)."""
  documents, current = [], []
  with open(path, encoding='utf-8') as f:
    for line in f:
      words = line.split()
      if not words:
        documents.append(current)
        current = []
      elif 6 <= len(words) <= 40:
        current.append(line.strip())
  documents.append(current)
  return [d for d in documents if d]


def _rows(documents: list[list[str]], count: int, rng: random.Random) -> list[dict]:
  lines = [line for document in documents for line in document]
  if len(lines) < count:
    raise UserError(f'only {len(lines)} usable lines for {count} examples; ask for fewer')
  rows = []
  for line in rng.sample(lines, count):
    words = line.split()
    if rng.random() < 0.5:
      i, j = rng.sample(range(len(words)), 2)
      if words[i] != words[j]:
        words[i], words[j] = words[j], words[i]
        rows.append({'text': ' '.join(words), 'label': 'swapped'})
        continue
    rows.append({'text': line, 'label': 'intact'})
  return rows


def write(output: str, data_dir: str, train_examples: int, dev_examples: int, seed: int) -> None:
  rng = random.Random(seed)
  documents = _documents(builtin.extract(data_dir))
  rng.shuffle(documents)
  dev_documents = max(1, len(documents) // 5)
  splits = {'dev.csv': _rows(documents[:dev_documents], dev_examples, rng),
            'train.csv': _rows(documents[dev_documents:], train_examples, rng)}
  os.makedirs(output, exist_ok=True)
  for name, rows in splits.items():
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=['text', 'label'])
    writer.writeheader()
    writer.writerows(rows)
    files.write_atomically(os.path.join(output, name), text.getvalue())
  logging.info('wrote %s/train.csv (%d rows) and dev.csv (%d rows)', output, train_examples,
               dev_examples)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  try:
    write(_OUTPUT.value, cache_dir(), _TRAIN.value, _DEV.value, _SEED.value)
  except UserError as e:
    sys.exit(f'error: {e}')


if __name__ == '__main__':
  flags.mark_flags_as_required(['output'])
  app.run(main)
