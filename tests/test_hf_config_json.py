"""config.json in both directions: what transformers writes reads back as the model it describes,
and what our models cannot build is refused with the field named."""

import pytest
import transformers

from electra_jax import model
from electra_jax.errors import UserError
from electra_jax.hf import config_json
from tests.conftest import small_config

DATA = small_config().data  # Holds the special tokens' ids.


def _modernbert(**overrides):
  c = small_config().model
  c.update(architecture='modernbert', hidden_size=32, num_heads=2, intermediate_size=48,
           num_layers=5, vocab_size=250, local_attention=8, global_attn_every_n_layers=2,
           global_rope_theta=80_000.0, norm_bias=True, mlp_dropout=0.1, generator_num_layers=2)
  c.update(overrides)
  return c


def test_electra_sizes_read_back_and_what_cannot_be_built_is_refused():
  cfg = small_config().model
  disc = config_json.hf_config(cfg, 'ElectraForPreTraining')
  gen = config_json.hf_config(cfg, 'ElectraForMaskedLM', generator=True)
  built = config_json.model_config(cfg, disc, gen, 'x')
  for key in ('hidden_size', 'num_layers', 'num_heads', 'intermediate_size', 'embedding_size'):
    assert built[key] == cfg[key]
  assert model.generator_sizes(built) == model.generator_sizes(cfg)
  with pytest.raises(UserError, match='hidden_act'):
    config_json.model_config(cfg, {**disc, 'hidden_act': 'relu'}, None, 'x')
  with pytest.raises(UserError, match='heads'):
    config_json.model_config(cfg, disc, {**gen, 'num_attention_heads': 3}, 'x')
  with pytest.raises(UserError, match="model_type 'bert'"):
    config_json.model_config(cfg, {**disc, 'model_type': 'bert'}, None, 'x')


def test_modernbert_fields_read_back_from_ours_and_from_transformers():
  cfg = _modernbert()
  disc = config_json.hf_config(cfg, 'ModernBertForTokenClassification', special_ids=DATA)
  gen = config_json.hf_config(cfg, 'ModernBertForMaskedLM', generator=True, special_ids=DATA)
  built = config_json.model_config(small_config().model, disc, gen, 'x')
  assert built.architecture == 'modernbert'
  for key in config_json.folder_fields(cfg):
    assert built[key] == cfg[key], key
  # What transformers itself writes (layer_types and rope_parameters), and a config.json from before
  # them (global_attn_every_n_layers, *_rope_theta), describe the same model.
  theirs = transformers.ModernBertConfig(
      vocab_size=250, hidden_size=32, intermediate_size=48, num_hidden_layers=5,
      num_attention_heads=2, local_attention=8, global_attn_every_n_layers=2,
      global_rope_theta=80_000.0, norm_bias=True, mlp_dropout=0.1,
      max_position_embeddings=cfg.max_position_embeddings, pad_token_id=0,
      bos_token_id=2, eos_token_id=3, cls_token_id=2, sep_token_id=3).to_dict()
  legacy = {key: value for key, value in disc.items()
            if key not in ('layer_types', 'rope_parameters')}
  for hf in (theirs, legacy):
    read = config_json.model_config(small_config().model, hf, None, 'x')
    for key in config_json.folder_fields(cfg):
      if key != 'generator_num_layers':
        assert read[key] == cfg[key], key


@pytest.mark.parametrize('change, message', [
    ({'hidden_activation': 'silu'}, 'hidden_activation'),
    ({'tie_word_embeddings': False}, 'tie_word_embeddings'),
    ({'rope_parameters': {'full_attention': {'rope_type': 'yarn', 'rope_theta': 1.0}}}, 'yarn'),
    ({'layer_types': ['full_attention', 'sliding_attention', 'sliding_attention',
                      'full_attention', 'full_attention']}, 'layer_types'),
    ({'num_attention_heads': None}, 'num_attention_heads'),
    ({'hidden_size': '32'}, 'hidden_size'),
    ({'norm_bias': 1}, 'norm_bias'),
    ({'rope_scaling': {'rope_type': 'linear', 'factor': 2.0}}, 'rope_scaling'),
    ({'rope_parameters': {'rope_type': 'default', 'rope_theta': 1.0}}, 'keyed by'),
    ({'classifier_pooling': 'max'}, 'classifier_pooling'),
    ({'global_attn_every_n_layers': 0, 'layer_types': None}, 'positive'),
])
def test_modernbert_configs_we_cannot_build_are_refused(change, message):
  disc = config_json.hf_config(_modernbert(), 'ModernBertForMaskedLM', special_ids=DATA)
  disc.update(change)
  disc = {key: value for key, value in disc.items() if value is not None}
  with pytest.raises(UserError, match=message):
    config_json.model_config(small_config().model, disc, None, 'x')


def test_a_modernbert_generator_may_differ_in_depth_only():
  cfg = _modernbert()
  disc = config_json.hf_config(cfg, 'ModernBertForTokenClassification', special_ids=DATA)
  gen = config_json.hf_config(cfg, 'ModernBertForMaskedLM', generator=True, special_ids=DATA)
  with pytest.raises(UserError, match='local_attention'):
    config_json.model_config(small_config().model, disc, {**gen, 'local_attention': 16}, 'x')
  with pytest.raises(UserError, match='not a ModernBERT'):
    config_json.model_config(small_config().model, disc, {**gen, 'model_type': 'electra'}, 'x')
