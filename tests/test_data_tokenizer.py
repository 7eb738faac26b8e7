import os
import random
import subprocess
import sys

import pytest

from electra_jax.data import corpus, tokenizer as tokenizer_lib
from electra_jax.errors import UserError
from tests.conftest import plain_sentencepiece_model, write_corpus

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_trained_tokenizer_has_the_special_pieces_first(tmp_path):
  text = corpus.from_text_files(write_corpus(str(tmp_path / 'c')))
  tok = tokenizer_lib.train(tokenizer_lib.corpus_lines(text), 200, str(tmp_path / 'out' / 'v'))
  assert tok.special_ids == {'pad_id': 0, 'unk_id': 1, 'cls_id': 2, 'sep_id': 3, 'mask_id': 4}
  assert 40 < tok.vocab_size <= 200  # The soft limit: this corpus has only about 30 words.
  # "[MASK]" typed in text is text, not the mask token.
  assert 4 not in tok.encode(['the [MASK] model'])[0]
  loaded = tokenizer_lib.load(str(tmp_path / 'out' / 'v.model'))
  assert loaded.fingerprint == tok.fingerprint
  assert loaded.encode(['the model reads text']) == tok.encode(['the model reads text'])
  assert sorted(os.listdir(tmp_path / 'out')) == ['v.model', 'v.vocab']


def test_a_tokenizer_without_the_special_pieces_is_rejected(tmp_path):
  path = plain_sentencepiece_model(str(tmp_path / 'plain'))
  with pytest.raises(UserError, match=r'lacks the special pieces \[PAD\] \[UNK\] \[CLS\] \[SEP\]'):
    tokenizer_lib.load(path)


def test_a_file_that_is_not_a_model_is_rejected(tmp_path):
  (tmp_path / 'x.model').write_bytes(b'not a model')
  with pytest.raises(UserError, match='is not a sentencepiece model'):
    tokenizer_lib.load(str(tmp_path / 'x.model'))
  with pytest.raises(UserError, match='does not exist'):
    tokenizer_lib.load(str(tmp_path / 'missing.model'))


def test_command_line_trains_a_tokenizer_and_reports_errors_in_one_line(tmp_path):
  pattern = write_corpus(str(tmp_path / 'c'))
  command = [sys.executable, '-m', 'electra_jax.data.tokenizer', f'--input={pattern}',
             '--vocab_size=150', f'--output={tmp_path}/tok']
  result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
  assert result.returncode == 0, result.stderr
  assert tokenizer_lib.load(f'{tmp_path}/tok.model').vocab_size <= 150

  command[3] = f'--input={tmp_path}/nothing/*.txt'
  result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
  assert result.returncode == 1 and 'Traceback' not in result.stderr
  assert result.stderr.strip().splitlines()[-1].startswith('error: text:') and 'matches no files' \
      in result.stderr


def test_offsets_are_the_characters_of_each_pieces_surface(tmp_path):
  words = 'the model reads café über naïve Zoë Köln crème brûlée 日本語 東京 🙂 🚀'.split()
  lines = [' '.join(words[(i * 7 + j) % len(words)] for j in range(i % 9 + 3)) for i in range(300)]
  tok = tokenizer_lib.train(lines, 120, str(tmp_path / 'v'))
  texts = ['Zoë reads crème brûlée in Köln.', '  日本語 model 🙂 reads  über', 'plain text', '',
           'ﬁne ① x']  # The last has characters that NFKC normalisation expands or maps to [UNK].
  encoded = tok.encode_with_offsets(texts)
  assert [ids for ids, _ in encoded] == tok.encode(texts)
  for text, (ids, spans), proto in zip(texts, encoded,
                                       tok.processor.encode(texts, return_type='proto')):
    assert len(spans) == len(ids)
    assert [text[start:end] for start, end in spans] == [piece.surface for piece in proto.pieces]
    assert all(0 <= start <= end <= len(text) for start, end in spans)
    assert all(a[0] <= b[0] and a[1] <= b[1] for a, b in zip(spans, spans[1:]))
  # A leading '▁' covers the space before its word.
  assert ' brûlée' in [texts[0][start:end] for start, end in encoded[0][1]]


def test_word_starts_are_the_pieces_after_a_space_and_the_specials(tmp_path):
  text = corpus.from_text_files(write_corpus(str(tmp_path / 'c')))
  tok = tokenizer_lib.train(tokenizer_lib.corpus_lines(text), 100, str(tmp_path / 'v'))
  table = tok.word_starts()
  assert table[list(tok.special_ids.values())].all()
  pieces = [tok.processor.id_to_piece(i) for i in range(tok.vocab_size)]
  assert [piece.startswith('▁') for piece in pieces[5:]] == table[5:].tolist()
  sentence = 'the generator replaced unbelievably many tokens of the model'
  ids = tok.encode([sentence])[0]
  assert len(ids) > len(sentence.split()), 'some words should have several pieces'
  assert table[ids].sum() == len(sentence.split())


def test_a_small_corpus_keeps_its_frequent_words_whole(tmp_path):
  # An artificial language: 300 words of two syllables and three function words, each always followed
  # by a space. Sentencepiece's seed candidates are the substrings the text continues in more than one
  # way, which left out "the", "was" and "by": they were spelled "▁t" "h" "e", "▁" "w" "as", "▁b" "y".
  rng = random.Random(0)
  syllables = [c + v for c in 'bdfgklmnprstvz' for v in 'aeiou']
  words = rng.sample([a + b for a in syllables for b in syllables], 300)
  lines = [f'the {rng.choice(words)} was {rng.choice(words)} by the {rng.choice(words)}'
           for _ in range(5_000)]
  tokenizer = tokenizer_lib.train(lines, 1024, str(tmp_path / 'tok'))
  pieces = tokenizer.processor.encode(['the', 'was', 'by'] + words, out_type=str)
  assert [p for p in pieces if len(p) != 1] == []
