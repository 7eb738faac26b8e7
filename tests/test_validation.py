import numpy as np
import pytest

from configs import base, large, small, tiny
from electra_jax import validation
from electra_jax.errors import UserError


@pytest.mark.parametrize('preset', [tiny, small, base, large])
def test_presets_are_valid_on_eight_devices(preset):
  validation.validate(preset.get_config(), num_devices=8)


@pytest.mark.parametrize('change,message', [
    (lambda c: setattr(c.train, 'batch_size', 12), 'not a positive multiple of the 8 data-parallel'),
    (lambda c: setattr(c.data, 'max_seq_length', 64), 'max_position_embeddings=32'),
    (lambda c: setattr(c.model, 'embedding_sharing', 'tied'), "embedding_sharing='tied' is unknown"),
    (lambda c: (setattr(c.mesh, 'data', -1), setattr(c.mesh, 'fsdp', -1)), 'at most one'),
    (lambda c: setattr(c.model, 'num_heads', 3), 'not divisible by num_heads'),
    (lambda c: setattr(c.data, 'mask_id', 500), 'outside the vocabulary'),
    (lambda c: setattr(c.data, 'mask_id', 0), 'must differ'),
    (lambda c: setattr(c.objective, 'mask_prob', 0.0), 'mask_prob'),
    (lambda c: setattr(c.train, 'warmup_steps', -1), 'warmup_steps=-1'),
    (lambda c: setattr(c.train, 'steps', 0), 'steps=0 must be positive'),
    (lambda c: setattr(c.mesh, 'rules', (('batch', 'dp'),)), "unknown mesh axes \\['dp'\\]"),
    (lambda c: setattr(c.mesh, 'rules', tuple(r for r in c.mesh.rules if r[0][:4] != 'act_')),
     'no rule for the activation axes act_length, act_embed, act_heads, act_mlp, act_vocab; add them'),
    (lambda c: setattr(c.model, 'generator_hidden_size', 200), 'generator width 200'),
    (lambda c: setattr(c.data, 'source', 'web:corpus'), "source='web:corpus' is unknown"),
    (lambda c: setattr(c.data, 'text_field', ''), 'config.data.text_field is empty'),
    (lambda c: setattr(c.data, 'eval_fraction', 1.0), 'eval_fraction=1.0 must be in'),
    (lambda c: setattr(c.train, 'eval_every', -1), 'eval_every=-1 must not be negative'),
    (lambda c: setattr(c.data, 'read_threads', 0), 'read_threads=0 must be positive'),
    (lambda c: setattr(c.train, 'dtype', 'float16'), "dtype='float16' is unknown"),
    (lambda c: setattr(c.train, 'remat', 'some'), "remat='some' is unknown; use one of none, "),
    (lambda c: setattr(c.train, 'attention', 'flash'), "attention='flash' is unknown"),
    (lambda c: setattr(c.train, 'attention', 'cudnn'), 'attention=cudnn needs a GPU'),
    (lambda c: setattr(c.train, 'profile_steps', '15:10'), "profile_steps='15:10' must be START:STOP"),
    (lambda c: setattr(c.train, 'profile_steps', '10'), "profile_steps='10' must be START:STOP"),
    (lambda c: setattr(c.objective, 'kind', 'bert'), "kind='bert' is unknown; use one of rtd, mlm"),
    (lambda c: setattr(c.objective, 'random_token_fraction', 0.2),
     'random_token_fraction=0.2 must be in \\[0, 1 - mask_token_fraction\\]'),
    (lambda c: setattr(c.train, 'generator_learning_rate', -1.0),
     'generator_learning_rate=-1.0 must not be negative'),
    (lambda c: (setattr(c.objective, 'kind', 'mlm'), setattr(c, 'init_from_hf', 'hf/x')),
     'does not start config.objective.kind=mlm'),
    # The discriminator's bias starts at the log-odds of mask_prob: infinite at 1.
    (lambda c: setattr(c.objective, 'mask_prob', 1.0),
     'mask_prob=1.0 must be in \\(0, 1\\) with objective.kind=rtd; the paper uses 0.15'),
    (lambda c: (setattr(c.objective, 'kind', 'mlm'), setattr(c.objective, 'mask_prob', 1.5)),
     'mask_prob=1.5 must be in \\(0, 1\\];'),
    (lambda c: (setattr(c.objective, 'mask_token_fraction', 0.0),
                setattr(c.objective, 'random_token_fraction', 0.0)),
     'are both 0, so no chosen token is hidden; set mask_token_fraction'),
    # The MLM baseline's unset random_token_fraction is BERT's 0.1, which 0.95 leaves no room for.
    (lambda c: (setattr(c.objective, 'kind', 'mlm'), setattr(c.objective, 'mask_token_fraction', 0.95)),
     'random_token_fraction=0.1 must be in'),
])
def test_impossible_configs_are_rejected_with_one_line(config, change, message):
  change(config)
  with pytest.raises(UserError, match=message) as error:
    validation.validate(config, num_devices=8)
  assert '\n' not in str(error.value)


def test_batch_must_split_over_processes(config):
  config.train.batch_size = 16
  with pytest.raises(UserError, match='3 processes'):
    validation.validate(config, num_devices=8, process_count=3)


@pytest.mark.parametrize('kind,mask_prob', [('rtd', float(np.nextafter(1.0, 0.0))), ('mlm', 1.0)])
def test_the_largest_mask_prob_of_each_kind_is_valid(config, kind, mask_prob):
  config.objective.kind, config.objective.mask_prob = kind, mask_prob
  validation.validate(config, num_devices=8)
