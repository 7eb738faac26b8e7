"""Tokenizer files for transformers, so that `AutoTokenizer.from_pretrained` gives our token ids.

A sentencepiece vocabulary becomes a `tokenizers` pipeline (tokenizer.json) that reproduces
sentencepiece's unigram segmentation: its precompiled normalization, whitespace handling and dummy
prefix as read from the model, the pieces with their scores, and [CLS] A [SEP] B [SEP] with segment
ids 0 then 1. A WordPiece vocabulary needs no conversion: transformers' ElectraTokenizer reads
vocab.txt with the same options our pipeline uses.

Known differences in ids:
- HF tokenizers match the special tokens' spellings ("[MASK]", "[SEP]", ...) in raw text and give
  their ids, whereas our sentencepiece tokenizer segments such text as ordinary characters.
- Segmentations with exactly equal scores (say '>' '>>' versus '>>' '>' in '>>>') are broken
  differently by the two Viterbi searches.
- Normalization, rarely: combining marks stacked in unusual orders, CR LF where the model keeps
  repeated spaces, and user-defined symbols that the normalization would change.
Decoding is HF's own: [UNK] reads '[UNK]' (sentencepiece: ' ⁇ '), and of leading spaces only the
dummy prefix's is dropped (sentencepiece drops them all).
"""

import json

from sentencepiece import sentencepiece_model_pb2
import tokenizers
from tokenizers import decoders, models, normalizers, pre_tokenizers, processors

from electra_jax.data import tokenizer as tokenizer_lib
from electra_jax.data import tokenizer_json, wordpiece
from electra_jax.errors import UserError

_SPACE = '\u2581'  # Sentencepiece's visible space: '▁'.
_PIECE = sentencepiece_model_pb2.ModelProto.SentencePiece  # Its piece types.


def sentencepiece_files(model_proto: bytes, model_max_length: int) -> dict[str, bytes]:
  """File name -> contents for a sentencepiece vocabulary: tokenizer.json, tokenizer_config.json,
  special_tokens_map.json, and tokenizer.model (the sentencepiece model itself, unchanged)."""
  special_ids = tokenizer_lib.from_proto(model_proto).special_ids
  proto = sentencepiece_model_pb2.ModelProto()
  proto.ParseFromString(model_proto)
  trainer, normalizer = proto.trainer_spec, proto.normalizer_spec
  if trainer.model_type != trainer.UNIGRAM:
    raise UserError(f'only unigram sentencepiece models can be exported for transformers; this '
                    f'one is {trainer.ModelType.Name(trainer.model_type)}')
  if trainer.treat_whitespace_as_suffix or not normalizer.escape_whitespaces:
    raise UserError('sentencepiece models with treat_whitespace_as_suffix or without '
                    'escape_whitespaces cannot be exported for transformers')

  pipeline = tokenizers.Tokenizer(models.Unigram(
      [(piece.piece, piece.score) for piece in proto.pieces], unk_id=trainer.unk_id,
      byte_fallback=trainer.byte_fallback))
  # Sentencepiece's own order: normalize, drop leading/trailing and repeated spaces, prefix one
  # space, make spaces visible. Prefixing here rather than in Metaspace also prefixes text that
  # starts with a kept space or a typed '▁', as sentencepiece does.
  steps = []
  if normalizer.precompiled_charsmap:
    # HF's Precompiled looks up each grapheme cluster whole or char by char, where sentencepiece
    # matches the longest prefix, which composes decomposed text (NFD accents, Hangul jamo, kana
    # with dakuten). For the NFKC-based rules, NFC first does that composing.
    if normalizer.name in ('nfkc', 'nmt_nfkc', 'nfkc_cf', 'nmt_nfkc_cf'):
      steps.append(normalizers.NFC())
    steps.append(normalizers.Precompiled(normalizer.precompiled_charsmap))
  if normalizer.remove_extra_whitespaces:
    # Only U+0020 is a space here (the charsmap maps other spaces to it), but at the end
    # sentencepiece also drops '▁' typed in the text.
    steps += [normalizers.Replace(tokenizers.Regex(r'\A +|[ \u2581]+\z'), ''),
              normalizers.Replace(tokenizers.Regex(' {2,}'), ' ')]
  if normalizer.add_dummy_prefix:
    steps.append(normalizers.Prepend(' '))
  steps.append(normalizers.Replace(' ', _SPACE))
  pipeline.normalizer = normalizers.Sequence(steps)
  # Splitting into words before each '▁' changes no segmentation (no piece spans a word boundary)
  # unless the model was trained without split_by_whitespace.
  pipeline.pre_tokenizer = pre_tokenizers.Metaspace(
      _SPACE, prepend_scheme='never', split=trainer.split_by_whitespace)
  # Metaspace's decoder has no byte fallback; Strip drops the dummy prefix.
  pipeline.decoder = decoders.Sequence([
      decoders.ByteFallback(), decoders.Fuse(), decoders.Replace(_SPACE, ' '),
      decoders.Strip(' ', left=int(normalizer.add_dummy_prefix), right=0)])
  pipeline.post_processor = processors.TemplateProcessing(
      single='[CLS]:0 $A:0 [SEP]:0', pair='[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1',
      special_tokens=[('[CLS]', special_ids['cls_id']), ('[SEP]', special_ids['sep_id'])])
  # Control pieces never come out of sentencepiece's segmentation; as special tokens they are at
  # least skipped when decoding with skip_special_tokens. User-defined pieces stay in the model,
  # whose search picks them as sentencepiece does; added tokens would cut the text into separately
  # normalized parts, each with its own dummy prefix.
  specials = [piece.piece for piece in proto.pieces
              if piece.type in (_PIECE.CONTROL, _PIECE.UNKNOWN)
              or piece.piece in tokenizer_lib.SPECIAL_PIECES.values()]
  pipeline.add_special_tokens([tokenizers.AddedToken(piece, special=True, normalized=False)
                               for piece in specials])

  # Without model_input_names, transformers returns no token_type_ids; without
  # clean_up_tokenization_spaces, transformers 4 decodes 'a .' as 'a.'.
  config = {'tokenizer_class': 'PreTrainedTokenizerFast', 'model_max_length': model_max_length,
            'clean_up_tokenization_spaces': False,
            'model_input_names': ['input_ids', 'token_type_ids', 'attention_mask'],
            **_special_tokens()}
  return {'tokenizer.json': pipeline.to_str().encode('utf-8'), 'tokenizer_config.json':
          _json(config), 'special_tokens_map.json': _json(_special_tokens()),
          tokenizer_lib.FILE_NAME: model_proto}


def wordpiece_files(vocab_text: str, lowercase: bool, strip_accents: bool | None,
                    model_max_length: int) -> dict[str, bytes]:
  """vocab.txt, tokenizer_config.json (tokenizer_class ElectraTokenizer, do_lower_case,
  strip_accents, model_max_length, the special tokens), special_tokens_map.json."""
  vocab = wordpiece.WordPiece(vocab_text, lowercase, strip_accents)  # Validates it.
  # transformers reads vocab.txt with each line's trailing whitespace stripped, which makes such a
  # token reachable (our pipeline splits words at whitespace, so it never is) or a duplicate.
  padded = [token for token in vocab.tokens if token != token.rstrip()]
  if padded:
    raise UserError(f'the WordPiece vocabulary has tokens ending in whitespace ({padded[0]!r}); '
                    'transformers would read them without it')
  config = {'tokenizer_class': 'ElectraTokenizer', 'do_lower_case': lowercase,
            'strip_accents': strip_accents, 'tokenize_chinese_chars': True,
            'model_max_length': model_max_length, **_special_tokens()}
  return {wordpiece.FILE_NAME: vocab.file_bytes, 'tokenizer_config.json': _json(config),
          'special_tokens_map.json': _json(_special_tokens())}


def json_files(json_text: str, model_max_length: int) -> dict[str, bytes]:
  """A tokenizer.json, unchanged, with tokenizer_config.json (PreTrainedTokenizerFast, its special
  tokens as the pipeline spells them, model_max_length) and special_tokens_map.json."""
  tokenizer = tokenizer_json.TokenizerJson(json_text)
  special = {key.replace('_id', '_token'): tokenizer.token(i)
             for key, i in tokenizer.special_ids.items()}
  config = {'tokenizer_class': 'PreTrainedTokenizerFast', 'model_max_length': model_max_length,
            'clean_up_tokenization_spaces': False, **special}
  return {tokenizer_json.FILE_NAME: tokenizer.file_bytes, 'tokenizer_config.json': _json(config),
          'special_tokens_map.json': _json(special)}


def _special_tokens() -> dict[str, str]:
  """transformers' names for ELECTRA's special tokens: {'pad_token': '[PAD]', ...}."""
  return {key.replace('_id', '_token'): piece
          for key, piece in tokenizer_lib.SPECIAL_PIECES.items()}


def _json(value) -> bytes:
  return json.dumps(value, indent=2, ensure_ascii=False).encode('utf-8')
