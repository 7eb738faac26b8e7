import numpy as np

from electra_jax.data import unigram

SPECIAL_IDS = {'pad_id': 0, 'unk_id': 1, 'cls_id': 2, 'sep_id': 3, 'mask_id': 4}


def test_the_entropy_of_a_known_distribution():
  assert np.isclose(unigram.entropy([5, 5, 5, 5]), np.log(4))
  assert np.isclose(unigram.entropy([0.5, 0.25, 0.25, 0]), 1.5 * np.log(2))  # Zeros add nothing.
  assert unigram.entropy([0, 7, 0]) == 0


def test_the_pieces_never_masked_are_left_out_and_the_others_kept():
  ids = np.array([2, 5, 5, 6, 1, 3, 7, 7, 3, 0, 0])  # [CLS] ... [SEP] ... [SEP] [PAD] [PAD]
  counts = unigram.count(ids, 9)
  assert counts.tolist() == [2, 1, 1, 2, 0, 2, 1, 2, 0]
  # Left: [UNK] once, 5 twice, 6 once, 7 twice (masking may choose [UNK], a piece of the text).
  assert np.isclose(unigram.piece_entropy(counts, SPECIAL_IDS), unigram.entropy([1, 2, 1, 2]))
  assert counts.tolist() == [2, 1, 1, 2, 0, 2, 1, 2, 0]  # The caller's counts are left alone.
