import functools

from flax import nnx
import jax.numpy as jnp
import numpy as np
import pytest

from electra_jax.finetune.model import Finetuner


@pytest.mark.parametrize('head,shapes', [
    ('classification', {'logits': (2, 3)}),
    ('regression', {'logits': (2,)}),
    ('tagging', {'logits': (2, 8, 3)}),
    ('span', {'start_logits': (2, 8), 'end_logits': (2, 8), 'answerable_logits': (2,)}),
])
def test_heads_give_their_outputs(config, head, shapes):
  model = Finetuner(config.model, head, 3, nnx.Rngs(0))
  batch = {'input_ids': jnp.ones((2, 8), jnp.int32), 'segment_ids': jnp.zeros((2, 8), jnp.int32),
           'input_mask': jnp.ones((2, 8), jnp.int32)}
  outputs = model(batch, deterministic=True)
  assert {k: v.shape for k, v in outputs.items()} == shapes
  assert all(v.dtype == jnp.float32 for v in outputs.values())


@pytest.mark.parametrize('classifier_head', ['hf', 'original'])
def test_the_sequence_head_reads_cls(config, classifier_head):
  """Hugging Face's names, and the [CLS] vector (position 0) as the only input of the head."""
  model = Finetuner(config.model, 'classification', 2, nnx.Rngs(0), classifier_head)
  params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
  assert set(params) == {'embeddings', 'electra', 'classifier'}
  assert set(params['classifier']) == ({'dense', 'out_proj'} if classifier_head == 'hf' else
                                       {'kernel', 'bias'})
  batch = {'input_ids': jnp.array([[2, 7, 8, 3]]), 'segment_ids': jnp.zeros((1, 4), jnp.int32),
           'input_mask': jnp.ones((1, 4), jnp.int32)}
  hidden = model.electra(model.embeddings(batch['input_ids'], batch['segment_ids'],
                                          deterministic=True, rngs=None),
                         batch['input_mask'], deterministic=True, rngs=None)
  head = (functools.partial(model.classifier, deterministic=True, rngs=None)
          if classifier_head == 'hf' else model.classifier)
  np.testing.assert_allclose(model(batch, deterministic=True)['logits'], head(hidden[:, 0]),
                             rtol=1e-5)
