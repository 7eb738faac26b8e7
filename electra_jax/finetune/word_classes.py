"""An artificial language whose word classes only unlabelled text reveals: a controlled test of
whether pre-training transfers to fine-tuning.

  python -m electra_jax.finetune.word_classes --output=runs/word_classes

writes corpus.txt (unlabelled documents; pre-train on it with --config.data.source=text:...) and
train.csv / dev.csv (columns text, label). Each of TOPICS topics has its own nouns, verbs and
adjectives, and a document keeps to one topic: only the corpus says which words go together. A
sentence's label is its topic (`topic0` ... `topic7`). train.csv spells its sentences with half of
each topic's words, dev.csv only with the other half: a model fine-tuned from random weights has
never seen a dev word and stays near chance (1/8), while an encoder that learned the topics from the
corpus can place an unseen word with its topic.

Random weights are near chance, not at it: their responses to the unseen words are random but
consistent, the spread of a die thrown once per unseen word. Compare them on the same draw
(tokenizer and seed), over several seeds.
"""

import os
import random

from absl import flags, logging

from electra_jax import cli, files
from electra_jax.finetune import docstring_kind

TOPICS = 8
WORDS = 12  # Per topic and part of speech; the first half spell train.csv, the rest dev.csv.
_TEMPLATES = ('the ADJ NOUN VERB the NOUN .', 'a NOUN VERB the ADJ NOUN .', 'the NOUN was ADJ .',
              'the NOUN VERB a NOUN and the NOUN VERB .', 'a ADJ NOUN was VERB by the ADJ NOUN .')
_FUNCTION_WORDS = {'the', 'a', 'was', 'and', 'by'}
_PARTS = ('NOUN', 'VERB', 'ADJ')


class Language:
  """The words of every topic, drawn from `seed`: lexicon[topic][part] is a list of WORDS words."""

  def __init__(self, seed: int = 0):
    self._rng = random.Random(seed)
    syllables = [c + v for c in 'bdfgklmnprstvz' for v in 'aeiou']
    spellings = sorted({self._rng.choice(syllables) + self._rng.choice(syllables)
                        + self._rng.choice(('', *syllables)) for _ in range(20 * TOPICS * WORDS)}
                       - _FUNCTION_WORDS)
    words = iter(self._rng.sample(spellings, 3 * TOPICS * WORDS))
    self.lexicon = [{part: [next(words) for _ in range(WORDS)] for part in _PARTS}
                    for _ in range(TOPICS)]

  def sentence(self, topic: int, words: slice = slice(None)) -> str:
    """A sentence of `topic` whose content words are its words[`words`] of each part of speech."""
    template = self._rng.choice(_TEMPLATES).split()
    return ' '.join(self._rng.choice(self.lexicon[topic][part][words]) if part in _PARTS else part
                    for part in template)

  def corpus(self, documents: int) -> str:
    """`documents` documents of 3 to 8 sentences each in every word, one topic per document."""
    text = []
    for _ in range(documents):
      topic = self._rng.randrange(TOPICS)
      text += [self.sentence(topic) for _ in range(self._rng.randint(3, 8))] + ['']
    return '\n'.join(text)

  def rows(self, count: int, words: slice) -> list[dict]:
    """`count` sentences spelled with words[`words`] of their topics, as many of each topic."""
    topics = [i % TOPICS for i in range(count)]
    self._rng.shuffle(topics)
    return [{'text': self.sentence(topic, words), 'label': f'topic{topic}'} for topic in topics]


def write(output: str, seed: int = 0, documents: int = 20_000, rows: int = 1_000) -> dict[str, str]:
  """Writes output/corpus.txt, train.csv (seen words) and dev.csv (unseen words); returns their
  paths. A rerun with the same arguments writes the same bytes."""
  language = Language(seed)
  seen, unseen = slice(0, WORDS // 2), slice(WORDS // 2, None)
  split_rows = {'train': language.rows(rows, seen), 'dev': language.rows(rows, unseen)}
  docstring_kind.write_splits(output, split_rows)
  corpus = language.corpus(documents)
  paths = {split: f'{output}/{split}.csv' for split in split_rows}
  paths['corpus'] = f'{output}/corpus.txt'
  # Rewritten only when it changes: a text corpus's fingerprint includes its modification time, and
  # a rerun must find the dataset and pre-training runs on it reusable.
  if not os.path.exists(paths['corpus']) or open(paths['corpus'], encoding='utf-8').read() != corpus:
    files.write_atomically(paths['corpus'], corpus)
  return paths


if __name__ == '__main__':
  flags.DEFINE_string('output', None, 'Directory for corpus.txt, train.csv and dev.csv.')
  flags.DEFINE_integer('seed', 0, 'Seeds the words and the sentences.')
  flags.DEFINE_integer('documents', 20_000, 'Documents in corpus.txt.')
  flags.mark_flags_as_required(['output'])

  def main():
    args = flags.FLAGS
    paths = write(args.output, args.seed, args.documents)
    logging.info('wrote %s', ', '.join(paths.values()))

  cli.run_command(main)
