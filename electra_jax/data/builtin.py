"""The default corpus: English prose that ships with every Python, so a fresh machine needs no download.

It is the standard library's docstrings (read with `ast`, nothing is imported) and the `pydoc_data`
help topics: about 2 MB of text, enough for the tiny preset to learn visibly. One docstring or topic is
one document. The text is extracted once per Python version into the data directory.
"""

import ast
import os
import platform
import sysconfig
from typing import Iterator

from absl import logging

from electra_jax.data import corpus

_SKIPPED_DIRS = {'site-packages', 'dist-packages', 'test', 'tests', 'idle_test'}


def docstrings(stdlib: str) -> Iterator[tuple[str, str, str]]:
  """(file path, 'module' | 'class' | 'function', text) of every docstring in the standard library."""
  kinds = {ast.Module: 'module', ast.ClassDef: 'class', ast.FunctionDef: 'function',
           ast.AsyncFunctionDef: 'function'}
  for root, dirs, files in os.walk(stdlib):
    dirs[:] = sorted(d for d in dirs if d not in _SKIPPED_DIRS)
    for name in sorted(files):
      if not name.endswith('.py'):
        continue
      path = os.path.join(root, name)
      try:
        with open(path, 'rb') as f:
          tree = ast.parse(f.read())
      except (SyntaxError, ValueError, OSError):
        continue  # A few stdlib files are deliberately invalid (e.g. bad-syntax test fixtures).
      for node in ast.walk(tree):
        if type(node) in kinds and (docstring := ast.get_docstring(node)):
          yield path, kinds[type(node)], docstring


def _topics() -> Iterator[str]:
  from pydoc_data import topics  # pylint: disable=g-import-not-at-top
  for name in sorted(topics.topics):
    yield topics.topics[name]


def _document_lines(text: str) -> list[str]:
  # Doctest lines are code, not prose.
  return [line.strip() for line in text.splitlines()
          if line.strip() and not line.lstrip().startswith(('>>>', '... '))]


def extract(data_dir: str) -> str:
  """Writes the corpus (once) and returns the path of its text file."""
  path = os.path.join(data_dir, 'builtin', f'python-{platform.python_version()}.txt')
  if os.path.exists(path):
    return path
  os.makedirs(os.path.dirname(path), exist_ok=True)
  logging.info('extracting the builtin corpus (stdlib docstrings and pydoc topics) to %s', path)
  tmp = f'{path}.tmp{os.getpid()}'
  with open(tmp, 'w', encoding='utf-8') as f:
    stdlib = sysconfig.get_paths()['stdlib']
    for document in (*(text for _, _, text in docstrings(stdlib)), *_topics()):
      if lines := _document_lines(document):
        f.write('\n'.join(lines) + '\n\n')
  os.replace(tmp, path)
  return path


def load(data_dir: str) -> corpus.Corpus:
  return corpus.from_text_files(extract(data_dir), name='builtin')
