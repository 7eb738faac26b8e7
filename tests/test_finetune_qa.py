import json
import os
import random

import numpy as np
import pytest

from electra_jax.data import tokenizer as tokenizer_lib
from electra_jax.errors import UserError
from electra_jax.finetune import qa
from tests.conftest import _WORDS

_MULTIBYTE = 'café über naïve Zoë Köln crème brûlée 日本語 東京 🙂 🚀'.split()
CONTEXT = 'Zoë met the café owner in Köln, who reads 日本語 with a 🙂 every morning.'


@pytest.fixture(scope='module')
def tok(tmp_path_factory):
  rng = random.Random(0)
  words = list(_WORDS) + _MULTIBYTE
  lines = [' '.join(rng.choice(words) for _ in range(rng.randint(3, 20))) + '.' for _ in range(500)]
  return tokenizer_lib.train(lines, 200, str(tmp_path_factory.mktemp('tok') / 'v'))


def _example(qid: str, question: str, context: str, answer: str | None) -> qa.Example:
  answers = ((answer, context.index(answer)),) if answer is not None else ()
  return qa.Example(qid, question, context, answers)


def _long_context(words: int, seed: int = 0) -> str:
  rng = random.Random(seed)
  return ' '.join(rng.choice(_WORDS) for _ in range(words))


def _one_hot_logits(features: qa.Features):
  """Logits that point at the labels of each example's answer window where its start counts."""
  start = np.full(features.arrays['input_ids'].shape, -1e4)
  end = start.copy()
  chosen = {}
  for w in np.flatnonzero(features.arrays['answerable']):
    s, e = features.arrays['start_positions'][w], features.arrays['end_positions'][w]
    if features.max_context[w][s]:
      chosen[int(features.example_index[w])] = int(w)
      start[w, s], end[w, e] = 1e4, 1e4
  return start, end, chosen


def test_one_hot_logits_at_the_labels_decode_to_the_answer(tok):
  long_context = _long_context(150) + ' Zoë found the brûlée in Köln. ' + _long_context(20, seed=1)
  examples = [_example(f'q{i}', 'What did Zoë see in Köln?', CONTEXT, answer) for i, answer in
              enumerate(['Zoë', 'café owner', 'Köln', '日本語', '🙂', 'every morning.'])]
  examples.append(_example('long', 'What did Zoë find?', long_context, 'brûlée'))
  features = qa.featurize(examples, tok, max_seq_length=40, max_query_length=6, doc_stride=8)
  start, end, chosen = _one_hot_logits(features)
  assert sorted(chosen) == list(range(len(examples)))
  predictions, nbest = qa.decode(examples, features, start, end, None, n_best=5,
                                 max_answer_length=30)
  assert predictions == {e.id: e.answers[0][0] for e in examples}
  assert all(nbest[e.id][0]['text'] == e.answers[0][0] for e in examples)
  long_windows = np.flatnonzero(features.example_index == len(examples) - 1)
  assert len(long_windows) > 5 and chosen[len(examples) - 1] > long_windows[2]


def _is_max_context(starts: list[int], lengths: list[int], window: int, position: int) -> bool:
  """BERT's _check_is_max_context, verbatim but for names."""
  best_score, best_window = None, None
  for w, (start, length) in enumerate(zip(starts, lengths)):
    end = start + length - 1
    if position < start or position > end:
      continue
    score = min(position - start, end - position) + 0.01 * length
    if best_score is None or score > best_score:
      best_score, best_window = score, w
  return best_window == window


@pytest.mark.parametrize('doc_stride', [7, 1000])
def test_windows_are_cls_question_sep_context_sep_padding(tok, doc_stride):
  question = 'which tokens were replaced by the small generator on every device'
  context = _long_context(120) + ' Zoë met 日本語 🙂 friends.'
  features = qa.featurize([_example('q', question, context, 'friends')], tok, max_seq_length=32,
                          max_query_length=5, doc_stride=doc_stride)
  [(ids, spans)] = tok.encode_with_offsets([context])
  q = tok.encode([question])[0]
  assert len(q) > 5
  q = q[:5]
  cls, sep = tok.special_ids['cls_id'], tok.special_ids['sep_id']
  offset, window = len(q) + 2, 32 - len(q) - 3
  stride = min(doc_stride, window)  # A stride longer than a window would skip tokens.
  windows = len(features.example_index)
  assert windows > 3 and (features.example_index == 0).all()
  starts = [w * stride for w in range(windows)]
  lengths = [min(window, len(ids) - start) for start in starts]
  assert starts[-1] + lengths[-1] == len(ids) and starts[-2] + window < len(ids)
  counts, max_counts = np.zeros(len(ids), int), np.zeros(len(ids), int)
  for w, (start, length) in enumerate(zip(starts, lengths)):
    expected = [cls, *q, sep, *ids[start:start + length], sep]
    padding = [0] * (32 - len(expected))
    assert features.arrays['input_ids'][w].tolist() == expected + padding
    assert features.arrays['segment_ids'][w].tolist() == [0] * offset + [1] * (length + 1) + padding
    assert features.arrays['input_mask'][w].tolist() == [1] * len(expected) + padding
    token_spans, max_context = features.token_spans[w], features.max_context[w]
    assert token_spans.shape == (32, 2) and max_context.shape == (32,)
    assert [tuple(s) for s in token_spans[offset:offset + length].tolist()] == \
        spans[start:start + length]
    assert (token_spans[:offset] == -1).all() and (token_spans[offset + length:] == -1).all()
    assert not max_context[:offset].any() and not max_context[offset + length:].any()
    assert max_context[offset:offset + length].tolist() == [
        _is_max_context(starts, lengths, w, start + p) for p in range(length)]
    counts[start:start + length] += 1
    max_counts[start:start + length] += max_context[offset:offset + length]
  assert (counts >= 1).all() and (max_counts == 1).all()
  for key in features.arrays:
    assert features.arrays[key].dtype == np.int32 and len(features.arrays[key]) == windows


def test_windows_without_the_answer_and_unanswerable_questions_are_labelled_cls(tok):
  context = _long_context(100) + ' and Zoë read 日本語 there. ' + _long_context(30, seed=2)
  examples = [_example('a', 'What did Zoë read?', context, '日本語'),
              _example('u', 'What did Köln read?', context, None)]
  features = qa.featurize(examples, tok, max_seq_length=48, max_query_length=8, doc_stride=16)
  labels = [features.arrays[k] for k in ('start_positions', 'end_positions', 'answerable')]
  found = 0
  for w, i in enumerate(features.example_index):
    s, e, answerable = (int(label[w]) for label in labels)
    if answerable:
      assert i == 0 and 0 < s <= e
      spans = features.token_spans[w]
      assert context[spans[s, 0]:spans[e, 1]].strip() == '日本語'
      found += 1
    else:
      assert (s, e) == (0, 0)
  assert found >= 1
  assert 0 < (features.arrays['answerable'][features.example_index == 0] == 0).sum()
  assert not features.arrays['answerable'][features.example_index == 1].any()


def _context_token_texts(features: qa.Features, window: int, context: str) -> dict[int, str]:
  spans = features.token_spans[window]
  return {p: context[spans[p, 0]:spans[p, 1]].strip() for p in range(len(spans))
          if spans[p, 0] >= 0}


def test_decode_filters_spans_that_are_too_long_reversed_or_outside_the_context(tok):
  context = 'the model reads text and learns which tokens were replaced'
  examples = [_example('q', 'what does the model read', context, 'text')]
  features = qa.featurize(examples, tok, max_seq_length=64, max_query_length=16, doc_stride=32)
  assert len(features.example_index) == 1
  texts = _context_token_texts(features, 0, context)
  c = sorted(texts)
  assert all(texts[p] for p in c[:6]), 'one word per token'
  start, end = np.full((1, 64), -100.0), np.full((1, 64), -100.0)
  start[0, c[1]], start[0, c[5]] = 10, 12
  end[0, c[2]], end[0, c[4]] = 10, 9
  start[0, 0], end[0, 0], start[0, 1], end[0, 1] = 1000, 1000, 999, 999  # [CLS] and the question.

  def span(first: int, last: int) -> str:
    spans = features.token_spans[0]
    return context[spans[first, 0]:spans[last, 1]].strip()

  predictions, nbest = qa.decode(examples, features, start, end, None, n_best=3,
                                 max_answer_length=4)
  # (c5, c4) would score 21 but ends before it starts.
  assert predictions == {'q': span(c[1], c[2])}
  assert [e['text'] for e in nbest['q'][:2]] == [span(c[1], c[2]), span(c[1], c[4])]
  assert nbest['q'][0]['start_logit'] == 10 and nbest['q'][0]['end_logit'] == 10
  probabilities = [e['probability'] for e in nbest['q']]
  assert len(probabilities) == 3 and probabilities == sorted(probabilities, reverse=True)
  assert sum(probabilities) == pytest.approx(1.0)

  # n_best=20 ranks every position; then (c5, c5) scores best of the one-token spans.
  predictions, nbest = qa.decode(examples, features, start, end, None, n_best=20,
                                 max_answer_length=1)
  assert predictions == {'q': texts[c[5]]}
  assert all(e['text'] in texts.values() for e in nbest['q'])


def test_decode_counts_a_start_only_in_the_window_where_it_has_most_context(tok):
  context = _long_context(60)
  examples = [_example('q', 'what', context, None)]
  features = qa.featurize(examples, tok, max_seq_length=32, max_query_length=4, doc_stride=8)
  first, second = features.token_spans[0], features.token_spans[1]
  texts0, texts1 = (_context_token_texts(features, w, context) for w in (0, 1))
  # p in window 0 and q in window 1 are the same token, which counts in window 1 only.
  p, q = next((p, q) for p in texts0 for q in texts1 if (first[p] == second[q]).all() and
              texts0[p] and not features.max_context[0][p] and features.max_context[1][q])
  r = next(r for r in texts1 if features.max_context[1][r] and texts1[r] not in ('', texts0[p]))
  start = np.full((len(features.example_index), 32), -1e4)
  end = start.copy()
  start[0, p], end[0, p] = 100, 100
  start[1, r], end[1, r] = 1, 1
  predictions, _ = qa.decode(examples, features, start, end, None, n_best=3, max_answer_length=5)
  assert predictions == {'q': texts1[r]}


def test_decode_answers_squad2_questions_whose_answerable_logit_reaches_the_threshold(tok):
  context = _long_context(80) + ' Zoë read 日本語.'
  examples = [_example('a', 'What did Zoë read?', context, '日本語'),
              _example('b', 'Who read?', 'Zoë read 日本語.', 'Zoë')]
  features = qa.featurize(examples, tok, max_seq_length=32, max_query_length=8, doc_stride=8)
  start, end, _ = _one_hot_logits(features)
  answerable = np.where(features.example_index == 0, -3.0, -1.0)
  answerable[np.flatnonzero(features.example_index == 0)[1]] = 1.5  # The max over the windows.

  def predict(threshold):
    return qa.decode(examples, features, start, end, answerable, n_best=2, max_answer_length=10,
                     answerable_threshold=threshold)

  predictions, nbest = predict(1.0)
  assert predictions == {'a': '日本語', 'b': ''}
  assert nbest['b'][0]['text'] == 'Zoë'
  assert predict(1.5)[0] == {'a': '日本語', 'b': ''}
  assert predict(2.0)[0] == {'a': '', 'b': ''}
  assert predict(-1.0)[0] == {'a': '日本語', 'b': 'Zoë'}
  # SQuAD 1.1 has no answerable logits: it always answers.
  predictions, _ = qa.decode(examples, features, -start, -end, None, n_best=2, max_answer_length=10)
  assert all(predictions.values())


def test_an_example_without_context_tokens_gets_one_window_and_no_answer(tok):
  examples = [_example('empty', 'Who?', '', None)]
  features = qa.featurize(examples, tok, max_seq_length=16, max_query_length=4, doc_stride=4)
  assert features.example_index.tolist() == [0]
  assert (features.token_spans[0] == -1).all()
  logits = np.zeros((1, 16))
  assert qa.decode(examples, features, logits, logits, None, n_best=3, max_answer_length=5) == (
      {'empty': ''}, {'empty': []})


def test_bad_lengths_are_user_errors(tok):
  with pytest.raises(UserError, match='max_seq_length=10 must exceed max_query_length=8 by at'):
    qa.featurize([], tok, max_seq_length=10, max_query_length=8, doc_stride=4)


_SQUAD2 = {'version': 'v2.0', 'data': [{'title': 'Köln', 'paragraphs': [
    {'context': CONTEXT, 'qas': [
        {'id': 'a1', 'question': 'Where?', 'is_impossible': False,
         'answers': [{'text': 'Köln', 'answer_start': CONTEXT.index('Köln')},
                     {'text': 'in Köln', 'answer_start': CONTEXT.index('in Köln')}]},
        {'id': 'u1', 'question': 'Who is Bob?', 'is_impossible': True, 'answers': [],
         'plausible_answers': [{'text': 'Zoë', 'answer_start': 0}]}]},
    {'context': '日本語 🙂 text', 'qas': [
        {'id': 'a2', 'question': 'What?', 'is_impossible': False,
         'answers': [{'text': '🙂', 'answer_start': 4}]}]}]}]}


def _write_json(path, data) -> str:
  with open(path, 'w', encoding='utf-8') as f:
    json.dump(data, f, ensure_ascii=False)
  return str(path)


def test_read_squad_json_reads_answerable_and_unanswerable_questions(tmp_path):
  examples = qa.read_squad_json(_write_json(tmp_path / 'dev.json', _SQUAD2))
  assert examples == [
      qa.Example('a1', 'Where?', CONTEXT, (('Köln', 26), ('in Köln', 23))),
      qa.Example('u1', 'Who is Bob?', CONTEXT, ()),
      qa.Example('a2', 'What?', '日本語 🙂 text', (('🙂', 4),))]
  assert [e.is_impossible for e in examples] == [False, True, False]


def _user_error(call, *args) -> str:
  with pytest.raises(UserError) as error:
    call(*args)
  message = str(error.value)
  assert '\n' not in message
  return message


def test_read_squad_json_rejects_bad_files_in_one_line(tmp_path):
  path = str(tmp_path / 'missing.json')
  assert _user_error(qa.read_squad_json, path) == f'SQuAD file {path} does not exist'
  (tmp_path / 'bad.json').write_text('{"data": [', encoding='utf-8')
  message = _user_error(qa.read_squad_json, str(tmp_path / 'bad.json'))
  assert message.startswith(f'{tmp_path}/bad.json is not a SQuAD JSON file')

  shifted = json.loads(json.dumps(_SQUAD2))
  shifted['data'][0]['paragraphs'][1]['qas'][0]['answers'][0]['answer_start'] = 3
  message = _user_error(qa.read_squad_json, _write_json(tmp_path / 'shifted.json', shifted))
  assert message == (f"{tmp_path}/shifted.json: question a2: the answer '🙂' is not at "
                     'answer_start 3 of its context')

  broken = json.loads(json.dumps(_SQUAD2))
  del broken['data'][0]['paragraphs'][1]['qas'][0]['answers']
  message = _user_error(qa.read_squad_json, _write_json(tmp_path / 'broken.json', broken))
  assert message == (f'{tmp_path}/broken.json is not in the SQuAD format: question a2 lacks '
                     "'answers'")
  message = _user_error(qa.read_squad_json, _write_json(tmp_path / 'list.json', [1, 2]))
  assert message.startswith(f'{tmp_path}/list.json is not in the SQuAD format at its top level')

  duplicated = json.loads(json.dumps(_SQUAD2))
  duplicated['data'][0]['paragraphs'][1]['qas'][0]['id'] = 'a1'
  message = _user_error(qa.read_squad_json, _write_json(tmp_path / 'dup.json', duplicated))
  assert 'question id a1 occurs twice' in message


def test_read_tfds_does_not_download_a_dataset_that_is_not_prepared(tmp_path):
  message = _user_error(qa.read_tfds, 'squad/v2.0', str(tmp_path), 'validation')
  assert 'tfds:squad/v2.0 is not prepared in' in message and 'nothing is downloaded' in message
  assert not os.listdir(tmp_path)


def _prepare_tfds_squad(data_dir: str, json_path: str) -> None:
  """The TFDS squad builder, with its files read from json_path instead of downloaded."""
  # pylint: disable-next=g-import-not-at-top
  from tensorflow_datasets.datasets.squad import squad_dataset_builder

  class Squad(squad_dataset_builder.Builder, skip_registration=True):

    @classmethod
    def get_metadata(cls):
      return squad_dataset_builder.Builder.get_metadata()

    def _split_generators(self, dl_manager):
      return {'train': self._generate_examples(json_path),
              'validation': self._generate_examples(json_path)}

  for config in ('v1.1', 'v2.0'):
    Squad(config=config, data_dir=data_dir, file_format='array_record').download_and_prepare()


def test_read_tfds_reads_squad_prepared_as_array_record(tmp_path):
  json_path = _write_json(tmp_path / 'squad.json', _SQUAD2)
  data_dir = str(tmp_path / 'tfds')
  _prepare_tfds_squad(data_dir, json_path)
  assert os.path.isfile(os.path.join(data_dir, 'squad', 'v2.0', '3.0.0', 'dataset_info.json'))
  expected = sorted(qa.read_squad_json(json_path), key=lambda e: e.id)
  for name in ('squad/v2.0', 'squad/v1.1', 'squad/v2.0:3.0.0'):
    examples = qa.read_tfds(name, data_dir, 'validation')
    assert sorted(examples, key=lambda e: e.id) == expected
    assert all(isinstance(x, str) for e in examples for x in (e.id, e.question, e.context))
  message = _user_error(qa.read_tfds, 'squad/v2.0', data_dir, 'test')
  assert message == "tfds:squad/v2.0 has no split 'test' (it has train, validation)"
