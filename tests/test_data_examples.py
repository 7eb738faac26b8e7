import random

import numpy as np

from electra_jax.data import corpus, examples, tokenizer as tokenizer_lib
from tests.conftest import write_corpus

CLS, SEP = 2, 3


def _examples(documents, max_length=32, seed=0):
  """Runs the builder over documents (lists of token-id lines), returns (ids, first_segment_end)."""
  builder = examples.ExampleBuilder(max_length, CLS, SEP, random.Random(seed))
  out = []
  for document in documents:
    for line in document:
      if (example := builder.add_line(line)) is not None:
        out.append(example)
    if (example := builder.end_document()) is not None:
      out.append(example)
  return out


def _documents(count=400, seed=0):
  rng = random.Random(seed)
  # Document d uses only token ids in [100 d, 100 d + 100): the output shows where tokens came from.
  return [[[100 * d + rng.randrange(10, 100) for _ in range(rng.randint(1, 20))]
           for _ in range(rng.randint(1, 15))] for d in range(count)]


def test_examples_have_the_electra_layout_and_never_mix_documents():
  built = _examples(_documents())
  assert built
  for ids, first_end in built:
    assert 3 <= len(ids) <= 32 and ids[0] == CLS and ids[-1] == SEP and ids[first_end - 1] == SEP
    assert SEP not in ids[1:first_end - 1]
    if first_end < len(ids):  # Two segments: [CLS] A [SEP] B [SEP].
      assert SEP not in ids[first_end:-1] and len(ids) - first_end >= 2
    assert len({t // 100 for t in ids if t >= 10}) == 1


def test_single_segment_and_short_target_rates_follow_the_original():
  # Long documents of short lines: nearly every example could have two segments and reach the target.
  documents = [[[100 * d + 10 + i % 80] * 5 for i in range(1000)] for d in range(10)]
  built = _examples(documents, max_length=64)
  single = np.mean([first_end == len(ids) for ids, first_end in built])
  short = np.mean([len(ids) < 60 for ids, _ in built])
  assert 0.08 < single < 0.12, single
  assert 0.035 < short < 0.065, short


def test_building_is_deterministic_for_a_seed():
  documents = _documents(100)
  assert _examples(documents, seed=1) == _examples(documents, seed=1)
  assert _examples(documents, seed=1) != _examples(documents, seed=2)


def test_a_task_holds_out_whole_blocks_and_reproduces(tmp_path):
  pattern = write_corpus(str(tmp_path / 'c'), files=1, documents=200)
  text = corpus.from_text_files(pattern)
  tok = tokenizer_lib.train(tokenizer_lib.corpus_lines(text), 128, str(tmp_path / 'tok'))
  first = examples.build(text.tasks[0], 0, tok, max_length=32, seed=0, eval_fraction=0.25)
  again = examples.build(text.tasks[0], 0, tok, max_length=32, seed=0, eval_fraction=0.25)
  np.testing.assert_array_equal(first.tokens, again.tokens)
  assert first.held_out[0] and 0.1 < first.held_out.mean() < 0.5
  row = first.example(0)
  assert row['input_ids'][0] == tok.special_ids['cls_id']
  assert row['segment_ids'][-1] in (0, 1) and row['segment_ids'][0] == 0
  assert first.text_bytes == sum(len(line.encode()) + 1 for line in corpus.lines(text.tasks[0]))
