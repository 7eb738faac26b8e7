"""Tokenizers with ELECTRA's special pieces: a SentencePiece model trained here (or brought), a
BERT/ELECTRA WordPiece vocab.txt (data/wordpiece.py) or a Hugging Face tokenizer.json such as
ModernBERT's (data/tokenizer_json.py). Each gives ids, character offsets, special ids and a
fingerprint; `load` picks by file name.

  python -m electra_jax.data.tokenizer --input='corpus/*.txt' --vocab_size=30522 --output=my_vocab

writes my_vocab.model and my_vocab.vocab. [PAD] is id 0 (batches are padded with zeros); [UNK], [CLS],
[SEP] and [MASK] follow. The last three are control pieces: text that spells "[MASK]" does not become
the mask token.
"""

import collections
import dataclasses
import hashlib
import io
import os
from typing import Iterable, Iterator

from absl import flags, logging
import numpy as np
import sentencepiece as spm

from electra_jax import files
from electra_jax.data import corpus, tokenizer_json, wordpiece
from electra_jax.errors import UserError

SPECIAL_PIECES = wordpiece.SPECIAL_PIECES
FILE_NAME = 'tokenizer.model'  # A sentencepiece model's name in a workdir and in an HF export.
# SentencePiece samples this many lines (uniformly, over the whole corpus) to learn the vocabulary.
_TRAINING_LINES = 2_000_000


@dataclasses.dataclass(frozen=True)
class SentencePiece:
  processor: spm.SentencePieceProcessor
  model_proto: bytes
  special_ids: dict[str, int]  # Keys of SPECIAL_PIECES.

  file_name = FILE_NAME

  @property
  def file_bytes(self) -> bytes:
    return self.model_proto

  @property
  def vocab_size(self) -> int:
    return self.processor.get_piece_size()

  @property
  def fingerprint(self) -> str:
    return hashlib.sha256(self.model_proto).hexdigest()

  def encode(self, lines: list[str]) -> list[list[int]]:
    return self.processor.encode(lines)

  def encode_with_offsets(self, texts: list[str]) -> list[tuple[list[int], list[tuple[int, int]]]]:
    """Per text, the token ids and each token's [start, end) character span in the text.

    A span covers the token's surface as sentencepiece aligns it: it may be empty (a lone '▁') or
    begin with the space that a leading '▁' stands for.
    """
    encoded = []
    for text, proto in zip(texts, self.processor.encode(texts, return_type='proto')):
      ids = [piece.id for piece in proto.pieces]
      spans = [(piece.begin, piece.end) for piece in proto.pieces]
      if spans and not text.isascii():
        spans = _byte_to_char_spans(text, spans)
      encoded.append((ids, spans))
    return encoded

  def word_starts(self) -> np.ndarray:
    """bool [vocab_size]: piece i begins a word, i.e. starts with '▁' (sentencepiece's mark of the
    space before a word) or is a control or unknown piece ([PAD], [UNK], [CLS]...: a word of its own).
    Punctuation after a word has no '▁', so "text." is one word here."""
    processor = self.processor
    return np.array([processor.id_to_piece(i).startswith('▁') or processor.is_control(i)
                     or processor.is_unknown(i) for i in range(self.vocab_size)], bool)

  def __reduce__(self):  # The processor cannot be pickled; worker processes reload the model.
    return from_proto, (self.model_proto,)


Tokenizer = SentencePiece | wordpiece.WordPiece | tokenizer_json.TokenizerJson


def _byte_to_char_spans(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
  """Sentencepiece's offsets count UTF-8 bytes; Python strings index characters."""
  codepoints = np.frombuffer(text.encode('utf-32-le'), np.uint32)
  utf8_lengths = 1 + (codepoints >= 0x80) + (codepoints >= 0x800) + (codepoints >= 0x10000)
  char_starts = np.concatenate([[0], np.cumsum(utf8_lengths)])  # In bytes, and the end.
  chars = np.searchsorted(char_starts, np.asarray(spans)).tolist()
  return [(start, end) for start, end in chars]


def from_proto(model_proto: bytes, name: str = 'the tokenizer') -> SentencePiece:
  processor = spm.SentencePieceProcessor()
  try:
    processor.LoadFromSerializedProto(model_proto)
  except (RuntimeError, OSError) as e:
    raise UserError(f'{name} is not a sentencepiece model ({e})') from e
  ids = {key: processor.piece_to_id(piece) for key, piece in SPECIAL_PIECES.items()}
  missing = [SPECIAL_PIECES[key] for key, i in ids.items() if processor.id_to_piece(i) !=
             SPECIAL_PIECES[key]]
  if missing:
    raise UserError(f'{name} lacks the special pieces {" ".join(missing)}; train one with '
                    'python -m electra_jax.data.tokenizer')
  if ids['pad_id'] != 0:
    raise UserError(f'{name} has [PAD] at id {ids["pad_id"]}; it must be id 0')
  return SentencePiece(processor, model_proto, ids)


def load(path: str, lowercase: bool = True, strip_accents: bool | None = None) -> Tokenizer:
  """A WordPiece vocabulary (a .txt file; the options apply to it only, their defaults are BERT
  uncased's), a Hugging Face tokenizer.json (a .json file) or a sentencepiece model (any other
  file)."""
  if path.endswith('.txt'):
    return wordpiece.load(path, lowercase, strip_accents)
  if path.endswith('.json'):
    return tokenizer_json.load(path)
  if not os.path.isfile(path):
    raise UserError(f'tokenizer {path} does not exist')
  with open(path, 'rb') as f:
    return from_proto(f.read(), name=f'tokenizer {path}')


# Each kind's file in a workdir or an export, in the order they are looked for.
FILE_NAMES = (FILE_NAME, wordpiece.FILE_NAME, tokenizer_json.FILE_NAME)


def load_from_dir(directory: str, lowercase: bool = True,
                  strip_accents: bool | None = None) -> Tokenizer | None:
  """The tokenizer a workdir or an export holds, or None if it holds none. Our exports of a
  sentencepiece model hold a tokenizer.json beside it: the model comes first."""
  for name in FILE_NAMES:
    if os.path.isfile(os.path.join(directory, name)):
      return load(os.path.join(directory, name), lowercase, strip_accents)
  return None


def train(lines: Iterable[str], vocab_size: int, output_prefix: str) -> SentencePiece:
  """Learns a unigram vocabulary of at most `vocab_size` pieces; writes PREFIX.model and PREFIX.vocab.

  A corpus too small for `vocab_size` gets fewer pieces instead of an error (SentencePiece's soft
  limit), which a larger model vocabulary then simply leaves unused.
  """
  if vocab_size < len(SPECIAL_PIECES) + 2:
    raise UserError(f'vocab_size={vocab_size} is too small; it must exceed the special pieces')
  model = io.BytesIO()
  try:
    spm.SentencePieceTrainer.train(
        sentence_iterator=_with_frequent_words(lines, vocab_size), model_writer=model, vocab_size=vocab_size,
        model_type='unigram', character_coverage=0.9995, hard_vocab_limit=False,
        input_sentence_size=_TRAINING_LINES, shuffle_input_sentence=True,
        max_sentence_length=4 * corpus.MAX_LINE, pad_id=0, pad_piece='[PAD]', unk_id=1,
        unk_piece='[UNK]', bos_id=-1, eos_id=-1, control_symbols=['[CLS]', '[SEP]', '[MASK]'],
        num_threads=os.cpu_count() or 1, minloglevel=2)
  except RuntimeError as e:
    raise UserError(f'sentencepiece could not train a tokenizer: {e}') from e
  tokenizer = from_proto(model.getvalue())
  os.makedirs(os.path.dirname(os.path.abspath(output_prefix)), exist_ok=True)
  vocab = ''.join(f'{tokenizer.processor.id_to_piece(i)}\t{tokenizer.processor.get_score(i)}\n'
                  for i in range(tokenizer.vocab_size))
  files.write_atomically(output_prefix + '.vocab', vocab.encode('utf-8'))
  files.write_atomically(output_prefix + '.model', tokenizer.model_proto)  # Last: its presence = done.
  return tokenizer


def _with_frequent_words(lines: Iterable[str], count: int) -> Iterator[str]:
  """The non-empty lines, then each of their `count` most frequent words once, as a line of its own.

  SentencePiece seeds its unigram vocabulary with the substrings that the text continues in more than
  one way. A word that is always followed by a space and begins no other word (" the" in a small or
  artificial corpus) is not one of them, so it could only be spelled from pieces ("▁th" "e"). Alone on
  a line it is also followed by the line's end, and becomes a candidate like any other.
  """
  counts = collections.Counter()
  for i, line in enumerate(lines):
    if line:
      if i < _TRAINING_LINES:  # Enough to know the frequent words; a huge corpus is not counted.
        counts.update(line.split())
      yield line
  for word, _ in counts.most_common(count):
    yield word


def corpus_lines(c: corpus.Corpus):
  for task in c.tasks:
    yield from corpus.lines(task)


def main() -> None:
  args = flags.FLAGS
  text = corpus.from_text_files(args.input)
  tokenizer = train(corpus_lines(text), args.vocab_size, args.output)
  if corpus.replaced_bytes():
    logging.warning('%d bytes that are not UTF-8 were read as U+FFFD', corpus.replaced_bytes())
  logging.info('wrote %s.model with %d pieces', args.output, tokenizer.vocab_size)


if __name__ == '__main__':
  flags.DEFINE_string('input', None, 'Glob of UTF-8 text files, one sentence or line per line.')
  flags.DEFINE_integer('vocab_size', 30522, 'Pieces in the vocabulary, specials included.')
  flags.DEFINE_string('output', None, 'Writes OUTPUT.model and OUTPUT.vocab.')
  flags.mark_flags_as_required(['input', 'output'])
  from electra_jax import cli  # pylint: disable=g-import-not-at-top  (the command line only)
  cli.run_command(main)
