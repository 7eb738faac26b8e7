import json
import os
import types

import pytest

from electra_jax import workdir
from electra_jax.errors import UserError


def _write_config(directory, config: dict) -> None:
  with open(os.path.join(directory, 'config.json'), 'w', encoding='utf-8') as f:
    json.dump(config, f)


def test_a_config_that_differs_outside_what_may_change_is_refused_naming_each_field(tmp_path):
  _write_config(tmp_path, {'model': {'hidden_size': 128, 'num_layers': 2},
                           'train': {'steps': 10, 'batch_size': 16, 'learning_rate': 2e-4},
                           'mesh': {'data': -1}, 'retired': 1})
  changed = {'model': {'hidden_size': 64, 'num_layers': 2},
             'train': {'steps': 20, 'batch_size': 32, 'learning_rate': 1e-4},
             'mesh': {'data': 4}, 'added': 2}
  with pytest.raises(UserError) as refused:
    workdir.check_fits(str(tmp_path), 'config.json', changed, frozenset({'train.steps', 'mesh'}))
  assert str(refused.value) == (
      f'--workdir={tmp_path} holds a run with another config (model.hidden_size: 128 there, 64 '
      'here; train.batch_size: 16 there, 32 here; train.learning_rate: 0.0002 there, 0.0001 here); '
      'use another --workdir, or the config it was run with')

  workdir.check_fits(str(tmp_path), 'config.json', changed,
                     frozenset({'model', 'train.batch_size', 'train.learning_rate', 'train.steps',
                                'mesh'}))
  workdir.check_fits(str(tmp_path / 'new'), 'config.json', changed, frozenset())  # No record.


def test_the_fields_a_resume_may_change_leave_out_what_the_saved_state_means():
  assert {'train.steps', 'train.log_every'} <= workdir.PRETRAINING_RESUMABLE
  assert 'seeds' in workdir.FINETUNING_RESUMABLE
  for fields in (workdir.PRETRAINING_RESUMABLE, workdir.FINETUNING_RESUMABLE):
    assert not fields & {'train.batch_size', 'train.seed', 'model', 'data', 'objective', 'data.source',
                         'data.max_seq_length'}


def test_a_resume_must_use_the_tokenizer_the_run_recorded_wherever_it_is_read_from(tmp_path):
  tokenizer = types.SimpleNamespace(file_name='tokenizer.model', file_bytes=b'pieces')
  workdir.check_tokenizer(str(tmp_path), tokenizer)  # Nothing recorded: nothing to check.
  (tmp_path / 'tokenizer.model').write_bytes(b'pieces')
  workdir.check_tokenizer(str(tmp_path), tokenizer)
  workdir.check_tokenizer(str(tmp_path), None)  # The synthetic source has none.
  for other in (types.SimpleNamespace(file_name='tokenizer.model', file_bytes=b'other pieces'),
                types.SimpleNamespace(file_name='vocab.txt', file_bytes=b'pieces')):
    with pytest.raises(UserError, match=(
        rf'^--workdir={tmp_path} was trained with another tokenizer than this config\'s; resume '
        rf'with --config.data.tokenizer={tmp_path}/tokenizer.model, or use another --workdir$')):
      workdir.check_tokenizer(str(tmp_path), other)


def test_a_recorded_tokenizer_json_is_checked_too(tmp_path):
  (tmp_path / 'tokenizer.json').write_bytes(b'{"model": "bpe"}')
  workdir.check_tokenizer(str(tmp_path), types.SimpleNamespace(file_name='tokenizer.json',
                                                               file_bytes=b'{"model": "bpe"}'))
  with pytest.raises(UserError, match='another tokenizer'):
    workdir.check_tokenizer(str(tmp_path), types.SimpleNamespace(file_name='tokenizer.json',
                                                                 file_bytes=b'{"model": "other"}'))
