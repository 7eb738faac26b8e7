"""ModernBERT (config.model.architecture='modernbert'): parity with transformers' ModernBERT classes
through our export, and a run that trains, exports and fine-tunes (tests/test_model.py checks scan
and remat on it, tests/test_step.py its sharded step, tests/test_flops.py its FLOPs)."""

import os
import shutil

import numpy as np
import pytest
import torch
import transformers
from flax import nnx
import jax
import jax.numpy as jnp

from electra_jax import (export, model, modernbert, optimizer, pretrainer, sharding, step, train,
                         workdir)
from electra_jax.errors import UserError
from electra_jax.hf import config_json, convert, folder, load
from tests.conftest import (check_finetuned_export, pretraining_config, read_metrics, small_config,
                            write_bpe_tokenizer_json, write_corpus)

TOLERANCE = 1e-4  # Max abs difference of float32 logits.
DATA = small_config().data  # Holds the special tokens' ids.
LENGTH = 24  # Three times the window below: every sliding layer cuts some keys off.


def _model_config(**overrides):
  c = small_config().model
  c.update(architecture='modernbert', hidden_size=32, num_heads=2, intermediate_size=48,
           num_layers=4, vocab_size=250, local_attention=8, max_position_embeddings=64)
  c.update(overrides)
  return c


def _inputs(vocab_size, batch=3, seed=0):
  """Random ids, right-padded to lengths 24, 17 and 7 (the last shorter than a window's span)."""
  rng = np.random.default_rng(seed)
  ids = rng.integers(5, vocab_size, (batch, LENGTH)).astype(np.int32)
  lengths = np.array([LENGTH, 17, 7][:batch])
  mask = (np.arange(LENGTH)[None] < lengths[:, None]).astype(np.int32)
  return ids * mask, np.zeros_like(ids), mask


def _load_hf(cls, directory, config, tensors):
  folder.write(str(directory), config, tensors, {})
  loaded, info = cls.from_pretrained(str(directory), output_loading_info=True,
                                     attn_implementation='eager')
  assert not any(info.values()), info  # No missing, unexpected or mismatched tensors.
  return loaded.eval()


def _randomise_biases(module, seed=3):
  """Biases and norm offsets start at zero; parity must hold for trained (non-zero) ones."""
  state = nnx.state(module, nnx.Param)
  leaves, treedef = jax.tree_util.tree_flatten_with_path(nnx.to_pure_dict(state))
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  nnx.replace_by_pure_dict(state, jax.tree_util.tree_unflatten(treedef, [
      v + 0.1 * jax.random.normal(k, v.shape) if path[-1].key == 'bias' else v
      for (path, v), k in zip(leaves, keys)]))
  nnx.update(module, state)


# Defaults (no biases) and every optional bias switched on (the fused biases' layout is exercised).
CONFIGS = {'defaults': {}, 'biases': dict(norm_bias=True, attention_bias=True, mlp_bias=True,
                                          classifier_bias=True)}


@pytest.mark.parametrize('name', CONFIGS)
def test_exported_pair_logits_match_transformers(tmp_path, name):
  cfg = _model_config(**CONFIGS[name])
  pair = pretrainer.ElectraPretrainer(cfg, nnx.Rngs(params=1))
  _randomise_biases(pair)
  params = nnx.to_pure_dict(nnx.state(pair, nnx.Param))
  exports = {e.folder: e for e in convert.pretraining_exports(cfg, 'rtd')}
  models = {
      name: _load_hf(getattr(transformers, e.architecture), tmp_path / name,
                     config_json.hf_config(cfg, e.architecture, generator=e.generator,
                                           special_ids=DATA, **(e.extra or {})),
                     convert.to_hf(params, e.blocks, cfg.vocab_size))
      for name, e in exports.items()}
  assert models['generator'].config.num_hidden_layers == model.generator_sizes(cfg)[3] == 2
  assert models['discriminator'].config.layer_types == [
      'full_attention', 'sliding_attention', 'sliding_attention', 'full_attention']

  ids, segments, mask = _inputs(cfg.vocab_size)
  with torch.no_grad():
    theirs = {name: m(torch.tensor(ids, dtype=torch.long),
                      attention_mask=torch.tensor(mask, dtype=torch.long)).logits.numpy()
              for name, m in models.items()}
  ours_disc = pair.discriminator_logits(jnp.asarray(ids), jnp.asarray(segments),
                                        jnp.asarray(mask), deterministic=True)
  positions = jnp.broadcast_to(jnp.arange(LENGTH), ids.shape)
  ours_gen = pair.generator_logits(jnp.asarray(ids), jnp.asarray(segments), jnp.asarray(mask),
                                   positions, deterministic=True)
  real = mask.astype(bool)  # Padded queries are free to differ; real ones must not.
  assert np.abs(np.asarray(ours_disc) - theirs['discriminator'][..., 0])[real].max() < TOLERANCE
  assert np.isneginf(ours_gen[..., cfg.vocab_size:]).all()
  assert np.abs(np.asarray(ours_gen[..., :cfg.vocab_size]) - theirs['generator'])[real].max() < (
      TOLERANCE)
  assert np.isfinite(np.asarray(ours_disc)).all()  # Padding that a window sees only: no NaN.


def test_the_sliding_window_reaches_half_of_local_attention():
  """A key at distance local_attention / 2 is seen, one further is not (transformers' mask; the
  parity test above checks the whole model)."""
  cfg = _model_config()
  with nnx.use_eager_sharding(False):
    attn = modernbert.Model(cfg, 2, nnx.Rngs(params=0)).layers[1].attn
  window = cfg.local_attention // 2
  x = jax.random.normal(jax.random.key(0), (1, LENGTH, cfg.hidden_size))
  mask = jnp.ones((1, LENGTH), jnp.int32)
  rope = modernbert.rotary(LENGTH, cfg.hidden_size // cfg.num_heads, cfg.local_rope_theta)
  out = lambda x: attn(x, mask, rope, window, deterministic=True, rngs=None)[0, 0]
  moved = [float(np.abs(out(x.at[0, d].add(10.0)) - out(x)).max()) for d in range(1, LENGTH)]
  assert min(moved[:window]) > 1e-4 and max(moved[window:]) == 0, moved


def test_the_mlm_baseline_exports_as_a_modernbert_masked_lm(tmp_path):
  cfg = _model_config()
  mlm = pretrainer.MaskedLM(cfg, nnx.Rngs(params=1))
  params = nnx.to_pure_dict(nnx.state(mlm, nnx.Param))
  (masked_lm,) = convert.pretraining_exports(cfg, 'mlm')
  hf = _load_hf(transformers.ModernBertForMaskedLM, tmp_path / 'm',
                config_json.hf_config(cfg, masked_lm.architecture, special_ids=DATA), convert.to_hf(
                    params, masked_lm.blocks, cfg.vocab_size))
  assert hf.config.num_hidden_layers == cfg.num_layers
  ids, segments, mask = _inputs(cfg.vocab_size)
  with torch.no_grad():
    theirs = hf(torch.tensor(ids, dtype=torch.long),
                attention_mask=torch.tensor(mask, dtype=torch.long)).logits.numpy()
  positions = jnp.broadcast_to(jnp.arange(LENGTH), ids.shape)
  ours = mlm.mlm_logits(jnp.asarray(ids), jnp.asarray(segments), jnp.asarray(mask), positions,
                        deterministic=True)
  real = mask.astype(bool)
  assert np.abs(np.asarray(ours[..., :cfg.vocab_size]) - theirs)[real].max() < TOLERANCE


def test_import_inverts_export():
  cfg = _model_config(norm_bias=True, attention_bias=True, mlp_bias=True)
  pair = pretrainer.ElectraPretrainer(cfg, nnx.Rngs(params=1))
  params = nnx.to_pure_dict(nnx.state(pair, nnx.Param))
  for e in convert.pretraining_exports(cfg, 'rtd'):
    tensors = convert.to_hf(params, e.blocks, cfg.vocab_size)
    assert tensors['model.layers.1.attn.Wqkv.weight'].shape == (3 * 32, 32)
    assert tensors['model.layers.1.mlp.Wi.bias'].shape == (2 * 48,)
    back = convert.from_hf(tensors, params, e.blocks, vocab_size=cfg.vocab_size, where='test')
    again = convert.to_hf(back, e.blocks, cfg.vocab_size)
    assert tensors.keys() == again.keys()
    for name, value in tensors.items():
      np.testing.assert_array_equal(again[name], value, err_msg=name)


def test_a_gdes_delta_folds_into_the_token_table():
  cfg = _model_config(embedding_sharing='gdes')
  pair = pretrainer.ElectraPretrainer(cfg, nnx.Rngs(params=1))
  delta = pair.embedding_delta.embedding
  delta[...] = 0.05 * jax.random.normal(jax.random.key(2), delta.shape)
  params = nnx.to_pure_dict(nnx.state(pair, nnx.Param))
  folded = pretrainer.fold_embedding_delta(params)
  np.testing.assert_allclose(folded['embeddings']['tok_embeddings']['embedding'],
                             params['embeddings']['tok_embeddings']['embedding'] + delta[...])
  assert 'embedding_delta' not in folded


@pytest.fixture(scope='module')
def modernbert_run(tmp_path_factory):
  """A short ModernBERT RTD run on a text corpus with a byte-level BPE tokenizer.json (as released
  ModernBERTs have; its [PAD] is not id 0), and its export."""
  root = tmp_path_factory.mktemp('modernbert')
  config = pretraining_config(str(root))
  config.data.tokenizer = write_bpe_tokenizer_json(
      root / 'tokenizer.json', write_corpus(str(root / 'corpus'), documents=80))
  config.model.update(architecture='modernbert', num_layers=3, local_attention=8, vocab_size=640)
  train.train_and_evaluate(config, str(root / 'run'))
  written = export.export(str(root / 'run'), str(root / 'hf'))
  return str(root / 'run'), str(root / 'hf'), written


def test_a_run_exports_to_the_auto_classes_with_our_outputs(modernbert_run):
  run_dir, output, written = modernbert_run
  assert written == [('discriminator', 'ModernBertForTokenClassification'),
                     ('generator', 'ModernBertForMaskedLM')]
  run = workdir.open_run(run_dir, '--workdir')
  tokenizer = transformers.AutoTokenizer.from_pretrained(os.path.join(output, 'discriminator'))
  texts = ['the model reads text', 'the generator learns on every device of the mesh']
  batch = tokenizer(texts, padding=True, return_tensors='pt')
  ids, mask = batch['input_ids'].numpy(), batch['attention_mask'].numpy()
  special = run.tokenizer.special_ids
  assert [list(row[m > 0][1:-1]) for row, m in zip(ids, mask)] == run.tokenizer.encode(texts)
  assert ids[0, 0] == special['cls_id'] and ids[1, -1] == special['sep_id']
  assert special['pad_id'] != 0 and ids[0, -1] == special['pad_id']
  ids = np.where(mask > 0, ids, 0)  # Our batches are padded with 0 whatever [PAD] is.
  loaded = {}
  for name, cls in (('discriminator', transformers.AutoModelForTokenClassification),
                    ('generator', transformers.AutoModelForMaskedLM)):
    hf_model, info = cls.from_pretrained(os.path.join(output, name), output_loading_info=True)
    assert not any(info.values()), info
    assert hf_model.config.model_type == 'modernbert'
    loaded[name] = hf_model.eval()
  assert loaded['discriminator'].config.num_labels == 1

  ours = pretrainer.ElectraPretrainer(run.config.model, nnx.Rngs(0))
  state = nnx.state(ours, nnx.Param)
  nnx.replace_by_pure_dict(state, export._restore_params(  # pylint: disable=protected-access
      os.path.join(run_dir, 'checkpoints'),
      lambda: pretrainer.ElectraPretrainer(run.config.model, nnx.Rngs(0))))
  nnx.update(ours, state)
  with torch.no_grad():
    theirs_disc = loaded['discriminator'](**batch).logits.numpy()[..., 0]
    theirs_gen = loaded['generator'](**batch).logits.numpy()
  ours_disc = ours.discriminator_logits(jnp.asarray(ids), jnp.zeros_like(jnp.asarray(ids)),
                                        jnp.asarray(mask), deterministic=True)
  positions = jnp.broadcast_to(jnp.arange(ids.shape[1]), ids.shape)
  ours_gen = ours.generator_logits(jnp.asarray(ids), jnp.zeros_like(jnp.asarray(ids)),
                                   jnp.asarray(mask), positions, deterministic=True)
  real = mask.astype(bool)
  assert np.abs(np.asarray(ours_disc) - theirs_disc)[real].max() < TOLERANCE
  vocab = run.config.model.vocab_size
  assert np.abs(np.asarray(ours_gen[..., :vocab]) - theirs_gen)[real].max() < TOLERANCE


def test_a_run_fine_tunes_and_exports_as_sequence_classification(modernbert_run, tmp_path):
  check_finetuned_export(str(tmp_path), 'ModernBertForSequenceClassification',
                         init_checkpoint=modernbert_run[0])


@pytest.fixture(scope='module')
def released(tmp_path_factory):
  """A folder as a released ModernBERT ships: a ModernBertForMaskedLM that transformers writes (from
  random weights, every norm and bias distinct) and a byte-level BPE tokenizer.json built with the
  tokenizers library. Returns the pre-training config of its corpus, and the folder."""
  root = tmp_path_factory.mktemp('released')
  corpus = write_corpus(str(root / 'corpus'), documents=80)
  tokenizer = write_bpe_tokenizer_json(root / 'tokenizer.json', corpus)
  ids = {name: transformers.PreTrainedTokenizerFast(tokenizer_file=tokenizer).convert_tokens_to_ids(
      token) for name, token in (('pad', '[PAD]'), ('cls', '[CLS]'), ('sep', '[SEP]'))}
  torch.manual_seed(0)
  masked_lm = transformers.ModernBertForMaskedLM(transformers.ModernBertConfig(
      vocab_size=640, hidden_size=32, intermediate_size=48, num_hidden_layers=4,
      num_attention_heads=2, local_attention=8, max_position_embeddings=128,
      classifier_pooling='mean', pad_token_id=ids['pad'], cls_token_id=ids['cls'], bos_token_id=ids['cls'],
      sep_token_id=ids['sep'], eos_token_id=ids['sep']))
  for p in masked_lm.parameters():
    if p.ndim == 1:
      torch.nn.init.normal_(p, std=0.1)
  masked_lm.save_pretrained(root / 'released')
  shutil.copy(tokenizer, root / 'released')
  return pretraining_config(str(root)), str(root / 'released')


def _initialised(config):
  """The pre-training config and params that a run from config.init_from_hf starts with, and the
  params it would have had from random weights."""
  config = load.pretraining_config(config)
  mesh = sharding.make_mesh(config.mesh)
  training = step.build(step.rtd_objective(config), *optimizer.create(config.train), mesh,
                        config.mesh.rules)
  params = training.init(jax.random.key(0)).params
  return config, jax.device_get(load.pretrainer_params(config, params)), jax.device_get(params)


def test_a_released_masked_lm_starts_the_discriminator_and_a_shallower_generator(released):
  """The discriminator reads what transformers' token classifier would (all but the classifier),
  the generator the first half of the layers, the final norm, head and decoder."""
  config, folder_path = released
  config = config.copy_and_resolve_references()
  config.init_from_hf = folder_path
  config, params, initial = _initialised(config)
  m = config.model
  assert (m.architecture, m.num_layers, m.vocab_size, m.local_attention) == ('modernbert', 4, 640, 8)
  assert config.data.tokenizer == os.path.join(folder_path, 'tokenizer.json')
  tensors = folder.read_tensors(folder_path)
  tensors.pop('decoder.weight', None)  # Tied to the token table.
  disc = convert.to_hf(params, convert.MODERNBERT_FROM_MASKED_LM, m.vocab_size)
  gen = convert.to_hf(params, convert.pretraining_exports(m, 'rtd')[1].blocks, m.vocab_size)
  assert disc.keys() == {name for name in tensors if not name.startswith('decoder.')}
  # The generator: embeddings, the first half of the layers, final norm, head and decoder.
  assert gen.keys() == {name for name in tensors if not name.startswith(('model.layers.2.',
                                                                         'model.layers.3.'))}
  for name in (*disc, *gen):
    np.testing.assert_array_equal((disc | gen)[name], tensors[name], err_msg=name)
  # The one-logit classifier starts new; ModernBERT-base's pooling carries over to fine-tuning.
  jax.tree.map(np.testing.assert_array_equal, params['discriminator']['classifier'],
               initial['discriminator']['classifier'])
  assert m.classifier_pooling == 'mean'
  config.model.generator_num_layers = 5
  with pytest.raises(UserError, match='generator_num_layers=5 exceeds the 4 layers'):
    load.pretraining_config(config)


def test_our_exported_pair_starts_the_run_it_came_from(modernbert_run):
  """Export then init_from_hf gives back every parameter of the run's checkpoint."""
  run_dir, output, _ = modernbert_run
  run = workdir.open_run(run_dir, '--workdir')
  config = run.config.copy_and_resolve_references()
  config.init_from_hf, config.data.tokenizer = output, ''
  _, params, _ = _initialised(config)
  saved = export._restore_params(  # pylint: disable=protected-access
      os.path.join(run_dir, 'checkpoints'),
      lambda: pretrainer.ElectraPretrainer(run.config.model, nnx.Rngs(0)))
  saved = pretrainer.fold_embedding_delta(saved)
  jax.tree.map(np.testing.assert_array_equal, params, jax.device_get(saved))


def test_a_released_masked_lm_continues_pretraining_and_fine_tunes(released, tmp_path):
  config, folder_path = released
  config = config.copy_and_resolve_references()
  config.init_from_hf = folder_path
  run_dir = str(tmp_path / 'run')
  train.train_and_evaluate(config, run_dir)
  last = [r for r in read_metrics(run_dir) if r.get('split') == 'train'][-1]
  assert last['step'] == config.train.steps and np.isfinite(last['loss'])
  # A rerun continues without the folder: sizes and tokenizer are the ones the run recorded.
  config.init_from_hf = ''
  state = train.train_and_evaluate(config, run_dir)
  assert int(state.step) == config.train.steps
  (tmp_path / 'finetuned').mkdir()
  check_finetuned_export(str(tmp_path / 'finetuned'), 'ModernBertForSequenceClassification',
                         init_from_hf=folder_path)


def test_sliding_layers_leave_cudnn_for_xla():
  """jax's cuDNN attention takes a window only with a causal mask: a sliding layer asked for cuDNN
  computes XLA's (here, on CPU, cuDNN would fail)."""
  q, k, v = jax.random.normal(jax.random.key(0), (3, 2, LENGTH, 2, 8))
  mask = jnp.asarray(_inputs(250)[2][:2])
  xla = model.attention(q, k, v, mask, implementation='xla', window=4)
  np.testing.assert_array_equal(model.attention(q, k, v, mask, implementation='cudnn', window=4), xla)
