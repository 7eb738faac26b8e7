"""bench/compare_hf.py: the command, and its PyTorch step being the RTD step that ours runs."""

import json
import math
import subprocess
import sys

import jax
import numpy as np
import pytest
import torch

from bench import compare_hf
from electra_jax import rtd
from electra_jax.data.synthetic import SyntheticSource
from tests.conftest import ROOT, cli_env, small_config


def _compare(*args, tmp_path):
  return subprocess.run([sys.executable, '-m', 'bench.compare_hf', '--config=tests/small_config.py',
                         *args], cwd=ROOT, env=cli_env(1, str(tmp_path)), capture_output=True,
                        text=True, timeout=300, check=False)


def _batch(config, rows=8):
  data = config.data
  source = SyntheticSource(vocab_size=config.model.vocab_size, max_seq_length=data.max_seq_length,
                           global_batch_size=rows, seed=0, pad_id=data.pad_id, cls_id=data.cls_id,
                           sep_id=data.sep_id)
  return {key: torch.from_numpy(value).long() for key, value in next(source).items()}


def _masking(config):
  return dict(special_ids=(config.data.pad_id, config.data.cls_id, config.data.sep_id),
              mask_prob=config.objective.mask_prob, num_slots=rtd.max_predictions(config))


def test_command_prints_both_throughputs_and_their_ratio_as_json_last(tmp_path):
  result = _compare('--batch_size=8', '--seq_len=32', '--steps=2', '--warmup=1', '--dtype=float32',
                    tmp_path=tmp_path)
  assert result.returncode == 0, result.stderr
  assert 'ours/theirs tokens/s: ' in result.stdout
  report = json.loads(result.stdout.strip().splitlines()[-1])
  assert set(report) == {'ours_tokens_per_sec', 'theirs_tokens_per_sec', 'ratio',
                         'step_time_s_ours', 'step_time_s_theirs', 'device', 'versions'}
  assert report['ours_tokens_per_sec'] > 0 and report['theirs_tokens_per_sec'] > 0
  assert report['ratio'] == pytest.approx(
      report['ours_tokens_per_sec'] / report['theirs_tokens_per_sec'])
  assert set(report['versions']) == {'jax', 'jaxlib', 'flax', 'torch', 'transformers'}


def test_bad_flag_is_one_error_line_without_traceback(tmp_path):
  result = _compare('--steps=0', tmp_path=tmp_path)
  assert result.returncode != 0
  assert result.stderr.strip().splitlines() == [
      'error: --steps=0 must be positive and --warmup=2 not negative']


def test_torch_masking_chooses_as_many_positions_as_ours():
  config = small_config()
  batch = _batch(config, rows=32)
  kwargs = _masking(config)
  torch.manual_seed(0)
  positions, weights = compare_hf.mask_positions(batch['input_ids'], batch['input_mask'], **kwargs)
  _, ours = rtd.mask_positions(jax.random.key(0), batch['input_ids'].numpy(),
                               batch['input_mask'].numpy(), **kwargs)
  np.testing.assert_array_equal(weights.sum(1).numpy(), np.asarray(ours).sum(1))
  ids = batch['input_ids']
  for row in range(len(ids)):
    chosen = positions[row][weights[row] > 0]
    assert len(set(chosen.tolist())) == len(chosen)
    assert batch['input_mask'][row, chosen].all()
    assert not np.isin(ids[row, chosen].numpy(), kwargs['special_ids']).any()


def test_torch_step_is_the_rtd_step_and_trains_shared_embeddings():
  config = small_config()
  config.train.warmup_steps = 0  # Else the first step's learning rate is 0 and nothing moves.
  batch = _batch(config)
  torch.manual_seed(0)
  models = compare_hf.build_models(config, torch.device('cpu'))
  generator, discriminator = models['generator'], models['discriminator']
  assert generator.electra.embeddings is discriminator.electra.embeddings
  word_embeddings = discriminator.electra.embeddings.word_embeddings.weight
  assert generator.generator_lm_head.weight is word_embeddings
  optimizer, schedule = compare_hf.build_optimizer(models, config.train)
  optimized = [p for group in optimizer.param_groups for p in group['params']]
  assert len({id(p) for p in optimized}) == len(optimized) == len(list(models.parameters()))

  before = {name: p.detach().clone() for name, p in models.named_parameters()}
  losses = {k: v.item() for k, v in
            compare_hf.train_step(models, optimizer, schedule, batch, config).items()}
  # At initialisation the generator is near uniform and the discriminator near 1/2 everywhere.
  assert abs(losses['gen_loss'] - math.log(config.model.vocab_size)) < 0.1, losses
  assert abs(losses['disc_loss'] - math.log(2)) < 0.05, losses
  assert abs(losses['loss'] - (math.log(config.model.vocab_size) + 50 * math.log(2))) < 1.0, losses
  assert all(not torch.equal(before[name], p) for name, p in models.named_parameters()
             if name.endswith('weight') and 'LayerNorm' not in name)

  # A discriminator that says "original" with logit -b everywhere has loss
  # (1 - r) softplus(-b) + r softplus(b): it reveals the replaced fraction r, which must be the
  # share of real tokens the masking chose (almost every sample differs from the original).
  head = discriminator.discriminator_predictions.dense_prediction
  with torch.no_grad():
    head.weight.zero_()
    head.bias.fill_(-5.0)
    disc_loss = compare_hf.rtd_losses(models, batch, config)['disc_loss'].item()
  replaced = (disc_loss - math.log1p(math.exp(-5))) / (math.log1p(math.exp(5)) -
                                                       math.log1p(math.exp(-5)))
  real = batch['input_mask'].sum().item()
  chosen = np.asarray(rtd.mask_positions(jax.random.key(0), batch['input_ids'].numpy(),
                                         batch['input_mask'].numpy(), **_masking(config))[1]).sum()
  assert 0.9 * chosen / real < replaced < chosen / real + 1e-3, (replaced, chosen / real)
