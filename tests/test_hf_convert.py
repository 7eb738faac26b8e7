"""Parity with transformers' PyTorch ELECTRA: our weights exported load there and give the same logits;
HF weights imported and exported again are bit-identical; mismatches are listed."""

import numpy as np
import pytest
import torch
import transformers
from flax import nnx
import jax
import jax.numpy as jnp

from electra_jax import model, optimizer, pretrainer, sharding, step
from electra_jax.errors import UserError
from electra_jax.finetune.model import Finetuner
from electra_jax.hf import config_json, convert, folder, load
from tests.conftest import small_config

TOLERANCE = 1e-4  # Max abs difference of float32 logits (the bar).


def _inputs(vocab_size, batch=3, length=16, seed=0):
  """Random ids with [CLS]..[SEP] two segments and right padding of different lengths."""
  rng = np.random.default_rng(seed)
  ids = rng.integers(5, vocab_size, (batch, length)).astype(np.int32)
  lengths = [length, length - 5, 7][:batch]
  mask = (np.arange(length)[None] < np.array(lengths)[:, None]).astype(np.int32)
  segments = ((np.arange(length)[None] >= np.array(lengths)[:, None] // 2) * mask).astype(np.int32)
  return ids * mask, segments, mask


def _torch(*arrays):
  return [torch.tensor(np.asarray(a), dtype=torch.long) for a in arrays]


def _model_config():
  c = small_config().model
  c.num_layers = 2  # Layer indices above 0 are mapped too.
  c.vocab_size = 250  # Not a multiple of 128: our tables have padding rows that HF's do not.
  c.dropout_rate = c.attention_dropout_rate = 0.0
  return c


def _save(directory, hf_model_config, tensors):
  folder.write(str(directory), hf_model_config, tensors, {})
  return str(directory)


def _load_hf(cls, directory):
  loaded, info = cls.from_pretrained(directory, output_loading_info=True)
  assert not any(info.values()), info  # No missing, unexpected or mismatched tensors.
  return loaded.eval()


def test_hf_name():
  assert convert.hf_name('encoder.layer.3.attention.query.kernel') == (
      'encoder.layer.3.attention.self.query.weight')
  assert convert.hf_name('encoder.layer.0.attention.output.LayerNorm.scale') == (
      'encoder.layer.0.attention.output.LayerNorm.weight')
  assert convert.hf_name('word_embeddings.embedding') == 'word_embeddings.weight'
  assert convert.hf_name('dense.bias') == 'dense.bias'
  assert convert.hf_name('layers.2.attn.Wqkv.kernel') == 'layers.2.attn.Wqkv.weight'


def test_exported_pretrainer_logits_match_transformers(tmp_path):
  cfg = _model_config()
  pair = pretrainer.ElectraPretrainer(cfg, nnx.Rngs(params=1))
  params = nnx.to_pure_dict(nnx.state(pair, nnx.Param))
  ids, segments, mask = _inputs(cfg.vocab_size)

  disc = _load_hf(transformers.ElectraForPreTraining, _save(
      tmp_path / 'd', config_json.hf_config(cfg, 'ElectraForPreTraining'),
      convert.to_hf(params, convert.DISCRIMINATOR, cfg.vocab_size)))
  gen = _load_hf(transformers.ElectraForMaskedLM, _save(
      tmp_path / 'g', config_json.hf_config(cfg, 'ElectraForMaskedLM', generator=True),
      convert.to_hf(params, convert.generator_blocks(cfg), cfg.vocab_size)))
  assert cfg.embedding_size != cfg.hidden_size  # embeddings_project is exercised.
  assert gen.config.hidden_size == model.generator_sizes(cfg)[0] != cfg.hidden_size

  with torch.no_grad():
    theirs_disc = disc(*_torch(ids), attention_mask=_torch(mask)[0],
                       token_type_ids=_torch(segments)[0]).logits.numpy()
    theirs_gen = gen(*_torch(ids), attention_mask=_torch(mask)[0],
                     token_type_ids=_torch(segments)[0]).logits.numpy()
  ours_disc = pair.discriminator_logits(jnp.asarray(ids), jnp.asarray(segments),
                                              jnp.asarray(mask), deterministic=True)
  positions = jnp.broadcast_to(jnp.arange(ids.shape[1]), ids.shape)
  ours_gen = pair.generator_logits(jnp.asarray(ids), jnp.asarray(segments),
                                         jnp.asarray(mask), positions, deterministic=True)
  # Padded positions included: both attend to the real keys only.
  assert np.abs(np.asarray(ours_disc) - theirs_disc).max() < TOLERANCE
  assert np.isneginf(ours_gen[..., cfg.vocab_size:]).all()  # Padding ids of the vocabulary.
  assert np.abs(np.asarray(ours_gen[..., :cfg.vocab_size]) - theirs_gen).max() < TOLERANCE
  assert np.abs(theirs_disc).max() > 1e-3  # Not trivially equal.


def test_a_gdes_discriminator_exports_with_its_delta_folded_in(tmp_path):
  cfg = _model_config()
  cfg.embedding_sharing = 'gdes'
  pair = pretrainer.ElectraPretrainer(cfg, nnx.Rngs(params=1))
  delta = pair.embedding_delta.embedding
  delta[...] = 0.05 * jax.random.normal(jax.random.key(2), delta.shape)
  params = pretrainer.fold_embedding_delta(nnx.to_pure_dict(nnx.state(pair, nnx.Param)))
  disc = _load_hf(transformers.ElectraForPreTraining, _save(
      tmp_path / 'd', config_json.hf_config(cfg, 'ElectraForPreTraining'),
      convert.to_hf(params, convert.DISCRIMINATOR, cfg.vocab_size)))
  ids, segments, mask = _inputs(cfg.vocab_size)
  with torch.no_grad():
    theirs = disc(*_torch(ids), attention_mask=_torch(mask)[0],
                  token_type_ids=_torch(segments)[0]).logits.numpy()
  ours = pair.discriminator_logits(jnp.asarray(ids), jnp.asarray(segments),
                                         jnp.asarray(mask), deterministic=True)
  assert np.abs(np.asarray(ours) - theirs).max() < TOLERANCE
  # Without the delta the logits differ: the test sees it.
  unfolded = convert.to_hf(nnx.to_pure_dict(nnx.state(pair, nnx.Param)),
                           convert.DISCRIMINATOR, cfg.vocab_size)
  assert not np.allclose(unfolded['electra.embeddings.word_embeddings.weight'],
                         disc.state_dict()['electra.embeddings.word_embeddings.weight'].numpy())


def test_the_mlm_baseline_exports_as_a_masked_lm_with_our_logits(tmp_path):
  cfg = _model_config()
  mlm = pretrainer.MaskedLM(cfg, nnx.Rngs(params=1))
  params = nnx.to_pure_dict(nnx.state(mlm, nnx.Param))
  hf = _load_hf(transformers.ElectraForMaskedLM, _save(
      tmp_path / 'm', config_json.hf_config(cfg, 'ElectraForMaskedLM'),
      convert.to_hf(params, convert.MASKED_LM, cfg.vocab_size)))
  assert hf.config.hidden_size == cfg.hidden_size
  ids, segments, mask = _inputs(cfg.vocab_size)
  with torch.no_grad():
    theirs = hf(*_torch(ids), attention_mask=_torch(mask)[0],
                token_type_ids=_torch(segments)[0]).logits.numpy()
  positions = jnp.broadcast_to(jnp.arange(ids.shape[1]), ids.shape)
  ours = mlm.mlm_logits(jnp.asarray(ids), jnp.asarray(segments), jnp.asarray(mask), positions,
                        deterministic=True)
  assert np.abs(np.asarray(ours[..., :cfg.vocab_size]) - theirs).max() < TOLERANCE
  assert np.abs(theirs).max() > 1e-3


@pytest.mark.parametrize('head', ['classification', 'regression', 'tagging'])
def test_exported_finetuner_logits_match_transformers(tmp_path, head):
  cfg = _model_config()
  outputs = {'classification': 3, 'regression': 1, 'tagging': 4}[head]
  finetuner = Finetuner(cfg, head, outputs, nnx.Rngs(params=2))
  architecture = ('ElectraForTokenClassification' if head == 'tagging' else
                  'ElectraForSequenceClassification')
  hf_config = config_json.hf_config(cfg, architecture, id2label={i: f'l{i}' for i in range(outputs)})
  theirs_model = _load_hf(getattr(transformers, architecture), _save(
      tmp_path / head, hf_config, convert.to_hf(nnx.to_pure_dict(nnx.state(finetuner, nnx.Param)),
                                                convert.FINETUNED, cfg.vocab_size)))
  ids, segments, mask = _inputs(cfg.vocab_size, seed=3)
  with torch.no_grad():
    theirs = theirs_model(*_torch(ids), attention_mask=_torch(mask)[0],
                          token_type_ids=_torch(segments)[0]).logits.numpy()
  ours = np.asarray(finetuner({'input_ids': ids, 'segment_ids': segments, 'input_mask': mask},
                              deterministic=True)['logits'])
  assert np.abs(ours.reshape(theirs.shape) - theirs).max() < TOLERANCE


def _hf_pair(directory, cfg):
  """Random transformers models of cfg's sizes, saved as discriminator/ and generator/ with the
  embeddings shared, as ELECTRA trains them."""
  torch.manual_seed(0)
  disc = transformers.ElectraForPreTraining(transformers.ElectraConfig(
      **config_json.hf_config(cfg, 'ElectraForPreTraining')))
  gen = transformers.ElectraForMaskedLM(transformers.ElectraConfig(
      **config_json.hf_config(cfg, 'ElectraForMaskedLM', generator=True)))
  for m in (disc, gen):  # Biases and LayerNorms start at 0 and 1: make every tensor distinct.
    for p in m.parameters():
      if p.ndim == 1:
        torch.nn.init.normal_(p, std=0.1)
  gen.electra.embeddings.load_state_dict(disc.electra.embeddings.state_dict())
  disc.save_pretrained(directory / 'discriminator')
  gen.save_pretrained(directory / 'generator')
  return disc, gen


def _abstract_params(config):
  mesh = sharding.make_mesh(config.mesh)
  training = step.build(step.rtd_objective(config), *optimizer.create(config.train), mesh,
                        config.mesh.rules)
  return training.abstract_state.params


def test_hf_to_ours_to_hf_is_bit_identical(tmp_path):
  config = small_config()
  config.model = _model_config()
  disc, gen = _hf_pair(tmp_path, config.model)
  config.init_from_hf = str(tmp_path)
  params = jax.device_get(load.pretrainer_params(config, _abstract_params(config)))
  for theirs, blocks in ((disc, convert.DISCRIMINATOR),
                         (gen, convert.generator_blocks(config.model))):
    expected = {k: v.numpy() for k, v in theirs.state_dict().items()
                if k != 'generator_lm_head.weight'}  # Tied to the word embeddings.
    ours = convert.to_hf(params, blocks, config.model.vocab_size)
    assert ours.keys() == expected.keys()
    for name, value in expected.items():
      assert ours[name].dtype == value.dtype and np.array_equal(ours[name], value), name


def test_import_lists_every_problem(tmp_path):
  config = small_config()
  config.model = _model_config()
  _hf_pair(tmp_path, config.model)
  tensors = folder.read_tensors(str(tmp_path / 'discriminator'))
  tensors['electra.encoder.layer.1.intermediate.dense.weight'] = np.zeros((5, 5), np.float32)
  tensors['electra.pooler.dense.weight'] = np.zeros((5, 5), np.float32)
  del tensors['electra.embeddings.LayerNorm.bias']
  with pytest.raises(UserError) as e:
    convert.from_hf(tensors, _abstract_params(config), convert.DISCRIMINATOR,
                    vocab_size=config.model.vocab_size, where='the folder')
  message = str(e.value)
  assert '3 problems' in message
  assert 'electra.embeddings.LayerNorm.bias is missing' in message
  assert 'electra.encoder.layer.1.intermediate.dense.weight is (5, 5), expected (128, 64)' in message
  assert 'electra.pooler.dense.weight is not used' in message


def test_import_refuses_embeddings_that_differ_when_shared(tmp_path):
  config = small_config()
  config.model = _model_config()
  _, gen = _hf_pair(tmp_path, config.model)
  torch.nn.init.normal_(gen.electra.embeddings.LayerNorm.weight)
  gen.save_pretrained(tmp_path / 'generator')
  config.init_from_hf = str(tmp_path)
  with pytest.raises(UserError, match='embedding_sharing=untied'):
    load.pretrainer_params(config, _abstract_params(config))
  config.model.embedding_sharing = 'untied'
  params = jax.device_get(load.pretrainer_params(config, _abstract_params(config)))
  assert np.array_equal(params['generator_embeddings']['LayerNorm']['scale'],
                        gen.electra.embeddings.LayerNorm.weight.detach().numpy())


def test_pytorch_bin_is_read_with_weights_only(tmp_path):
  config = small_config()
  config.model = _model_config()
  disc, _ = _hf_pair(tmp_path, config.model)
  bin_dir = tmp_path / 'bin'  # As older transformers versions saved them.
  bin_dir.mkdir()
  torch.save(disc.state_dict(), bin_dir / folder.TORCH_BIN)
  tensors = folder.read_tensors(str(bin_dir))
  assert np.array_equal(tensors['discriminator_predictions.dense.weight'],
                        disc.discriminator_predictions.dense.weight.detach().numpy())
  torch.save({'weights': disc.state_dict(), 'code': _Pickled()}, tmp_path / folder.TORCH_BIN)
  with pytest.raises(UserError, match='weights-only|plain weights'):
    folder.read_tensors(str(tmp_path))


class _Pickled:
  """An arbitrary object: torch's weights-only loader must refuse to unpickle it."""
