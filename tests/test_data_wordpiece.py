"""WordPiece vocab.txt tokenizers give transformers' ElectraTokenizerFast ids, and feed data building."""

import pickle

import numpy as np
import pytest
import tokenizers
from tokenizers import models, normalizers, pre_tokenizers, trainers
import transformers

from electra_jax import data
from electra_jax.data import tokenizer as tokenizer_lib, wordpiece
from electra_jax.errors import UserError

_TRAINING_TEXT = [
    'The model reads text and learns which tokens were replaced by a small generator.',
    'Café résumé naïve façade Ångström Øresund — coöperate, déjà vu.',
    'Tokenizers split unbelievably long words into pieces: unbelievable, believer, believing!',
    '東京 and 北京 are cities; 한국어 text and emoji 🙂 appear too.',
    'Numbers like 3.14159 and 2,718 and e-mail addresses (a@b.c) are punctuation-heavy.',
] * 20

TEXTS = [
    'The Model READS text, and learns which tokens were REPLACED.',
    'Café Résumé NAÏVE façade Ångström Øresund déjà-vu',
    'unbelievably believing believers; unknownwordxyz zzz',
    '東京北京 한국어 🙂 emoji',
    '  leading and   inner\tspaces\nand newlines  ',
    'control\x00char\x07s and zero\u200bwidth',
    'a literal [MASK] token and [SEP] and [cls]',
    'x' * 120 + ' long word',
    '',
]


@pytest.fixture(scope='module')
def vocab_file(tmp_path_factory):
  """A real WordPiece vocabulary trained on cased text (accents kept), [PAD] first, as BERT's."""
  trainer_pipeline = tokenizers.Tokenizer(models.WordPiece(unk_token='[UNK]'))
  trainer_pipeline.normalizer = normalizers.BertNormalizer(lowercase=False, strip_accents=False)
  trainer_pipeline.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
  trainer_pipeline.train_from_iterator(_TRAINING_TEXT, trainers.WordPieceTrainer(
      vocab_size=400, special_tokens=['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']))
  vocab = sorted(trainer_pipeline.get_vocab().items(), key=lambda item: item[1])
  path = tmp_path_factory.mktemp('vocab') / 'vocab.txt'
  path.write_text(''.join(f'{token}\n' for token, _ in vocab), encoding='utf-8')
  return str(path)


@pytest.mark.parametrize('lowercase,strip_accents', [
    (True, None), (False, None), (True, False), (False, True)])
def test_ids_and_offsets_match_electra_tokenizer_fast(vocab_file, lowercase, strip_accents):
  ours = tokenizer_lib.load(vocab_file, lowercase, strip_accents)
  theirs = transformers.ElectraTokenizerFast(vocab=vocab_file, do_lower_case=lowercase,
                                             strip_accents=strip_accents)
  encoded = ours.encode_with_offsets(TEXTS)
  for text, (ids, offsets) in zip(TEXTS, encoded):
    expected = theirs(text, add_special_tokens=False, return_offsets_mapping=True)
    assert ids == expected['input_ids'], text
    assert [tuple(o) for o in offsets] == [tuple(o) for o in expected['offset_mapping']], text
  assert ours.encode(TEXTS) == [ids for ids, _ in encoded]
  special = {key: theirs.convert_tokens_to_ids(token)
             for key, token in wordpiece.SPECIAL_PIECES.items()}
  assert ours.special_ids == special == {'pad_id': 0, 'unk_id': 1, 'cls_id': 2, 'sep_id': 3,
                                         'mask_id': 4}
  assert ours.vocab_size == len(theirs)


def test_options_change_ids_and_fingerprint(vocab_file):
  cased = tokenizer_lib.load(vocab_file, lowercase=False)
  uncased = tokenizer_lib.load(vocab_file, lowercase=True)
  assert cased.encode(['The Model'])[0] != uncased.encode(['The Model'])[0]
  assert cased.fingerprint != uncased.fingerprint
  assert tokenizer_lib.load(vocab_file, lowercase=False).fingerprint == cased.fingerprint


def test_pickles_for_worker_processes(vocab_file):
  ours = tokenizer_lib.load(vocab_file, lowercase=False, strip_accents=True)
  copy = pickle.loads(pickle.dumps(ours))
  assert copy.encode(TEXTS) == ours.encode(TEXTS)
  assert (copy.lowercase, copy.strip_accents) == (False, True)


@pytest.mark.parametrize('lines,message', [
    (['[UNK]', '[PAD]', '[CLS]', '[SEP]', '[MASK]'], 'must be id 0'),
    (['[PAD]', '[UNK]', '[CLS]', '[SEP]'], 'lacks \\[MASK\\]'),
    (['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', 'a', 'a'], "lists 'a' twice"),
])
def test_bad_vocabularies_are_named(tmp_path, lines, message):
  path = tmp_path / 'vocab.txt'
  path.write_text('\n'.join(lines) + '\n', encoding='utf-8')
  with pytest.raises(UserError, match=message):
    tokenizer_lib.load(str(path))
  with pytest.raises(UserError, match='does not exist'):
    tokenizer_lib.load(str(tmp_path / 'missing.txt'))


def test_pretraining_data_builds_with_a_vocab_txt(text_config, vocab_file):
  text_config.data.tokenizer = vocab_file
  text_config.data.lowercase = False
  text_config.model.vocab_size = 512
  inputs = data.prepare(text_config)
  assert inputs.tokenizer.file_name == 'vocab.txt'
  batch = next(inputs.train)
  ids = batch['input_ids']
  assert (ids[:, 0] == 2).all()  # [CLS] from the vocabulary.
  real = ids[batch['input_mask'] == 1]
  assert real.max() < inputs.tokenizer.vocab_size and (real == 3).any()
  words = set(inputs.tokenizer.encode(['model reads text'])[0])
  assert words & set(np.unique(real).tolist())  # The corpus's words, in WordPiece ids.


def test_word_starts_are_the_tokens_without_a_continuation_mark(tmp_path):
  tokens = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', 'un', '##believ', '##ably', 'the', 'model',
            '##s', '.']
  path = tmp_path / 'vocab.txt'
  path.write_text('\n'.join(tokens) + '\n', encoding='utf-8')
  tok = tokenizer_lib.load(str(path))
  np.testing.assert_array_equal(tok.word_starts(), [not t.startswith('##') for t in tokens])
  ids = tok.encode(['The model, unbelievably models.'])[0]
  assert [tokens[i] for i in ids] == ['the', 'model', '[UNK]', 'un', '##believ', '##ably', 'model',
                                      '##s', '.']
  # Punctuation and [UNK] (here the unknown ',') are words of their own.
  assert tok.word_starts()[ids].sum() == 6
