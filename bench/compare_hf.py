r"""Throughput of our RTD training step against the same step in Hugging Face transformers+PyTorch.

  python -m bench.compare_hf --config=configs/small.py --batch_size=32 --seq_len=128 --steps=10 \
      --dtype=float32

from the repository root (bench/ is a package, as configs/ is). The flags are electra_jax/bench.py's.
In one process it times ours (electra_jax.bench.measure) and then theirs, both with bench.time_steps:
the same warmup, the same number of timed steps, batches made outside the timing, and each step
finished before the clock stops. It prints our report, theirs, the ratio ours/theirs of tokens/s
and, last, one JSON object.

The same on both sides: the model sizes (config.model, through hf/config_json.py), the
synthetic batch stream (same seed), the masking (round(real tokens * mask_prob) distinct non-special
positions, at most rtd.max_predictions slots per sequence, mask_token_fraction of them shown as
[MASK]), the generator head applied only at the chosen positions, one sample per slot from its
softmax without gradient, the discriminator's loss over all real tokens, gen_weight and
disc_weight, the embeddings shared by the two models (as config.model.embedding_sharing says),
dropout on, AdamW (no decay on LayerNorm parameters and biases) after global-norm clipping with
warmup and linear decay, and float32 parameters with bfloat16 autocast for --dtype=bfloat16.

Not the same, on purpose: theirs is eager PyTorch as a user of transformers would run it (its
default attention, one device), ours is one jit-compiled XLA step. Also: ours pads the vocabulary
to a multiple of 128 (those logits are -inf), theirs does not; their weight init differs
(irrelevant to speed); config.train.original_optimizer is not mirrored (the same cost either way).
"""

import importlib.metadata
import json
import sys

from absl import app, flags
import jax
import ml_collections
import numpy as np
import torch
import torch.nn.functional as F
import transformers

from electra_jax import bench, cli, rtd
from electra_jax.data.synthetic import SyntheticSource
from electra_jax.errors import UserError
from electra_jax.hf import config_json

FLAGS = flags.FLAGS  # --config, --batch_size, --seq_len, --dtype, --steps, --warmup: bench.py's.


def build_models(config: ml_collections.ConfigDict, device) -> torch.nn.ModuleDict:
  """HF's generator and discriminator of config.model's sizes, in train mode (dropout on). In one
  ModuleDict so that the shared embedding tensors are one parameter each."""
  def electra_config(architecture, generator=False):
    return transformers.ElectraConfig(**config_json.hf_config(config.model, architecture,
                                                          generator=generator))

  generator = transformers.ElectraForMaskedLM(electra_config('ElectraForMaskedLM', generator=True))
  discriminator = transformers.ElectraForPreTraining(electra_config('ElectraForPreTraining'))
  if config.model.embedding_sharing == 'shared':
    generator.electra.embeddings = discriminator.electra.embeddings
    # The generator's own tie (LM head = word embeddings) must follow the embeddings it now reads.
    generator.generator_lm_head.weight = discriminator.electra.embeddings.word_embeddings.weight
  models = torch.nn.ModuleDict({'generator': generator, 'discriminator': discriminator})
  return models.to(device).train()


def build_optimizer(models: torch.nn.Module, train: ml_collections.ConfigDict):
  """AdamW as optimizer.py's: decay on matrices and embedding tables only; warmup, linear decay."""
  params = list(models.parameters())
  optimizer = torch.optim.AdamW(
      [{'params': [p for p in params if p.ndim > 1], 'weight_decay': train.weight_decay},
       {'params': [p for p in params if p.ndim <= 1], 'weight_decay': 0.0}],
      lr=train.learning_rate, betas=(train.adam_b1, train.adam_b2), eps=train.adam_eps)
  warmup, decay_steps = train.warmup_steps, max(train.steps - train.warmup_steps, 1)

  def factor(step):
    if step < warmup:
      return step / warmup
    return max(0.0, 1 - (step - warmup) / decay_steps)

  return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def mask_positions(input_ids, input_mask, *, special_ids, mask_prob: float, num_slots: int):
  """rtd.mask_positions: (positions [B, P], weights [B, P]) of distinct non-special real tokens."""
  special = torch.tensor(special_ids, device=input_ids.device)
  candidates = input_mask.bool() & ~torch.isin(input_ids, special)
  count = torch.clamp(torch.round(input_mask.sum(-1) * mask_prob), 1, num_slots).long()
  count = torch.minimum(count, candidates.sum(-1))
  noise = torch.where(candidates, torch.rand(input_ids.shape, device=input_ids.device), -1.0)
  positions = noise.topk(num_slots, dim=-1).indices
  weights = torch.arange(num_slots, device=input_ids.device)[None, :] < count[:, None]
  return torch.where(weights, positions, 0), weights.float()


def scatter(input_ids, positions, weights, values):
  """rtd.scatter: unused slots write into an extra column that is then cut off, like 'drop'."""
  columns = torch.where(weights > 0, positions, input_ids.shape[1])
  return F.pad(input_ids, (0, 1)).scatter(1, columns, values)[:, :-1]


def _mean(values, weights):
  return (values * weights).sum() / weights.sum().clamp(min=1.0)


def rtd_losses(models: torch.nn.ModuleDict, batch: dict, config: ml_collections.ConfigDict) -> dict:
  """rtd.rtd_loss in PyTorch: {'loss', 'gen_loss', 'disc_loss'} of one batch."""
  objective, data = config.objective, config.data
  input_ids, segment_ids, input_mask = batch['input_ids'], batch['segment_ids'], batch['input_mask']
  generator, discriminator = models['generator'], models['discriminator']

  positions, weights = mask_positions(
      input_ids, input_mask, special_ids=(data.pad_id, data.cls_id, data.sep_id),
      mask_prob=objective.mask_prob, num_slots=rtd.max_predictions(config))
  targets = input_ids.gather(1, positions)
  show_mask = (torch.rand(positions.shape, device=input_ids.device)
               < rtd.masking_fractions(objective)[0])
  masked = scatter(input_ids, positions, weights, torch.where(show_mask, data.mask_id, targets))

  # As ours: the head (and its vocabulary-wide matmul) only at the chosen positions.
  hidden = generator.electra(input_ids=masked, attention_mask=input_mask,
                             token_type_ids=segment_ids).last_hidden_state
  hidden = hidden.gather(1, positions[..., None].expand(-1, -1, hidden.shape[-1]))
  gen_logits = generator.generator_lm_head(generator.generator_predictions(hidden)).float()
  gen_loss = _mean(F.cross_entropy(gen_logits.transpose(1, 2), targets, reduction='none'), weights)

  with torch.no_grad():
    logits = gen_logits / objective.temperature
    if objective.disallow_correct:
      logits = logits.scatter(-1, targets[..., None], -torch.inf)
    sampled = torch.multinomial(logits.softmax(-1).flatten(0, 1), 1).view(targets.shape)
  corrupted = scatter(input_ids, positions, weights, sampled)
  labels = (corrupted != input_ids).float()

  disc_logits = discriminator(input_ids=corrupted, attention_mask=input_mask,
                              token_type_ids=segment_ids).logits.float()
  disc_loss = _mean(F.binary_cross_entropy_with_logits(disc_logits, labels, reduction='none'),
                    input_mask)
  loss = objective.gen_weight * gen_loss + objective.disc_weight * disc_loss
  return {'loss': loss, 'gen_loss': gen_loss, 'disc_loss': disc_loss}


def train_step(models, optimizer, schedule, batch: dict, config: ml_collections.ConfigDict) -> dict:
  """One update, as step.py's: losses (bfloat16 autocast if asked), clip, AdamW, schedule."""
  device_type = batch['input_ids'].device.type
  with torch.autocast(device_type, dtype=torch.bfloat16,
                      enabled=config.train.dtype == 'bfloat16'):
    losses = rtd_losses(models, batch, config)
  optimizer.zero_grad(set_to_none=True)
  losses['loss'].backward()
  torch.nn.utils.clip_grad_norm_(models.parameters(), config.train.max_grad_norm)
  optimizer.step()
  schedule.step()
  return losses


def measure_theirs(config: ml_collections.ConfigDict, steps: int, warmup: int) -> dict:
  """Times train_step with bench.time_steps on the same synthetic stream as bench.measure."""
  device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
  torch.manual_seed(config.train.seed)
  models = build_models(config, device)
  optimizer, schedule = build_optimizer(models, config.train)
  batch_size, length = config.train.batch_size, config.data.max_seq_length
  source = SyntheticSource(vocab_size=config.model.vocab_size, max_seq_length=length,
                           global_batch_size=batch_size, seed=0, pad_id=config.data.pad_id,
                           cls_id=config.data.cls_id, sep_id=config.data.sep_id)

  def next_batch():
    return {key: torch.from_numpy(value).to(device, torch.int64)
            for key, value in next(source).items()}

  def run_step(batch):
    train_step(models, optimizer, schedule, batch, config)
    if device.type == 'cuda':
      torch.cuda.synchronize()  # CUDA kernels run asynchronously; the step is done only now.

  times = bench.time_steps(run_step, next_batch, steps, warmup)
  step_time = float(np.median(times))
  hf_config = models['discriminator'].config
  # transformers resolves its default attention into this field; it has no public name.
  attention = hf_config._attn_implementation  # pylint: disable=protected-access
  return {'tokens_per_sec': batch_size * length / step_time, 'step_time_s': step_time,
          'step_times_s': times,
          'device': torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu',
          'attention': attention}


def versions() -> dict[str, str]:
  return {name: importlib.metadata.version(name)
          for name in ('jax', 'jaxlib', 'flax', 'torch', 'transformers')}


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  cli.quiet_libraries()
  try:
    config = bench.bench_config()
    print(bench.describe(config), flush=True)
    ours = bench.measure(config, FLAGS.steps, FLAGS.warmup)
  except UserError as e:
    sys.exit(f'error: {e}')
  print('ours (JAX/Flax, one jit-compiled XLA step):')
  bench.report(ours)
  if jax.device_count() > 1:
    print(f'note: ours ran on {jax.device_count()} devices, theirs runs on one', flush=True)

  theirs = measure_theirs(config, FLAGS.steps, FLAGS.warmup)
  times = theirs['step_times_s']
  print(f'theirs (transformers {transformers.__version__} + PyTorch {torch.__version__}, eager, '
        f'{theirs["device"]}, torch threads {torch.get_num_threads()}, '
        f'{theirs["attention"]} attention):')
  print(f'step: median {theirs["step_time_s"]:.4f} s over {len(times)} steps '
        f'(min {min(times):.4f}, max {max(times):.4f})')
  print(f'throughput: {theirs["tokens_per_sec"]:,.0f} tokens/s')
  ratio = ours['tokens_per_sec'] / theirs['tokens_per_sec']
  print(f'ours/theirs tokens/s: {ratio:.2f}x')
  print(json.dumps({
      'ours_tokens_per_sec': ours['tokens_per_sec'],
      'theirs_tokens_per_sec': theirs['tokens_per_sec'],
      'ratio': ratio,
      'step_time_s_ours': ours['step_time_s'],
      'step_time_s_theirs': theirs['step_time_s'],
      'device': theirs['device'],
      'versions': versions(),
  }), flush=True)


if __name__ == '__main__':
  app.run(main)
