"""A small offline classification task made from the standard library: does a docstring describe a
class or a function?

  python -m electra_jax.finetune.docstring_kind --output=runs/docstring_kind

writes train.csv and dev.csv (columns text, label: `class` or `function`) with the first paragraph of
every class docstring and as many function docstrings, for trying fine-tuning on a fresh machine.
Dev docstrings come from other files than train docstrings (one file in five).
"""

import csv
import io
import os
import random
import sysconfig
import zlib
from typing import Callable

from absl import flags, logging

from electra_jax import cli, files
from electra_jax.data import builtin
from electra_jax.errors import UserError


_MAX_WORDS = 60


def _first_paragraph(docstring: str) -> str:
  paragraph = docstring.strip().split('\n\n', 1)[0]
  return ' '.join(paragraph.split()[:_MAX_WORDS])


def rows(stdlib: str, seed: int) -> dict[str, list[dict]]:
  """{'train': rows, 'dev': rows}, each with every class docstring of its files and as many function
  docstrings, shuffled."""
  rng = random.Random(seed)
  found = {'train': {'class': [], 'function': []}, 'dev': {'class': [], 'function': []}}
  for path, kind, docstring in builtin.docstrings(stdlib):
    if kind == 'module' or not (text := _first_paragraph(docstring)):
      continue
    found[split_of(path, stdlib)][kind].append(text)
  result = {}
  for split, kinds in found.items():
    if not kinds['class']:
      raise UserError(f'no class docstrings found under {stdlib}')
    count = min(len(kinds['class']), len(kinds['function']))
    chosen = [{'text': t, 'label': kind} for kind in ('class', 'function')
              for t in rng.sample(kinds[kind], count)]
    rng.shuffle(chosen)
    result[split] = chosen
  return result


def split_of(path: str, stdlib: str) -> str:
  """'dev' for one file in five (by a hash of its path), else 'train'."""
  return 'dev' if zlib.crc32(os.path.relpath(path, stdlib).encode()) % 5 == 0 else 'train'


def write_splits(output: str, split_rows: dict[str, list[dict]]) -> dict[str, int]:
  """Writes each split's rows to output/<split>.csv (columns: the rows' keys); returns the counts."""
  os.makedirs(output, exist_ok=True)
  counts = {}
  for split, chosen in split_rows.items():
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(chosen[0]))
    writer.writeheader()
    writer.writerows(chosen)
    files.write_atomically(os.path.join(output, f'{split}.csv'), text.getvalue())
    counts[split] = len(chosen)
  return counts


def write(output: str, stdlib: str, seed: int) -> dict[str, int]:
  return write_splits(output, rows(stdlib, seed))


def run_command(make_rows: Callable[[str, int], dict[str, list[dict]]], seed_help: str) -> None:
  """The command line of a task module: --output and --seed, then make_rows(stdlib, seed) written
  by write_splits."""
  flags.DEFINE_string('output', None, 'Directory for train.csv and dev.csv.')
  flags.DEFINE_integer('seed', 0, seed_help)
  flags.mark_flags_as_required(['output'])

  def main():
    args = flags.FLAGS
    counts = write_splits(args.output, make_rows(sysconfig.get_paths()['stdlib'], args.seed))
    logging.info('wrote %s/train.csv (%d rows) and dev.csv (%d rows)', args.output,
                 counts['train'], counts['dev'])

  cli.run_command(main)


if __name__ == '__main__':
  run_command(rows, 'Seeds which function docstrings are picked.')
