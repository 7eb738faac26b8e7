"""A small offline sentence-pair task made from the standard library: does sentence B continue
sentence A in the same docstring, or come from another one?

  python -m electra_jax.finetune.docstring_next --output=runs/docstring_next

writes train.csv and dev.csv (columns text, text_pair, label: `next` or `other`): every pair of
consecutive sentences of a docstring's first paragraph, and as many pairs whose second sentence is
drawn from another docstring of the same split. Dev pairs come from other files than train pairs
(the files docstring_kind holds out), for trying fine-tuning on pairs on a fresh machine.
"""

import random
import re

from electra_jax.data import builtin
from electra_jax.errors import UserError
from electra_jax.finetune import docstring_kind


_SENTENCE_END = re.compile(r'(?<=[a-z0-9)][.!?])\s+(?=[A-Z])')
_MIN_WORDS, _MAX_WORDS = 4, 40


def _sentences(docstring: str) -> list[str]:
  paragraph = ' '.join(docstring.strip().split('\n\n', 1)[0].split())
  return [s for s in _SENTENCE_END.split(paragraph) if _MIN_WORDS <= len(s.split()) <= _MAX_WORDS]


def _other_sentence(rng: random.Random, documents: list[list[str]], index: int,
                    avoid: tuple[str, ...]) -> str:
  """A sentence of another docstring than documents[index], none of `avoid` (docstrings repeat)."""
  for _ in range(1000):
    other = rng.randrange(len(documents) - 1)
    candidates = [s for s in documents[other + (other >= index)] if s not in avoid]
    if candidates:
      return rng.choice(candidates)
  raise UserError('the docstrings found repeat each other too much to make negative pairs')


def rows(stdlib: str, seed: int) -> dict[str, list[dict]]:
  """{'train': rows, 'dev': rows}: each consecutive pair labelled `next`, and for each one a pair of
  the same first sentence with a second sentence of another docstring, labelled `other`."""
  rng = random.Random(seed)
  found = {'train': [], 'dev': []}
  for path, _, docstring in builtin.docstrings(stdlib):
    sentences = _sentences(docstring)
    if len(sentences) >= 2:
      found[docstring_kind.split_of(path, stdlib)].append(sentences)
  result = {}
  for split, documents in found.items():
    if len(documents) < 2:
      raise UserError(f'fewer than two docstrings with two sentences under {stdlib}')
    chosen = []
    for index, sentences in enumerate(documents):
      for a, b in zip(sentences, sentences[1:]):
        chosen.append({'text': a, 'text_pair': b, 'label': 'next'})
        chosen.append({'text': a, 'text_pair': _other_sentence(rng, documents, index, (a, b)),
                       'label': 'other'})
    rng.shuffle(chosen)
    result[split] = chosen
  return result


if __name__ == '__main__':
  docstring_kind.run_command(rows, 'Seeds the negative pairs and the order.')
