"""Every fine-tuning metric against values worked out by hand in the comments."""

import math

import pytest

from electra_jax.finetune import metrics

# A binary case with tp=3, fp=1, fn=2, tn=4 (positive class 1).
_BINARY_LABELS = [1, 1, 1, 0, 1, 1, 0, 0, 0, 0]
_BINARY_PREDICTIONS = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]

# A three-class case; rows the true class, columns the predicted one:
#   [[3, 1, 0],
#    [1, 1, 1],
#    [0, 2, 1]]
_LABELS_3 = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
_PREDICTIONS_3 = [0, 0, 0, 1, 0, 1, 2, 1, 1, 2]


def test_accuracy():
  # 3 true positives + 4 true negatives out of 10.
  assert metrics.accuracy(_BINARY_PREDICTIONS, _BINARY_LABELS) == pytest.approx(7 / 10)
  assert isinstance(metrics.accuracy([1], [1]), float)


def test_binary_f1_is_the_positive_class():
  # 2tp / (2tp + fp + fn) = 6 / (6 + 1 + 2) = 6/9. Class 0's F1 would be 8/11 (tp=4, fp=2, fn=1).
  assert metrics.f1(_BINARY_PREDICTIONS, _BINARY_LABELS, 2) == pytest.approx(6 / 9)


@pytest.mark.filterwarnings('error')
def test_binary_f1_without_positives_is_zero():
  # tp = fp = fn = 0: 0/0 is defined as 0, without a division warning.
  assert metrics.f1([0, 0, 0], [0, 0, 0], 2) == 0.0


def test_macro_f1_averages_the_classes_present():
  # class 0: tp=3, fp=4-3=1, fn=4-3=1 -> 6/8
  # class 1: tp=1, fp=4-1=3, fn=3-1=2 -> 2/7
  # class 2: tp=1, fp=2-1=1, fn=3-1=2 -> 2/5
  # mean = (105 + 40 + 56) / 140 / 3 = 201/420 = 67/140
  assert metrics.f1(_PREDICTIONS_3, _LABELS_3, 3) == pytest.approx(67 / 140)
  # Class 3 occurs in neither labels nor predictions: still the mean over the three others.
  assert metrics.f1(_PREDICTIONS_3, _LABELS_3, 4) == pytest.approx(67 / 140)


def test_binary_mcc():
  # (tp*tn - fp*fn) / sqrt((tp+fp)(tp+fn)(tn+fp)(tn+fn)) = (12 - 2) / sqrt(4*5*5*6)
  expected = (3 * 4 - 1 * 2) / math.sqrt(4 * 5 * 5 * 6)
  mcc = metrics.matthews_corrcoef(_BINARY_PREDICTIONS, _BINARY_LABELS, 2)
  assert mcc == pytest.approx(expected)
  # labels [0,0,0,1], predictions [0,1,1,1]: tp=1, fp=2, fn=0, tn=1 -> (1 - 0) / sqrt(3*1*3*1) = 1/3
  # (true and predicted counts differ, [3, 1] vs [1, 3], unlike the cases above).
  assert metrics.matthews_corrcoef([0, 1, 1, 1], [0, 0, 0, 1], 2) == pytest.approx(1 / 3)
  assert metrics.matthews_corrcoef([0, 1, 1, 0], [1, 0, 0, 1], 2) == pytest.approx(-1.0)


def test_multiclass_mcc_is_gorodkins_rk():
  # n = 10, trace = 3+1+1 = 5, true counts t = [4, 3, 3], predicted counts p = [4, 4, 2].
  # cov(y, yhat) = trace*n - t.p = 50 - (16+12+6) = 16
  # cov(yhat, yhat) = n^2 - p.p = 100 - (16+16+4) = 64
  # cov(y, y) = n^2 - t.t = 100 - (16+9+9) = 66
  # R_K = 16 / sqrt(64 * 66) = 2 / sqrt(66)
  assert metrics.matthews_corrcoef(_PREDICTIONS_3, _LABELS_3, 3) == pytest.approx(2 / math.sqrt(66))
  assert metrics.matthews_corrcoef(_LABELS_3, _LABELS_3, 3) == pytest.approx(1.0)


@pytest.mark.filterwarnings('error')
def test_mcc_of_constant_predictions_is_zero():
  # All predictions one class: n^2 - p.p = 16 - 16 = 0, so the denominator is 0.
  assert metrics.matthews_corrcoef([1, 1, 1, 1], [0, 1, 0, 1], 2) == 0.0
  assert metrics.matthews_corrcoef([0, 2, 1], [2, 2, 2], 3) == 0.0


def test_classification_inputs_are_checked():
  with pytest.raises(ValueError, match='shape'):
    metrics.accuracy([0, 1], [0, 1, 1])
  with pytest.raises(ValueError, match='no predictions'):
    metrics.accuracy([], [])
  with pytest.raises(ValueError, match=r'\[0, 2\)'):
    metrics.f1([0, 2], [0, 1], 2)
  with pytest.raises(ValueError, match='integers'):
    metrics.matthews_corrcoef([0.0, 1.0], [0, 1], 2)


def test_pearson():
  # x = [1,2,3,4] -> centred [-1.5,-0.5,0.5,1.5]; y = [2,1,4,3] -> centred [-0.5,-1.5,1.5,0.5]
  # sum xy = 0.75+0.75+0.75+0.75 = 3; sum x^2 = sum y^2 = 2.25+0.25+0.25+2.25 = 5 -> r = 3/5
  assert metrics.pearson([1, 2, 3, 4], [2, 1, 4, 3]) == pytest.approx(0.6)
  assert metrics.pearson([1, 2, 3], [6, 4, 2]) == pytest.approx(-1.0)
  assert metrics.pearson([0.1, 0.2, 0.3], [0.1, 0.2, 0.3]) == pytest.approx(1.0)
  # Unclipped, rounding makes this perfect correlation 1.0000000000000002 on some CPUs (others
  # round to 0.9999999999999998): never above 1, and 1 up to rounding.
  x = [0.13458754237823045, 0.07813114007004275, 0.026445563032930355]
  r = metrics.pearson(x, [3 * v + 1 for v in x])
  assert r <= 1.0 and r == pytest.approx(1.0)


def test_spearman_gives_ties_their_average_rank():
  # ranks of [1,2,2,3] = [1, 2.5, 2.5, 4]; of [1,3,2,4] = [1,3,2,4]; both have mean 2.5.
  # centred: [-1.5, 0, 0, 1.5] and [-1.5, 0.5, -0.5, 1.5]
  # sum xy = 2.25 + 0 + 0 + 2.25 = 4.5; sum x^2 = 4.5; sum y^2 = 2.25+0.25+0.25+2.25 = 5
  # rho = 4.5 / sqrt(4.5 * 5) = sqrt(0.9)
  assert metrics.spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(math.sqrt(0.9))


def test_spearman_only_sees_the_order():
  # [1, 10, 100, 1000] ranks to [1,2,3,4], so rho is the 3/5 of test_pearson; Pearson's r is not.
  assert metrics.spearman([1, 10, 100, 1000], [2, 1, 4, 3]) == pytest.approx(0.6)
  assert metrics.pearson([1, 10, 100, 1000], [2, 1, 4, 3]) != pytest.approx(0.6)
  assert metrics.spearman([3.0, 2.0, 1.0], [10, 20, 30]) == pytest.approx(-1.0)


@pytest.mark.filterwarnings('error')
@pytest.mark.parametrize('correlation', [metrics.pearson, metrics.spearman])
def test_correlation_with_a_constant_side_is_zero(correlation):
  # 0.1 three times: its float mean is not exactly 0.1, yet it must count as constant.
  assert correlation([0.1, 0.1, 0.1], [1, 2, 3]) == 0.0
  assert correlation([1, 2, 3], [5, 5, 5]) == 0.0
  assert correlation([7], [7]) == 0.0


def test_normalize_answer_as_the_official_script():
  assert metrics.normalize_answer('The  Cat!') == 'cat'
  assert metrics.normalize_answer('An apple a DAY, then\tthe theatre') == 'apple day then theatre'
  # Punctuation goes before the articles: 'the-cat' -> 'thecat', which has no whole-word 'the'.
  assert metrics.normalize_answer('the-cat') == 'thecat'
  assert metrics.answer_tokens("Rock'n'Roll, the band.") == ['rocknroll', 'band']
  assert metrics.answer_tokens(' the ') == []


def test_exact_match_score():
  assert metrics.exact_match_score('The Cat!', 'cat') == 1.0
  assert metrics.exact_match_score('cats', 'cat') == 0.0


def test_f1_score():
  # [big, red, dog] vs [red, dog, barked]: 2 shared, p = 2/3, r = 2/3 -> F1 = 2/3.
  assert metrics.f1_score('the big red dog', 'red dog barked') == pytest.approx(2 / 3)
  # Counter overlap counts a repeated token once per occurrence in both: [dog x3] vs [dog]
  # share 1, p = 1/3, r = 1 -> F1 = 2 * (1/3) / (4/3) = 1/2.
  assert metrics.f1_score('dog dog dog', 'dog') == pytest.approx(0.5)
  assert metrics.f1_score('cat', 'dog') == 0.0
  # No tokens on either side is no answer: 1 if both are, else 0. 'the' normalises to nothing.
  assert metrics.f1_score('', '') == 1.0
  assert metrics.f1_score('the', '') == 1.0
  assert metrics.f1_score('x', '') == 0.0
  assert metrics.f1_score('', 'x') == 0.0


def test_squad_takes_the_best_reference_and_splits_answerable_questions():
  golds = {
      'q1': ['red dog barked', 'dog'],
      'q2': ['Paris'],
      'q3': [],
      'q4': [],
      'q5': ['London'],
  }
  predictions = {'q1': 'the big red dog', 'q2': 'paris.', 'q3': '', 'q4': 'x', 'extra': 'y'}
  # q1: EM 0; F1 max(2/3 (see test_f1_score), [big,red,dog] vs [dog]: p=1/3 r=1 -> 1/2) = 2/3
  # q2: EM 1, F1 1. q3: unanswerable, '' -> 1, 1. q4: unanswerable, 'x' -> 0, 0.
  # q5: no prediction, scored as '' -> 0, 0. 'extra' is not a question: ignored.
  # EM = (0+1+1+0+0)/5 = 2/5; F1 = (2/3+1+1+0+0)/5 = 8/15
  # answerable q1,q2,q5: EM 1/3, F1 (2/3+1+0)/3 = 5/9; unanswerable q3,q4: EM 1/2, F1 1/2
  assert metrics.squad(predictions, golds) == pytest.approx({
      'exact_match': 2 / 5, 'f1': 8 / 15,
      'has_answer_exact_match': 1 / 3, 'has_answer_f1': 5 / 9,
      'no_answer_exact_match': 1 / 2, 'no_answer_f1': 1 / 2,
  })


def test_squad_without_unanswerable_questions_has_no_split():
  # q1: 'a cat' = 'cat' after normalisation -> 1, 1. q2: [black, cat] vs [cat]: p=1/2 r=1 -> 2/3.
  # EM = (1+0)/2 = 1/2, F1 = (1+2/3)/2 = 5/6.
  golds = {'q1': ['cat'], 'q2': ['cat']}
  predictions = {'q1': 'a cat', 'q2': 'black cat'}
  assert metrics.squad(predictions, golds) == pytest.approx({'exact_match': 1 / 2, 'f1': 5 / 6})


def test_squad_drops_references_that_normalise_to_nothing():
  # The reference 'the' is dropped, leaving 'cat': '' scores 0. Kept, ''-vs-'the' would score 1.
  assert metrics.squad({'q': ''}, {'q': ['the', 'cat']}) == {'exact_match': 0.0, 'f1': 0.0}
  # A question whose only reference is dropped scores against '' yet, as in the official split,
  # still counts as answerable: its list was not empty. Both score 1, so every average is 1.
  assert metrics.squad({'q': '', 'r': ''}, {'q': ['the'], 'r': []}) == {
      'exact_match': 1.0, 'f1': 1.0, 'has_answer_exact_match': 1.0, 'has_answer_f1': 1.0,
      'no_answer_exact_match': 1.0, 'no_answer_f1': 1.0}
  with pytest.raises(ValueError, match='no questions'):
    metrics.squad({}, {})


def test_bio_chunks():
  tags = ['B-PER', 'I-PER', 'O', 'B-LOC', 'B-LOC', 'I-LOC']
  assert metrics.chunks(tags) == {('PER', 0, 2), ('LOC', 3, 4), ('LOC', 4, 6)}
  # A stray I- after O starts a chunk, as conlleval counts it.
  assert metrics.chunks(['O', 'I-PER', 'I-PER']) == {('PER', 1, 3)}
  assert metrics.chunks(['O', 'O']) == set() and metrics.chunks([]) == set()


def test_a_type_change_ends_the_chunk():
  assert metrics.chunks(['B-PER', 'I-LOC']) == {('PER', 0, 1), ('LOC', 1, 2)}


def test_iob1_chunks():
  assert metrics.chunks(['I-PER', 'I-PER', 'I-LOC']) == {('PER', 0, 2), ('LOC', 2, 3)}
  # IOB1 uses B- only between two chunks of one type.
  assert metrics.chunks(['I-PER', 'B-PER', 'O']) == {('PER', 0, 1), ('PER', 1, 2)}


def test_iobes_and_ioe_chunks():
  tags = ['B-PER', 'I-PER', 'E-PER', 'S-LOC', 'O', 'S-PER', 'S-PER', 'B-ORG', 'E-ORG', 'B-ORG']
  assert metrics.chunks(tags) == {('PER', 0, 3), ('LOC', 3, 4), ('PER', 5, 6), ('PER', 6, 7),
                                  ('ORG', 7, 9), ('ORG', 9, 10)}
  # IOE: an E ends its chunk, so E after E is a chunk of one token.
  assert metrics.chunks(['I-PER', 'E-PER', 'E-PER']) == {('PER', 0, 2), ('PER', 2, 3)}
  # An S closes an open chunk, and an I or E after an S starts a new one.
  assert metrics.chunks(['B-PER', 'S-PER', 'I-PER', 'E-PER']) == {
      ('PER', 0, 1), ('PER', 1, 2), ('PER', 2, 4)}


def test_tags_without_a_prefix_and_types_with_hyphens():
  assert metrics.chunks(['PER', 'PER', 'O', 'LOC']) == {('PER', 0, 2), ('LOC', 3, 4)}
  assert metrics.chunks(['B-ORG-GOV', 'I-ORG-GOV']) == {('ORG-GOV', 0, 2)}
  with pytest.raises(ValueError, match='prefix'):
    metrics.chunks(['L-PER'])


def test_span_f1():
  # gold: PER 0-2, LOC 3-4 | ORG 0-1 -> 3 chunks. predicted: PER 0-1 (wrong end), LOC 3-4 -> 2.
  # p = 1/2, r = 1/3, F1 = 2 * (1/6) / (5/6) = 2/5.
  # tags right: B-PER, O, B-LOC | O -> 4 of 6.
  gold = [['B-PER', 'I-PER', 'O', 'B-LOC'], ['B-ORG', 'O']]
  predicted = [['B-PER', 'O', 'O', 'B-LOC'], ['O', 'O']]
  assert metrics.span_f1(gold, predicted) == pytest.approx(
      {'precision': 1 / 2, 'recall': 1 / 3, 'f1': 0.4, 'token_accuracy': 4 / 6})


def test_span_f1_matches_chunks_within_their_sentence():
  # The same (PER, 0, 1) in another sentence is not a match: 0 of 1 found, 0 of 1 expected.
  # Tags right: O | O -> 2 of 4.
  gold = [['B-PER', 'O'], ['O', 'O']]
  predicted = [['O', 'O'], ['B-PER', 'O']]
  assert metrics.span_f1(gold, predicted) == pytest.approx(
      {'precision': 0.0, 'recall': 0.0, 'f1': 0.0, 'token_accuracy': 1 / 2})


@pytest.mark.filterwarnings('error')
def test_span_f1_without_chunks_is_zero():
  assert metrics.span_f1([['B-PER']], [['O']]) == {
      'precision': 0.0, 'recall': 0.0, 'f1': 0.0, 'token_accuracy': 0.0}
  assert metrics.span_f1([['O']], [['O']]) == {
      'precision': 0.0, 'recall': 0.0, 'f1': 0.0, 'token_accuracy': 1.0}


def test_span_f1_rejects_mismatched_lengths():
  with pytest.raises(ValueError, match='sentence 1 has 2 gold tags but 1 predicted'):
    metrics.span_f1([['O'], ['O', 'O']], [['O'], ['O']])
  with pytest.raises(ValueError, match='2 gold sentences but 1 predicted'):
    metrics.span_f1([['O'], ['O']], [['O']])
