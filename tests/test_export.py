"""python -m electra_jax.export end to end: a pre-training run and a fine-tuning run load in transformers
with their tokenizers and give our outputs; init_from_hf continues and fine-tunes from an export."""

import json
import os
import subprocess
import sys

from flax import nnx
import jax.numpy as jnp
import numpy as np
import pytest
import safetensors.numpy
import torch
import transformers

from configs.finetune import classification
from electra_jax import export, pretrainer, train, workdir
from electra_jax.errors import UserError
from electra_jax.finetune import train as finetune_train
from tests.conftest import check_finetuned_export, keyword_task, small_config, write_corpus

TEXTS = ['the model reads text', 'the generator learns on every device']  # Pair fits 32.


@pytest.fixture(scope='module')
def exported(pretrained_run, tmp_path_factory):
  output = str(tmp_path_factory.mktemp('export') / 'hf')
  assert [name for name, _ in export.export(pretrained_run, output)] == ['discriminator',
                                                                         'generator']
  return output


def _hf(cls, directory):
  loaded, info = cls.from_pretrained(directory, output_loading_info=True)
  assert not any(info.values()), info
  return loaded.eval()


def test_pretraining_export_loads_in_transformers_with_our_outputs(pretrained_run, exported):
  run = workdir.open_run(pretrained_run, '--workdir')
  hf_tokenizer = transformers.AutoTokenizer.from_pretrained(os.path.join(exported, 'discriminator'))
  assert [hf_tokenizer(t, add_special_tokens=False)['input_ids'] for t in TEXTS] == \
      run.tokenizer.encode(TEXTS)
  pair = hf_tokenizer(TEXTS[0], TEXTS[1], return_tensors='pt')
  ids = pair['input_ids'].numpy()
  assert ids[0, 0] == run.tokenizer.special_ids['cls_id']

  params = export._restore_params(  # pylint: disable=protected-access
      os.path.join(pretrained_run, 'checkpoints'),
      lambda: pretrainer.ElectraPretrainer(run.config.model, nnx.Rngs(0)))
  ours = pretrainer.ElectraPretrainer(run.config.model, nnx.Rngs(0))
  nnx.update(ours, nnx.State(jax_tree(params)))
  segments, mask = pair['token_type_ids'].numpy(), pair['attention_mask'].numpy()
  with torch.no_grad():
    disc = _hf(transformers.ElectraForPreTraining, os.path.join(exported, 'discriminator'))
    gen = _hf(transformers.ElectraForMaskedLM, os.path.join(exported, 'generator'))
    theirs_disc = disc(**pair).logits.numpy()
    theirs_gen = gen(**pair).logits.numpy()
  ours_disc = ours.discriminator_logits(jnp.asarray(ids), jnp.asarray(segments), jnp.asarray(mask),
                                        deterministic=True)
  positions = jnp.arange(ids.shape[1])[None]
  ours_gen = ours.generator_logits(jnp.asarray(ids), jnp.asarray(segments), jnp.asarray(mask),
                                   positions, deterministic=True)
  assert np.abs(np.asarray(ours_disc) - theirs_disc).max() < 1e-4
  assert np.abs(np.asarray(ours_gen) - theirs_gen).max() < 1e-4


def jax_tree(params):
  return {key: jax_tree(value) if isinstance(value, dict) else jnp.asarray(value)
          for key, value in params.items()}


def test_cli_refuses_an_existing_output_in_one_line(pretrained_run, exported):
  result = subprocess.run(
      [sys.executable, '-m', 'electra_jax.export', f'--workdir={pretrained_run}',
       f'--output={exported}'], capture_output=True, text=True, check=False,
      cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1] == (
      f'error: --output={exported} already exists; give a new directory')
  assert 'Traceback' not in result.stderr


def test_a_failed_export_leaves_nothing(tmp_path, pretrained_run):
  broken = tmp_path / 'run'
  broken.mkdir()
  for name in ('config.json', 'tokenizer.model'):
    (broken / name).write_bytes(open(os.path.join(pretrained_run, name), 'rb').read())
  with pytest.raises(UserError, match='does not exist: the run has no checkpoint'):
    export.export(str(broken), str(tmp_path / 'out'))
  assert sorted(os.listdir(tmp_path)) == ['run']


def test_an_export_that_dies_midway_leaves_no_output(tmp_path, pretrained_run, monkeypatch):
  write = export.folder.write

  def write_then_die(folder_path, *args):
    write(folder_path, *args)
    if folder_path.endswith('generator'):
      raise KeyboardInterrupt  # After both folders, before OUT appears.

  monkeypatch.setattr(export.folder, 'write', write_then_die)
  with pytest.raises(KeyboardInterrupt):
    export.export(pretrained_run, str(tmp_path / 'out'))
  assert os.listdir(tmp_path) == []


def test_an_output_that_appears_meanwhile_is_never_replaced(tmp_path, pretrained_run, monkeypatch):
  write, out = export.folder.write, tmp_path / 'out'

  def write_while_another_makes_out(folder_path, *args):
    write(folder_path, *args)
    if folder_path.endswith('generator'):
      out.mkdir()  # Empty: a plain rename would replace it.

  monkeypatch.setattr(export.folder, 'write', write_while_another_makes_out)
  with pytest.raises(UserError, match='appeared while exporting'):
    export.export(pretrained_run, str(out))
  assert os.listdir(tmp_path) == ['out'] and os.listdir(out) == []


def test_an_export_removes_what_a_killed_export_to_the_same_output_left(tmp_path, pretrained_run):
  out = tmp_path / 'out'
  process = subprocess.Popen([sys.executable, '-c', ''])
  process.wait()  # A pid that no process has now.
  killed = tmp_path / f'out.partial-{export._machine()}-{process.pid}'  # pylint: disable=protected-access
  elsewhere = tmp_path / f'out.partial-0123456789ab-{process.pid}'  # Another machine's: it may run.
  for partial in (killed, elsewhere):
    (partial / 'generator').mkdir(parents=True)
  export.export(pretrained_run, str(out))
  assert sorted(os.listdir(tmp_path)) == ['out', elsewhere.name]


def _tensors(directory):
  return safetensors.numpy.load_file(os.path.join(directory, 'model.safetensors'))


def test_continuing_from_an_export_without_change_exports_the_same_bits(exported, tmp_path):
  config = small_config()
  config.init_from_hf = exported
  config.model.num_layers = 3  # Replaced by the folder's sizes.
  config.data.source = 'text:' + write_corpus(str(tmp_path / 'corpus'), documents=40)
  config.data.data_dir = str(tmp_path / 'data')
  config.data.eval_fraction = 0.0
  config.train.steps = 1  # Its update is scaled by the warmup's first rate, 0: nothing changes.
  train.train_and_evaluate(config, str(tmp_path / 'run'))
  export.export(str(tmp_path / 'run'), str(tmp_path / 'again'))
  for name in ('discriminator', 'generator'):
    before, after = _tensors(os.path.join(exported, name)), _tensors(tmp_path / 'again' / name)
    assert before.keys() == after.keys()
    for key in before:
      assert np.array_equal(before[key], after[key]), key
    with open(os.path.join(exported, name, 'config.json'), encoding='utf-8') as f:
      assert json.load(f) == json.load(open(tmp_path / 'again' / name / 'config.json',
                                            encoding='utf-8'))

  # A rerun may drop init_from_hf (only a fresh run reads the folder): the run goes on with the
  # model sizes and tokenizer it recorded, not the preset's.
  config.init_from_hf, config.train.steps = '', 2
  assert int(train.train_and_evaluate(config, str(tmp_path / 'run')).step) == 2


def test_finetuning_from_an_export_exports_a_sequence_classifier(exported, tmp_path):
  check_finetuned_export(str(tmp_path), 'ElectraForSequenceClassification',
                         init_from_hf=os.path.join(exported, 'discriminator'))


def test_an_original_head_does_not_export(exported, tmp_path):
  config = classification.get_config()
  config.init_from_hf = os.path.join(exported, 'discriminator')
  config.classifier_head = 'original'
  config.train_file, config.eval_file = keyword_task(str(tmp_path), train_rows=32, eval_rows=16)
  config.max_seq_length, config.train.eval_batch_size, config.train.min_steps = 32, 16, 0
  finetune_train.finetune(config, str(tmp_path / 'run'))
  with pytest.raises(UserError, match='classifier_head=hf'):
    export.export(str(tmp_path / 'run'), str(tmp_path / 'hf'))
  assert not os.path.exists(tmp_path / 'hf')


@pytest.fixture(scope='module', params=['mlm', 'gdes'])
def variant_run(request, tmp_path_factory):
  """A short pre-training run of the MLM baseline or of RTD with GDES embedding sharing."""
  root = tmp_path_factory.mktemp(request.param)
  c = small_config()
  if request.param == 'mlm':
    c.objective.kind = 'mlm'
    c.objective.mask_token_fraction, c.objective.random_token_fraction = 0.8, 0.1
  else:
    c.model.embedding_sharing = 'gdes'
  c.data.source = 'text:' + write_corpus(str(root / 'corpus'), documents=40)
  c.data.data_dir = str(root / 'data')
  c.data.eval_fraction = 0.0
  c.train.steps, c.train.learning_rate = 4, 5e-3
  train.train_and_evaluate(c, str(root / 'run'))
  return request.param, str(root / 'run')


def test_mlm_and_gdes_runs_export_with_our_outputs_and_fine_tune(variant_run, tmp_path):
  kind, run_dir = variant_run
  run = workdir.open_run(run_dir, '--workdir')
  out = str(tmp_path / 'hf')
  written = export.export(run_dir, out)
  tokenizer = transformers.AutoTokenizer.from_pretrained(os.path.join(out, written[0][0]))
  pair = tokenizer(TEXTS[0], TEXTS[1], return_tensors='pt')
  args = [jnp.asarray(pair[k].numpy()) for k in ('input_ids', 'token_type_ids', 'attention_mask')]
  ours = pretrainer.pretraining_model(run.config.model, kind if kind == 'mlm' else 'rtd', nnx.Rngs(0))
  params = export._restore_params(  # pylint: disable=protected-access
      os.path.join(run_dir, 'checkpoints'),
      lambda: pretrainer.pretraining_model(run.config.model, run.config.objective.kind, nnx.Rngs(0)))
  nnx.update(ours, nnx.State(jax_tree(params)))
  if kind == 'mlm':
    assert written == [('masked_lm', 'ElectraForMaskedLM')]
    with torch.no_grad():
      theirs = _hf(transformers.ElectraForMaskedLM, os.path.join(out, 'masked_lm'))(**pair)
    positions = jnp.arange(args[0].shape[1])[None]
    mine = ours.mlm_logits(*args, positions, deterministic=True)[..., :run.config.model.vocab_size]
  else:
    assert np.abs(params['embedding_delta']['embedding']).max() > 0  # Training moved the delta.
    with torch.no_grad():
      theirs = _hf(transformers.ElectraForPreTraining, os.path.join(out, 'discriminator'))(**pair)
    mine = ours.discriminator_logits(*args, deterministic=True)
  assert np.abs(np.asarray(mine) - theirs.logits.numpy()).max() < 1e-4

  # Fine-tuning takes either workdir with the same command (config) as an RTD one.
  config = classification.get_config()
  config.init_checkpoint = run_dir
  config.train_file, config.eval_file = keyword_task(str(tmp_path), train_rows=64, eval_rows=32)
  config.max_seq_length = 32
  config.train.epochs, config.train.eval_batch_size = 1, 32
  assert set(finetune_train.finetune(config, str(tmp_path / 'ft'))) == {'accuracy', 'f1', 'mcc'}
