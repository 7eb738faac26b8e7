"""A Hugging Face `tokenizer.json` (the `tokenizers` library's pipeline), e.g. ModernBERT's BPE, as
config.data.tokenizer: its ids, offsets and special tokens are the released model's, so a run can
continue or fine-tune that model.

Its special tokens are found by their spellings, BERT's ([CLS] [SEP] [MASK] [PAD] [UNK], ModernBERT's
too) or RoBERTa's (<s> </s> <mask> <pad> <unk>); [PAD] may have any id (batches are padded with id 0
and masked by input_mask whatever the tokenizer's [PAD] is). Text is encoded without the pipeline's
own special tokens, truncation or padding: the example builder adds [CLS] and [SEP].
"""

import dataclasses
import functools
import hashlib
import os

import numpy as np
import tokenizers

from electra_jax.errors import UserError

FILE_NAME = 'tokenizer.json'
SPELLINGS = {'pad_id': ('[PAD]', '<pad>'), 'unk_id': ('[UNK]', '<unk>'), 'cls_id': ('[CLS]', '<s>'),
             'sep_id': ('[SEP]', '</s>'), 'mask_id': ('[MASK]', '<mask>')}
# The marks a byte-level BPE ('Ġ') or a metaspace pipeline ('▁') puts on a piece that begins a word.
_WORD_MARKS = ('\u0120', '\u2581')


@dataclasses.dataclass(frozen=True)
class TokenizerJson:
  json_text: str

  file_name = FILE_NAME

  @functools.cached_property
  def _pipeline(self) -> tokenizers.Tokenizer:
    try:
      pipeline = tokenizers.Tokenizer.from_str(self.json_text)
    except Exception as e:  # The Rust library raises its own exception type.
      raise UserError(f'the tokenizer.json is not a tokenizers pipeline ({e})') from e
    pipeline.no_truncation()
    pipeline.no_padding()
    return pipeline

  @functools.cached_property
  def special_ids(self) -> dict[str, int]:
    vocab = self._pipeline.get_vocab(with_added_tokens=True)
    ids, missing = {}, []
    for key, spellings in SPELLINGS.items():
      found = [vocab[s] for s in spellings if s in vocab]
      if found:
        ids[key] = found[0]
      else:
        missing.append(' or '.join(spellings))
    if missing:
      raise UserError(f'the tokenizer.json lacks the special tokens {", ".join(missing)}')
    return ids

  def token(self, i: int) -> str:
    return self._pipeline.id_to_token(i)

  @property
  def vocab_size(self) -> int:
    return self._pipeline.get_vocab_size(with_added_tokens=True)

  @property
  def fingerprint(self) -> str:
    return hashlib.sha256(self.json_text.encode('utf-8')).hexdigest()

  @property
  def file_bytes(self) -> bytes:
    return self.json_text.encode('utf-8')

  def encode(self, lines: list[str]) -> list[list[int]]:
    return [e.ids for e in self._pipeline.encode_batch(lines, add_special_tokens=False)]

  def encode_with_offsets(self, texts: list[str]) -> list[tuple[list[int], list[tuple[int, int]]]]:
    """Per text, the token ids and each token's [start, end) character span in the text."""
    return [(e.ids, e.offsets) for e in self._pipeline.encode_batch(texts, add_special_tokens=False)]

  def word_starts(self) -> np.ndarray:
    """bool [vocab_size]: piece i begins a word: it carries a word mark ('Ġ', '▁'), or, in a
    WordPiece pipeline, does not continue one ('##'); added and special tokens are words of their
    own. Ids the pipeline does not name (gaps) are marked as words."""
    pipeline = self._pipeline
    wordpiece = isinstance(pipeline.model, tokenizers.models.WordPiece)
    added = set(pipeline.get_added_tokens_decoder())
    starts = np.ones(self.vocab_size, bool)
    for piece, i in pipeline.get_vocab(with_added_tokens=False).items():
      if i not in added:
        starts[i] = not piece.startswith('##') if wordpiece else piece.startswith(_WORD_MARKS)
    return starts

  def __reduce__(self):  # The Rust pipeline is rebuilt from the JSON in worker processes.
    return TokenizerJson, (self.json_text,)


def load(path: str) -> TokenizerJson:
  if not os.path.isfile(path):
    raise UserError(f'tokenizer {path} does not exist')
  try:
    with open(path, encoding='utf-8') as f:
      tokenizer = TokenizerJson(f.read())
    tokenizer.special_ids  # pylint: disable=pointless-statement  # A bad file fails here, named.
  except UnicodeDecodeError as e:
    raise UserError(f'tokenizer {path} is not UTF-8 text ({e})') from e
  except UserError as e:
    raise UserError(f'tokenizer {path}: {e}') from e
  return tokenizer
