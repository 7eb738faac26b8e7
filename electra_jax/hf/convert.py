"""Our parameters <-> Hugging Face ELECTRA's and ModernBERT's tensors, as pure functions (their
config.json: config_json.py).

Our parameter paths already follow HF's module names (model.py, modernbert.py), so one rule names
every tensor: a block of ours (e.g. `discriminator.electra`) sits under an HF prefix (`electra`);
inside it ELECTRA's `query`, `key` and `value` gain HF's `self.`; Flax `kernel` is torch's transposed
`weight` (a fused [in, parts, out] kernel flattened to [parts * out, in], its [parts, out] bias to one
row), `scale` and `embedding` are `weight`. A model is a list of such blocks. Import walks our expected
parameters, so every one is looked up; what is left over in the file is reported rather than silently
dropped.
"""

import re
from typing import NamedTuple

import numpy as np

from electra_jax import model
from electra_jax.errors import UserError

# (our block, HF prefix) for each exported class.
DISCRIMINATOR = (('embeddings', 'electra.embeddings'), ('discriminator.electra', 'electra'),
                 ('discriminator.discriminator_predictions', 'discriminator_predictions'))
# The MLM baseline (pretrainer.MaskedLM): the encoder kept where the discriminator's is, with an MLM head.
MASKED_LM = (('embeddings', 'electra.embeddings'), ('discriminator.electra', 'electra'),
             ('discriminator.generator_predictions', 'generator_predictions'),
             ('discriminator.generator_lm_head', 'generator_lm_head'))
# The generator's embeddings block depends on config.model.embedding_sharing: see generator_blocks.
_GENERATOR_BODY = (('generator.electra', 'electra'),
                   ('generator.generator_predictions', 'generator_predictions'),
                   ('generator.generator_lm_head', 'generator_lm_head'))
# A fine-tuning model's encoder and head (finetune/model.py); the head is `classifier`.
FINETUNED = (('embeddings', 'electra.embeddings'), ('electra', 'electra'),
             ('classifier', 'classifier'))
# ModernBERT's (modernbert.py): the RTD discriminator exports as ModernBertForTokenClassification
# with one label, the generator and the MLM baseline as ModernBertForMaskedLM, a fine-tuned model as
# ModernBertFor{Sequence,Token}Classification (its prediction head, then `classifier`).
_MODERNBERT_DISCRIMINATOR = (('embeddings', 'model.embeddings'), ('discriminator.model', 'model'),
                             ('discriminator.head', 'head'),
                             ('discriminator.classifier', 'classifier'))
# What a ModernBERT masked LM gives the discriminator when one folder starts both models
# (hf/load.py): all but the one-logit classifier, as transformers' ModernBertForTokenClassification
# reads such a folder.
MODERNBERT_FROM_MASKED_LM = _MODERNBERT_DISCRIMINATOR[:3]
_MODERNBERT_FINETUNED = (('embeddings', 'model.embeddings'), ('model', 'model'), ('head', 'head'),
                         ('classifier', 'classifier'))
# Buffers that older transformers versions saved; they hold no parameters.
_BUFFERS = re.compile(r'(^|\.)(position_ids|token_type_ids)$')


def finetuned_blocks(model_config) -> tuple:
  if model.architecture(model_config) == 'modernbert':
    return _MODERNBERT_FINETUNED
  return FINETUNED


def _modernbert_masked_lm(model_config, embeddings: str, ours: str) -> tuple:
  blocks = ((embeddings, 'model.embeddings'), (f'{ours}.model', 'model'), (f'{ours}.head', 'head'))
  return blocks + (((f'{ours}.decoder', 'decoder'),) if model_config.decoder_bias else ())


def _generator_embeddings(model_config) -> str:
  return 'generator_embeddings' if model_config.embedding_sharing == 'untied' else 'embeddings'


def generator_blocks(model_config) -> tuple:
  if model.architecture(model_config) == 'modernbert':
    return _modernbert_masked_lm(model_config, _generator_embeddings(model_config), 'generator')
  return ((_generator_embeddings(model_config), 'electra.embeddings'),) + _GENERATOR_BODY


class Export(NamedTuple):
  """One Hugging Face model that a pre-training run exports."""
  folder: str  # Under the export's output.
  architecture: str  # The transformers class.
  blocks: tuple  # (our block, HF prefix) pairs.
  generator: bool  # Of the generator's sizes.
  extra: dict | None = None  # More config.json fields.


# ModernBertForTokenClassification's one label: the RTD logit.
_RTD_LABEL = {'id2label': {0: 'replaced'}, 'label2id': {'replaced': 0}}


def pretraining_exports(model_config, kind: str) -> list[Export]:
  """The models a pre-training run of objective `kind` exports, by architecture."""
  if model.architecture(model_config) == 'modernbert':
    if kind == 'mlm':
      return [Export('masked_lm', 'ModernBertForMaskedLM',
                     _modernbert_masked_lm(model_config, 'embeddings', 'discriminator'), False)]
    return [Export('discriminator', 'ModernBertForTokenClassification', _MODERNBERT_DISCRIMINATOR,
                   False, _RTD_LABEL),
            Export('generator', 'ModernBertForMaskedLM', generator_blocks(model_config), True)]
  if kind == 'mlm':
    return [Export('masked_lm', 'ElectraForMaskedLM', MASKED_LM, False)]
  return [Export('discriminator', 'ElectraForPreTraining', DISCRIMINATOR, False),
          Export('generator', 'ElectraForMaskedLM', generator_blocks(model_config), True)]


def hf_name(path: str) -> str:
  """Our parameter path inside a block -> HF's tensor name inside its prefix (_to_torch lays the
  value out)."""
  path = re.sub(r'(^|\.)attention\.(query|key|value)\.', r'\1attention.self.\2.', path)
  module, dot, leaf = path.rpartition('.')
  return f'{module}{dot}weight' if leaf in ('kernel', 'scale', 'embedding') else path


def _leaves(tree, prefix: str = ''):
  """(dotted path, leaf) of a nested dict, in order."""
  if not isinstance(tree, dict):
    yield prefix, tree
    return
  for key, value in tree.items():
    yield from _leaves(value, f'{prefix}.{key}' if prefix else str(key))


def _subtree(tree: dict, dotted: str):
  for key in dotted.split('.'):
    tree = tree[key]
  return tree


def _vocab_rows(path: str) -> bool:
  """Whether the parameter at this full path has a row per token id (padded: model.py)."""
  return path.endswith(('word_embeddings.embedding', 'generator_lm_head.bias',
                        'tok_embeddings.embedding', 'decoder.bias'))


def _leaf(path: str) -> str:
  return path.rpartition('.')[2]


def _torch_shape(path: str, shape: tuple) -> tuple:
  """The shape in HF's file of our parameter at `path` of `shape`."""
  if _leaf(path) == 'kernel':
    return (int(np.prod(shape[1:])), shape[0])
  if _leaf(path) == 'bias':
    return (int(np.prod(shape)),)
  return tuple(shape)


def _to_torch(path: str, value: np.ndarray) -> np.ndarray:
  if _leaf(path) == 'kernel':
    return value.reshape(value.shape[0], -1).T
  return value.reshape(_torch_shape(path, value.shape))


def _from_torch(path: str, value: np.ndarray, shape: tuple) -> np.ndarray:
  if _leaf(path) == 'kernel':
    return value.T.reshape(shape)
  return value.reshape(shape)


def to_hf(params: dict, blocks, vocab_size: int) -> dict[str, np.ndarray]:
  """HF's state dict (float32 numpy, torch layout) of the parameters in `blocks`; tables of the
  padded vocabulary are cut to its `vocab_size` real ids."""
  tensors = {}
  for ours, prefix in blocks:
    for path, value in _leaves(_subtree(params, ours)):
      name = hf_name(path)
      value = np.asarray(value, np.float32)
      if _vocab_rows(f'{ours}.{path}'):
        value = value[:vocab_size]
      tensors[f'{prefix}.{name}'] = np.ascontiguousarray(_to_torch(path, value))
  return tensors


def from_hf(tensors: dict[str, np.ndarray], abstract: dict, blocks, *, vocab_size: int, where: str,
            discard: tuple[str, ...] = ()) -> dict:
  """Our nested parameters for `blocks` of `abstract` (shapes), read from HF's `tensors`. Tables
  of the vocabulary (`vocab_size` rows in HF's files) get zero rows for the padding ids.

  Tensors under a `discard` prefix are deliberately not used (a head the target model lacks); any
  other tensor that no parameter takes, and any parameter missing or of another shape, is a
  UserError that lists them.
  """
  top = blocks[0][1].split('.')[0]  # 'electra' or 'model'.
  if not any(name.startswith(f'{top}.') for name in tensors):
    tensors = {f'{top}.{name}': value for name, value in tensors.items()}  # A bare base model.
  unused = {name for name in tensors if not _BUFFERS.search(name) and not name.startswith(discard)}
  problems, out = [], {}
  for ours, prefix in blocks:
    for path, wanted in _leaves(_subtree(abstract, ours)):
      name = hf_name(path)
      name = f'{prefix}.{name}'
      if name not in tensors:
        problems.append(f'{name} is missing')
        continue
      unused.discard(name)
      value = np.asarray(tensors[name], np.float32)
      if _vocab_rows(f'{ours}.{path}') and len(value) == vocab_size:
        value = np.concatenate([value, np.zeros((wanted.shape[0] - vocab_size, *value.shape[1:]),
                                                np.float32)])
      expected = _torch_shape(path, wanted.shape)
      if value.shape != expected:  # Reported in HF's (torch) layout, as the file holds it.
        problems.append(f'{name} is {tuple(value.shape)}, expected {expected}')
        continue
      value = _from_torch(path, value, wanted.shape)
      node = out
      keys = f'{ours}.{path}'.split('.')
      for key in keys[:-1]:
        node = node.setdefault(key, {})
      node[keys[-1]] = np.ascontiguousarray(value)
  problems += [f'{name} is not used' for name in sorted(unused)]
  if problems:
    raise UserError(f'{where} does not fit the model ({len(problems)} problems): '
                    f'{"; ".join(problems[:6])}{"; ..." if len(problems) > 6 else ""}')
  return _with_int_keys(out, abstract)


def _with_int_keys(tree: dict, like: dict) -> dict:
  """Layer lists are dicts keyed by int in our parameters; the walk above made them strings."""
  if not isinstance(like, dict):
    return tree
  keys = {str(k): k for k in like}
  return {keys[k]: _with_int_keys(v, like[keys[k]]) for k, v in tree.items()}
