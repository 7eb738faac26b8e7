import builtins
import io
import json
import os
import unicodedata

import pytest
import sentencepiece as spm
import transformers

from electra_jax.data import tokenizer as tokenizer_lib
from electra_jax.data import wordpiece
from electra_jax.errors import UserError
from electra_jax.hf import tokenizer_files

_LINES = [
    'The model reads text and learns which tokens a small generator replaced.',
    'Le café est très bon à Köln, dit Zoë; crème brûlée, naïve façade, über alles.',
    'Größe, Ärger, Öl, Übung, señor, mañana, São Paulo, Ångström, Dvořák, Łódź.',
    '東京は日本の首都です。日本語のテキストを読みます。中文文本也可以。',
    'Tiếng Việt của người Việt Nam; 한국어 텍스트, 각 값 닭; がぎぐ ばびぶ パピプ; Ǖ ǖ.',
    'Numbers 0 1 2 3 4 5 6 7 8 9 10 100 1,000 3.14 and symbols # $ % & * + - / = @ _ ~',
    'Emoji 🙂 and 🚀 appear in chat logs; quotes "like this" and \'this\' too.',
    'fine fish find first fifth file A B C ABC office affine',
]
# Each of these characters is one [UNK]: none occurs in the corpus, even after NFKC.
_UNKNOWN = '☃אབ'
_TEXTS = [
    '', ' ', '   ', '\t\n', 'The model reads text.', '  leading and trailing spaces  ',
    'several     spaces\tand\ttabs\nand\nnew\r\nlines', 'café über naïve Köln crème brûlée',
    'cafe\u0301 with a combining accent', 'Ｆｕｌｌ－ｗｉｄｔｈ ＡＢＣ １２３', 'ﬁne ﬁsh ofﬁce', '① ② ⑩',
    '\u3000ideographic\u3000space and\u00a0no-break\u2009thin', '東京は日本の首都です。', '🙂🚀 emoji 🙂',
    f'unknown {_UNKNOWN} here{_UNKNOWN[0]}{_UNKNOWN[1]}', _UNKNOWN, '\u2581literal meta space',
    'trailing meta space\u2581', '\u2581', ' \u2581\u2581 ', 'zero\u200bwidth\x00control\x07chars',
    'x' * 300, 'a.b,c;d:e!?(f)[g]{h}<i>', 'Returns the number of items in a container.',
    # Decomposed, as macOS writes file names: sentencepiece composes these.
    unicodedata.normalize('NFD', 'Tiếng Việt của người 한국어 각 닭 がぎ パピ Ǖ ǖ café'),
]
_SPECIALS = {'pad_id': 0, 'pad_piece': '[PAD]', 'unk_id': 1, 'unk_piece': '[UNK]', 'bos_id': -1,
             'eos_id': -1, 'control_symbols': ['[CLS]', '[SEP]', '[MASK]']}


def _corpus() -> list[str]:
  """A few hundred lines: the docstrings of Python's builtins, and the lines above."""
  docs = [getattr(value, '__doc__', None) or '' for value in vars(builtins).values()]
  return [line.strip() for doc in docs for line in doc.splitlines() if line.strip()] + _LINES * 10


def _train(**options) -> tokenizer_lib.SentencePiece:
  model = io.BytesIO()
  spm.SentencePieceTrainer.train(sentence_iterator=iter(_corpus()), model_writer=model,
                                 vocab_size=800, hard_vocab_limit=False, minloglevel=2,
                                 **{**_SPECIALS, **options})
  return tokenizer_lib.from_proto(model.getvalue())


def _load(files: dict[str, bytes], folder) -> transformers.PreTrainedTokenizerBase:
  os.makedirs(folder)
  for name, contents in files.items():
    (folder / name).write_bytes(contents)
  # The exported folder has the model's config.json, which steers AutoTokenizer's class choice.
  (folder / 'config.json').write_text(json.dumps({'model_type': 'electra'}))
  return transformers.AutoTokenizer.from_pretrained(str(folder))


def _assert_same_ids(hf, processor, texts):
  for text in texts:
    assert hf(text, add_special_tokens=False)['input_ids'] == processor.encode(text), repr(text)
  assert hf(texts, add_special_tokens=False)['input_ids'] == processor.encode(texts)


def _assert_special_tokens(hf, tokenizer):
  """[CLS] A [SEP] B [SEP] with segments 0 then 1, and the special tokens at the model's ids."""
  ids = tokenizer.special_ids
  assert [hf.pad_token_id, hf.unk_token_id, hf.cls_token_id, hf.sep_token_id, hf.mask_token_id] \
      == [ids['pad_id'], ids['unk_id'], ids['cls_id'], ids['sep_id'], ids['mask_id']]
  assert (hf.pad_token, hf.unk_token, hf.cls_token, hf.sep_token, hf.mask_token) == \
      ('[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]')
  a, b = tokenizer.encode(['Le café est très bon.', 'The model reads text.'])
  pair = hf('Le café est très bon.', 'The model reads text.')
  assert pair['input_ids'] == [ids['cls_id']] + a + [ids['sep_id']] + b + [ids['sep_id']]
  assert pair['token_type_ids'] == [0] * (len(a) + 2) + [1] * (len(b) + 1)
  assert hf('Le café est très bon.')['input_ids'] == [ids['cls_id']] + a + [ids['sep_id']]
  assert hf.decode(pair['input_ids'], skip_special_tokens=True) == \
      'Le café est très bon. The model reads text.'


def test_sentencepiece_files_give_our_ids(tmp_path):
  tokenizer = tokenizer_lib.train(_corpus(), 800, str(tmp_path / 'v'))
  files = tokenizer_files.sentencepiece_files(tokenizer.model_proto, model_max_length=128)
  assert sorted(files) == ['special_tokens_map.json', 'tokenizer.json', 'tokenizer.model',
                           'tokenizer_config.json']
  assert files['tokenizer.model'] == tokenizer.model_proto
  hf = _load(files, tmp_path / 'hf')
  assert isinstance(hf, transformers.PreTrainedTokenizerFast) and hf.model_max_length == 128
  assert tokenizer.special_ids == {'pad_id': 0, 'unk_id': 1, 'cls_id': 2, 'sep_id': 3, 'mask_id': 4}
  _assert_special_tokens(hf, tokenizer)
  processor = tokenizer.processor
  assert all(1 in processor.encode(c) for c in _UNKNOWN)  # The texts do reach [UNK].
  assert processor.encode('Ａﬁ①') == processor.encode('Afi1')  # And NFKC.
  _assert_same_ids(hf, processor, _TEXTS)
  for ids in processor.encode(_TEXTS):
    if 1 not in ids:  # Sentencepiece decodes [UNK] as ' ⁇ '.
      assert hf.decode(ids) == processor.decode(ids)


@pytest.mark.parametrize('options,normalized', [
    ({'normalization_rule_name': 'identity', 'byte_fallback': True}, '▁ＡＢ▁c'),
    ({'add_dummy_prefix': False, 'remove_extra_whitespaces': False}, '▁AB▁▁c▁'),
    ({'remove_extra_whitespaces': False, 'split_by_whitespace': False}, '▁▁AB▁▁c▁'),
    ({'normalization_rule_name': 'identity', 'add_dummy_prefix': False,
      'remove_extra_whitespaces': False}, '▁ＡＢ▁▁c▁'),
])
def test_other_sentencepiece_settings_are_read_from_the_model(tmp_path, options, normalized):
  tokenizer = _train(**options)
  assert tokenizer.processor.normalize(' ＡＢ  c ') == normalized  # The settings are in effect.
  hf = _load(tokenizer_files.sentencepiece_files(tokenizer.model_proto, 64), tmp_path / 'hf')
  assert hf.backend_tokenizer.normalizer.normalize_str(' ＡＢ  c ') == normalized
  # HF's Precompiled maps the grapheme CR LF by the rule for CR alone: one space where
  # sentencepiece has two. Only visible where spaces are not collapsed.
  _assert_same_ids(hf, tokenizer.processor, [text.replace('\r\n', '\n') for text in _TEXTS])


def test_special_pieces_may_have_other_ids(tmp_path):
  tokenizer = _train(unk_id=5, control_symbols=['[MASK]', '[SEP]', '[CLS]'],
                     user_defined_symbols=['<x>'])
  assert tokenizer.special_ids == {'pad_id': 0, 'unk_id': 5, 'cls_id': 3, 'sep_id': 2, 'mask_id': 1}
  assert tokenizer.processor.encode('a<x>b', out_type=str) == ['▁a', '<x>', 'b']
  hf = _load(tokenizer_files.sentencepiece_files(tokenizer.model_proto, 64), tmp_path / 'hf')
  _assert_special_tokens(hf, tokenizer)
  _assert_same_ids(hf, tokenizer.processor, _TEXTS + ['a<x>b <x> x<x><x>y  <x>'])


def test_byte_fallback_pieces_round_trip(tmp_path):
  tokenizer = _train(byte_fallback=True)
  assert tokenizer.processor.encode('☃', out_type=str) == ['▁', '<0xE2>', '<0x98>', '<0x83>']
  ids = tokenizer.processor.encode('Köln ☃ 東京')
  hf = _load(tokenizer_files.sentencepiece_files(tokenizer.model_proto, 64), tmp_path / 'hf')
  assert hf('Köln ☃ 東京', add_special_tokens=False)['input_ids'] == ids
  assert hf.decode(ids) == 'Köln ☃ 東京'


def test_a_bpe_sentencepiece_model_is_rejected():
  with pytest.raises(UserError, match='only unigram sentencepiece models .* this one is BPE'):
    tokenizer_files.sentencepiece_files(_train(model_type='bpe').model_proto, 128)


_VOCAB = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', 'the', 'The', 'model', 'reads', 'cafe',
          'Cafe', 'café', 'Café', 'uber', 'über', 'Über', 'naive', 'naïve', 'text', 're', '##ads',
          '##s', '.', ',', '!', '東', '京', 'k', '##o', '##ö', '##ln', 'K', 'ö']
_WORDPIECE_TEXTS = ['The model reads text.', 'Café über naïve Köln!', 'CAFÉ ÜBER NAÏVE',
                    'cafe uber naive re reads', '東京 text', 'unknownword café,the', '',
                    'the [MASK] model\treads\x00', 'reads' * 30]  # Over 100 characters: [UNK].


@pytest.mark.parametrize('lowercase,strip_accents', [(True, None), (True, False), (False, None),
                                                     (False, True), (False, False)])
def test_wordpiece_files_give_electras_ids(tmp_path, lowercase, strip_accents):
  vocab_text = '\n'.join(_VOCAB) + '\n'
  files = tokenizer_files.wordpiece_files(vocab_text, lowercase, strip_accents, 256)
  assert sorted(files) == ['special_tokens_map.json', 'tokenizer_config.json', 'vocab.txt']
  hf = _load(files, tmp_path / 'hf')
  assert type(hf) is transformers.ElectraTokenizerFast and hf.model_max_length == 256
  assert [hf.pad_token_id, hf.unk_token_id, hf.cls_token_id, hf.sep_token_id, hf.mask_token_id] \
      == [0, 1, 2, 3, 4]
  # transformers 5 reads the file given as `vocab`; it ignores `vocab_file`.
  reference = transformers.ElectraTokenizerFast(
      vocab=str(tmp_path / 'hf' / 'vocab.txt'), do_lower_case=lowercase,
      strip_accents=strip_accents)
  assert reference.vocab_size == len(_VOCAB)
  ids = hf(_WORDPIECE_TEXTS, add_special_tokens=False)['input_ids']
  assert ids == reference(_WORDPIECE_TEXTS, add_special_tokens=False)['input_ids']
  assert ids == wordpiece.WordPiece(vocab_text, lowercase, strip_accents).encode(_WORDPIECE_TEXTS)
  strip = lowercase if strip_accents is None else strip_accents
  cafe = _VOCAB.index({(True, True): 'cafe', (True, False): 'Cafe', (False, True): 'café',
                       (False, False): 'Café'}[strip, lowercase])
  assert ids[1][0] == cafe
  pair = hf('Café', 'the')
  assert (pair['input_ids'], pair['token_type_ids']) == ([2, cafe, 3, 5, 3], [0, 0, 0, 1, 1])


def test_wordpiece_tokens_ending_in_whitespace_are_rejected():
  with pytest.raises(UserError, match=r"ending in whitespace \('tab\\t'\)"):
    tokenizer_files.wordpiece_files('\n'.join(_VOCAB + ['tab\t']), True, None, 256)
