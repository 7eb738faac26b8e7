import numpy as np
import pytest

from configs.finetune import tagging as tagging_config
from electra_jax.data import corpus, tokenizer as tokenizer_lib
from electra_jax.errors import UserError
from electra_jax.finetune import tagging
from tests.conftest import write_corpus

_CONLL = '''-DOCSTART- -X- O

The DT B-NP
model NN I-NP
reads VBZ B-VP

generator NN B-NP
'''


@pytest.fixture(scope='module')
def tok(tmp_path_factory):
  root = tmp_path_factory.mktemp('tok')
  text = corpus.from_text_files(write_corpus(str(root / 'c')))
  return tokenizer_lib.train(tokenizer_lib.corpus_lines(text), 200, str(root / 'v'))


def test_read_conll_takes_the_first_and_tag_columns(tmp_path):
  (tmp_path / 'a.conll').write_text(_CONLL)
  assert tagging.read_conll(str(tmp_path / 'a.conll'), -1) == [
      (['The', 'model', 'reads'], ['B-NP', 'I-NP', 'B-VP']), (['generator'], ['B-NP'])]
  assert tagging.read_conll(str(tmp_path / 'a.conll'), 1)[0][1] == ['DT', 'NN', 'VBZ']
  with pytest.raises(UserError, match=r'a.conll:3 has 3 columns, so config.tag_column=5'):
    tagging.read_conll(str(tmp_path / 'a.conll'), 5)
  (tmp_path / 'b.conll').write_text('word\n')
  with pytest.raises(UserError, match='b.conll:1 has one column'):
    tagging.read_conll(str(tmp_path / 'b.conll'), -1)


def test_labels_sit_on_each_word_s_first_piece_and_cut_words_are_scored_as_missed(tmp_path, tok):
  words = 'the model reads generator text'.split()
  (tmp_path / 'train.conll').write_text(
      '\n'.join(f'{w} {t}' for w, t in zip(words, ['B-X', 'I-X', 'O', 'B-Y', 'O'])) + '\n')
  config = tagging_config.get_config()
  config.train_file = config.eval_file = str(tmp_path / 'train.conll')
  pieces = [tok.encode([w])[0] for w in words]
  config.max_seq_length = 2 + sum(len(p) for p in pieces[:3])  # Room for the first 3 words.
  task = tagging.load(config, tok)
  names = ['B-X', 'B-Y', 'I-X', 'O']
  ids, mask = task.eval['input_ids'][0], task.eval['label_mask'][0]
  firsts = np.flatnonzero(mask)
  assert list(ids[firsts]) == [p[0] for p in pieces[:3]]
  assert [names[i] for i in task.eval['labels'][0][firsts]] == ['B-X', 'I-X', 'O']
  assert ids[0] == tok.special_ids['cls_id'] and ids[-1] == tok.special_ids['sep_id']

  prediction = np.zeros_like(ids)
  prediction[firsts] = [0, 2, 3]  # B-X I-X O: right on the words the model sees.
  results, predictions = task.score({'prediction': prediction[None]})
  # Gold chunks X (0-2) and Y (3-4); predicted X only, as 'generator' was cut: p 1, r 1/2.
  assert results == {'precision': 1.0, 'recall': 0.5, 'f1': pytest.approx(2 / 3),
                     'token_accuracy': 0.8}
  assert predictions.splitlines()[3] == 'generator B-Y O'
