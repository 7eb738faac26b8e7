"""The presets carry the paper's numbers (Table 6) and build models of the paper's sizes; the ModernBERT
preset builds transformers' ModernBERT-base."""

import jax
from flax import nnx
import numpy as np
import pytest
import torch
import transformers

from configs import base, large, modernbert_base, small, tiny
from electra_jax import model, pretrainer, validation


def _millions(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree)) / 1e6


@pytest.mark.parametrize(
    'preset,layers,hidden,heads,ffn,embedding,gen_hidden,mask,lr,batch,length,steps,params', [
    (small, 12, 256, 4, 1024, 128, 64, 0.15, 5e-4, 128, 128, 1_000_000, 13.5),
    (base, 12, 768, 12, 3072, 768, 256, 0.15, 2e-4, 256, 512, 766_000, 108.9),
    (large, 24, 1024, 16, 4096, 1024, 256, 0.25, 2e-4, 2048, 512, 400_000, 334.1),
])
def test_paper_presets(preset, layers, hidden, heads, ffn, embedding, gen_hidden, mask, lr, batch,
                       length, steps, params):
  c = preset.get_config()
  m = c.model
  assert (m.num_layers, m.hidden_size, m.num_heads, m.intermediate_size, m.embedding_size) == (
      layers, hidden, heads, ffn, embedding)
  assert model.generator_sizes(m)[0] == gen_hidden
  assert (c.objective.mask_prob, c.train.learning_rate, c.train.batch_size) == (mask, lr, batch)
  assert (c.data.max_seq_length, c.train.steps, c.train.warmup_steps) == (length, steps, 10_000)
  assert (c.objective.disc_weight, c.objective.gen_weight, m.embedding_sharing) == (50.0, 1.0,
                                                                                   'shared')
  abstract = nnx.eval_shape(lambda: pretrainer.ElectraPretrainer(m, nnx.Rngs(params=0)))
  state = nnx.to_pure_dict(nnx.state(abstract, nnx.Param))
  # The discriminator that users keep: shared embeddings + its transformer + head (BERT-style count).
  discriminator = _millions(state['embeddings']) + _millions(state['discriminator'])
  assert discriminator == pytest.approx(params, rel=0.01)


def test_tiny_is_small_enough_for_a_laptop():
  c = tiny.get_config()
  abstract = nnx.eval_shape(lambda: pretrainer.ElectraPretrainer(c.model, nnx.Rngs(params=0)))
  assert _millions(nnx.state(abstract, nnx.Param)) < 1.0


def test_modernbert_base_builds_transformers_modernbert_base():
  c = modernbert_base.get_config()
  validation.validate(c, num_devices=1)
  abstract = nnx.eval_shape(lambda: pretrainer.ElectraPretrainer(c.model, nnx.Rngs(params=0)))
  state = nnx.to_pure_dict(nnx.state(abstract, nnx.Param))
  padding_rows = model.padded_vocab_size(c.model) - c.model.vocab_size
  ours = (_millions(state['embeddings']) + _millions(state['discriminator'])
          - padding_rows * c.model.hidden_size / 1e6)
  with torch.device('meta'):  # Shapes only.
    theirs = transformers.ModernBertForTokenClassification(
        transformers.ModernBertConfig(num_labels=1))
  assert ours == pytest.approx(sum(p.numel() for p in theirs.parameters()) / 1e6, abs=1e-6)
  assert model.generator_sizes(c.model)[3] == 11


@pytest.mark.parametrize('preset', [tiny, small, base, large])
def test_every_preset_builds_with_modernbert(preset):
  c = preset.get_config()
  c.model.architecture = 'modernbert'
  validation.validate(c, num_devices=1)
  abstract = nnx.eval_shape(lambda: pretrainer.ElectraPretrainer(c.model, nnx.Rngs(params=0)))
  params = nnx.to_pure_dict(nnx.state(abstract, nnx.Param))
  assert len(params['generator']['model']['layers']) == max(1, c.model.num_layers // 2)
  assert params['discriminator']['model']['layers'][1]['mlp']['Wi']['kernel'].shape == (
      c.model.hidden_size, 2, c.model.intermediate_size)
