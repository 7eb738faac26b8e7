"""BERT/ELECTRA WordPiece vocabularies (`vocab.txt`), tokenized as transformers' ElectraTokenizerFast.

The released ELECTRA models (google/electra-*) use BERT's uncased WordPiece vocabulary; fine-tuning or
continuing them needs their own ids. The pipeline is HF's own `tokenizers` library configured as
ElectraTokenizerFast configures it: BERT normalisation (control characters dropped, CJK characters
split, optional lower-casing and accent stripping), BERT pre-tokenisation (whitespace and punctuation),
WordPiece with `##` continuations and [UNK] for words over 100 characters. As there, the special
tokens are matched in raw text: "[MASK]" written in the text is the mask token.
"""

import dataclasses
import functools
import hashlib
import os

import numpy as np
import tokenizers
from tokenizers import models, normalizers, pre_tokenizers

from electra_jax.errors import UserError

FILE_NAME = 'vocab.txt'
# ELECTRA's special tokens as BERT's vocabulary spells them; our sentencepiece models use the same.
SPECIAL_PIECES = {'pad_id': '[PAD]', 'unk_id': '[UNK]', 'cls_id': '[CLS]', 'sep_id': '[SEP]',
                  'mask_id': '[MASK]'}


@dataclasses.dataclass(frozen=True)
class WordPiece:
  vocab_text: str  # The vocab.txt contents: one token per line, the line number is its id.
  lowercase: bool
  strip_accents: bool | None  # None: strip when lower-casing (BERT's rule).

  file_name = FILE_NAME

  def __post_init__(self):
    tokens, seen = self.tokens, set()
    for token in tokens:
      if token in seen:
        raise UserError(f'the WordPiece vocabulary lists {token!r} twice; each line must be a '
                        'distinct token')
      seen.add(token)
    missing = [token for token in SPECIAL_PIECES.values() if token not in tokens]
    if missing:
      raise UserError(f'the WordPiece vocabulary lacks {" ".join(missing)}; a BERT/ELECTRA '
                      'vocab.txt has all five')
    if tokens[0] != '[PAD]':
      raise UserError(f'the WordPiece vocabulary has [PAD] at id {tokens.index("[PAD]")}; it must '
                      'be id 0 (the first line)')

  @functools.cached_property
  def tokens(self) -> list[str]:
    return self.vocab_text.split('\n')[:-1] if self.vocab_text.endswith('\n') else \
        self.vocab_text.split('\n')

  @functools.cached_property
  def _pipeline(self) -> tokenizers.Tokenizer:
    pipeline = tokenizers.Tokenizer(models.WordPiece(
        {token: i for i, token in enumerate(self.tokens)}, unk_token='[UNK]',
        max_input_chars_per_word=100))
    pipeline.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=self.strip_accents,
        lowercase=self.lowercase)
    pipeline.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    pipeline.add_special_tokens(list(SPECIAL_PIECES.values()))
    return pipeline

  @functools.cached_property
  def special_ids(self) -> dict[str, int]:
    return {key: self.tokens.index(token) for key, token in SPECIAL_PIECES.items()}

  @property
  def vocab_size(self) -> int:
    return len(self.tokens)

  @property
  def fingerprint(self) -> str:
    options = f'lowercase={self.lowercase} strip_accents={self.strip_accents}\n'
    return hashlib.sha256((options + self.vocab_text).encode('utf-8')).hexdigest()

  @property
  def file_bytes(self) -> bytes:
    return self.vocab_text.encode('utf-8')

  def encode(self, lines: list[str]) -> list[list[int]]:
    return [e.ids for e in self._pipeline.encode_batch(lines, add_special_tokens=False)]

  def encode_with_offsets(self, texts: list[str]) -> list[tuple[list[int], list[tuple[int, int]]]]:
    """Per text, the token ids and each token's [start, end) character span in the text."""
    return [(e.ids, e.offsets) for e in self._pipeline.encode_batch(texts, add_special_tokens=False)]

  def word_starts(self) -> np.ndarray:
    """bool [vocab_size]: token i begins a word, i.e. does not start with '##' (WordPiece's mark of a
    continuation); special tokens are words of their own, and so is punctuation (split off first)."""
    return np.array([not token.startswith('##') for token in self.tokens], bool)

  def __reduce__(self):  # The Rust pipeline is rebuilt from the vocabulary in worker processes.
    return WordPiece, (self.vocab_text, self.lowercase, self.strip_accents)


def load(path: str, lowercase: bool, strip_accents: bool | None) -> WordPiece:
  if not os.path.isfile(path):
    raise UserError(f'WordPiece vocabulary {path} does not exist')
  try:
    with open(path, encoding='utf-8', newline='\n') as f:
      text = f.read()
  except UnicodeDecodeError as e:
    raise UserError(f'WordPiece vocabulary {path} is not UTF-8 text ({e})') from e
  return WordPiece(text.replace('\r\n', '\n'), lowercase, strip_accents)
