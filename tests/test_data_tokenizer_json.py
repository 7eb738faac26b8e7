"""A Hugging Face tokenizer.json as config.data.tokenizer (data/tokenizer_json.py)."""

import json
import pickle

import numpy as np
import pytest
import tokenizers

from electra_jax.data import tokenizer as tokenizer_lib
from electra_jax.data import tokenizer_json
from electra_jax.errors import UserError
from tests.conftest import write_bpe_tokenizer_json, write_corpus

TEXTS = ['the model reads text', 'Tokens were replaced by a small generator.']


@pytest.fixture(scope='module')
def bpe_path(tmp_path_factory):
  root = tmp_path_factory.mktemp('bpe')
  return write_bpe_tokenizer_json(root / 'tokenizer.json', write_corpus(str(root / 'corpus')))


def test_a_tokenizer_json_gives_the_pipelines_ids_without_its_special_tokens(bpe_path):
  ours = tokenizer_lib.load(bpe_path)
  assert isinstance(ours, tokenizer_json.TokenizerJson)
  theirs = tokenizers.Tokenizer.from_file(bpe_path)
  assert ours.encode(TEXTS) == [theirs.encode(t, add_special_tokens=False).ids for t in TEXTS]
  ids, spans = ours.encode_with_offsets(TEXTS[:1])[0]
  assert [TEXTS[0][a:b].strip() for a, b in spans][:2] == ['the', 'model']
  special = ours.special_ids
  assert special['pad_id'] != 0 and ours.vocab_size == theirs.get_vocab_size()
  assert [theirs.id_to_token(special[k]) for k in ('cls_id', 'sep_id', 'mask_id')] == [
      '[CLS]', '[SEP]', '[MASK]']
  assert pickle.loads(pickle.dumps(ours)).encode(TEXTS) == ours.encode(TEXTS)


def test_word_starts_mark_byte_level_word_pieces_and_special_tokens(bpe_path):
  ours = tokenizer_lib.load(bpe_path)
  starts = ours.word_starts()
  assert starts.shape == (ours.vocab_size,)
  ids = ours.encode(['the model reads'])[0]
  pieces = [ours.token(i) for i in ids]
  assert [bool(starts[i]) for i in ids] == [p.startswith('\u0120') for p in pieces]
  assert all(starts[i] for i in ours.special_ids.values())
  assert not starts.all() and starts.any()


def test_a_tokenizer_json_without_a_mask_token_is_refused_in_one_line(bpe_path, tmp_path):
  with open(bpe_path, encoding='utf-8') as f:
    spec = json.load(f)
  spec['added_tokens'] = [t for t in spec['added_tokens'] if t['content'] != '[MASK]']
  path = tmp_path / 'tokenizer.json'
  path.write_text(json.dumps(spec), encoding='utf-8')
  with pytest.raises(UserError, match=r'tokenizer .*tokenizer.json: .*lacks the special tokens '
                     r'\[MASK\] or <mask>'):
    tokenizer_lib.load(str(path))
  path.write_text('{"not": "a tokenizer"}', encoding='utf-8')
  with pytest.raises(UserError, match='is not a tokenizers pipeline'):
    tokenizer_lib.load(str(path))
  np.testing.assert_equal(tokenizer_lib.load_from_dir(str(tmp_path / 'none')), None)
