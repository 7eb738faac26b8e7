"""Rejects impossible configs before anything is compiled, with one line that says what to change.

Pre-training's fields, and what fine-tuning shares with it. Fine-tuning's own fields are checked by
finetune/train.py: the loop imports this module, so it must not import finetune/.
"""

import math

import jax
import ml_collections

from electra_jax import model, pretrainer, rtd, sharding
from electra_jax.errors import UserError

NONFINITE = ('stop', 'skip')
OBJECTIVES = ('rtd', 'mlm')


def _require(condition: bool, message: str) -> None:
  if not condition:
    raise UserError(message)


def _validate_modernbert(config: ml_collections.ConfigDict) -> None:
  m = config.model
  _require(m.hidden_size % m.num_heads == 0 and (m.hidden_size // m.num_heads) % 2 == 0,
           f'config.model.hidden_size={m.hidden_size} / num_heads={m.num_heads} must be a whole, '
           'even head width: rotary embeddings turn pairs of its dimensions')
  _require(m.local_attention >= 2, f'config.model.local_attention={m.local_attention} must be at '
           'least 2 (sliding layers see local_attention // 2 keys each side)')
  _require(m.global_attn_every_n_layers >= 1, 'config.model.global_attn_every_n_layers='
           f'{m.global_attn_every_n_layers} must be positive (1 = every layer global)')
  _require(m.generator_num_layers >= 0, 'config.model.generator_num_layers='
           f'{m.generator_num_layers} must not be negative (0 = half of num_layers)')
  _require(m.classifier_pooling in ('cls', 'mean'), 'config.model.classifier_pooling='
           f'{m.classifier_pooling!r} is unknown; use cls or mean')


def validate(config: ml_collections.ConfigDict, num_devices: int, process_count: int = 1) -> None:
  m, data, objective, train = config.model, config.data, config.objective, config.train

  _require(model.architecture(m) in pretrainer.ARCHITECTURES,
           f'config.model.architecture={model.architecture(m)!r} is unknown; use one of '
           f'{", ".join(pretrainer.ARCHITECTURES)}')
  if model.architecture(m) == 'modernbert':
    _validate_modernbert(config)
  _require(m.embedding_sharing in pretrainer.EMBEDDING_SHARING,
           f'config.model.embedding_sharing={m.embedding_sharing!r} is unknown; use one of '
           f'{", ".join(pretrainer.EMBEDDING_SHARING)}')
  _require(m.hidden_size % m.num_heads == 0,
           f'config.model.hidden_size={m.hidden_size} is not divisible by num_heads={m.num_heads}')
  gen_hidden, gen_heads, _, _ = model.generator_sizes(m)
  _require(gen_hidden > 0 and gen_hidden % gen_heads == 0,
           f'the generator width {gen_hidden} (from generator_fraction/generator_hidden_size) must be '
           f'positive and divisible by its {gen_heads} heads (width // 64)')
  _require(3 <= data.max_seq_length <= m.max_position_embeddings,
           f'config.data.max_seq_length={data.max_seq_length} must be between 3 and '
           f'config.model.max_position_embeddings={m.max_position_embeddings}')
  special = {'pad_id': data.pad_id, 'cls_id': data.cls_id, 'sep_id': data.sep_id,
             'mask_id': data.mask_id}
  for name, token_id in special.items():
    _require(0 <= token_id < m.vocab_size,
             f'config.data.{name}={token_id} is outside the vocabulary (vocab_size={m.vocab_size})')
  _require(len(set(special.values())) == len(special),
           f'the special token ids must differ, got {special}')

  _require(objective.kind in OBJECTIVES, f'config.objective.kind={objective.kind!r} is unknown; use '
           f'one of {", ".join(OBJECTIVES)}')
  _require(not (objective.kind == 'mlm' and config.init_from_hf),
           'config.init_from_hf continues a generator + discriminator pair; it does not '
           'start config.objective.kind=mlm')
  mask_token_fraction, random_token_fraction = rtd.masking_fractions(objective)
  _require(0 <= random_token_fraction <= 1 - mask_token_fraction,
           f'config.objective.random_token_fraction={random_token_fraction} must be in '
           f'[0, 1 - mask_token_fraction]')
  _require(train.generator_learning_rate >= 0, 'config.train.generator_learning_rate='
           f'{train.generator_learning_rate} must not be negative (0 = one optimizer)')
  # RTD's discriminator starts at the log-odds of mask_prob (model.DiscriminatorPredictions), which
  # is infinite at 1; the masked LM has no discriminator and may predict every token.
  rtd_kind = objective.kind == 'rtd'
  _require(0 < objective.mask_prob < 1 or (not rtd_kind and objective.mask_prob == 1),
           f'config.objective.mask_prob={objective.mask_prob} must be in '
           f'{"(0, 1) with objective.kind=rtd" if rtd_kind else "(0, 1]"}; the paper uses 0.15 '
           '(0.25 for Large)')
  _require(0 <= mask_token_fraction <= 1,
           f'config.objective.mask_token_fraction={mask_token_fraction} must be in [0, 1]')
  # Else every chosen position shows its own token: the generator learns to copy it and nothing is
  # left to replace or predict.
  _require(mask_token_fraction + random_token_fraction > 0,
           'config.objective.mask_token_fraction and random_token_fraction are both 0, so no chosen '
           "token is hidden; set mask_token_fraction (0.85 is ELECTRA's, 0.8 BERT's)")
  _require(objective.temperature > 0,
           f'config.objective.temperature={objective.temperature} must be positive')
  _require(1 <= rtd.max_predictions(config) <= data.max_seq_length,
           f'{rtd.max_predictions(config)} predictions per sequence (config.objective.max_predictions '
           f'or mask_prob) must be between 1 and max_seq_length={data.max_seq_length}')

  for name in ('steps', 'batch_size', 'log_every', 'checkpoint_every', 'keep_checkpoints'):
    _require(train[name] > 0, f'config.train.{name}={train[name]} must be positive')
  for name in ('eval_every', 'eval_batches'):
    _require(train[name] >= 0, f'config.train.{name}={train[name]} must not be negative')

  _require(data.source in ('builtin', 'synthetic') or
           data.source.startswith(('text:', 'jsonl:', 'parquet:', 'tfds:')),
           f'config.data.source={data.source!r} is unknown; use builtin, synthetic, text:GLOB, '
           'jsonl:GLOB, parquet:GLOB or tfds:NAME')
  _require(data.text_field, "config.data.text_field is empty; name the records' text key or column")
  _require(0 <= data.eval_fraction < 1,
           f'config.data.eval_fraction={data.eval_fraction} must be in [0, 1)')
  for name in ('max_eval_examples', 'build_processes'):
    _require(data[name] >= 0, f'config.data.{name}={data[name]} must not be negative')
  _require(data.read_threads >= 1, f'config.data.read_threads={data.read_threads} must be positive')
  _require(train.warmup_steps >= 0,
           f'config.train.warmup_steps={train.warmup_steps} must not be negative')
  _require(train.learning_rate > 0, f'config.train.learning_rate={train.learning_rate} must be '
           'positive')

  validate_training(config, ('batch_size',), num_devices, process_count)


def profile_window(text: str) -> tuple[int, int] | None:
  """config.train.profile_steps 'START:STOP' as (START, STOP); None for ''."""
  if not text:
    return None
  start, _, stop = text.partition(':')
  if not (start.isdigit() and stop.isdigit() and int(start) < int(stop)):
    raise UserError(f'config.train.profile_steps={text!r} must be START:STOP with 0 <= START < STOP '
                    "(e.g. '10:15'), or '' for no profile")
  return int(start), int(stop)


def validate_training(config: ml_collections.ConfigDict, batch_names: tuple[str, ...],
                      num_devices: int, process_count: int) -> None:
  """What pre-training and fine-tuning share: the non-finite policy, how the step computes, usable
  mesh rules, and each config.train.<name> of batch_names splitting evenly over the data-parallel
  devices and processes."""
  train = config.train
  for name, allowed in (('nonfinite', NONFINITE), ('dtype', model.DTYPES),
                        ('attention', model.ATTENTION), ('remat', model.REMAT)):
    _require(train[name] in allowed, f'config.train.{name}={train[name]!r} is unknown; use one of '
             f'{", ".join(allowed)}')
  profile_window(train.profile_steps)
  if train.attention == 'cudnn':
    _require(jax.default_backend() == 'gpu' and train.dtype == 'bfloat16',
             'config.train.attention=cudnn needs a GPU and config.train.dtype=bfloat16; use auto')
  shape = dict(zip(sharding.MESH_AXES, sharding.mesh_shape(config.mesh, num_devices)))
  unknown = {axis for _, axes in config.mesh.rules
             for axis in sharding.axis_tuple(axes) if axis not in shape}
  _require(not unknown, f'config.mesh.rules name unknown mesh axes {sorted(unknown)}; the mesh axes '
           f'are {", ".join(sharding.MESH_AXES)}')
  # A weight axis without a rule is replicated, as meant; an activation axis without one would be
  # constrained to replicated, which undoes the layout (rules written before the act_* axes).
  missing = [name for name in model.ACTIVATION_AXES if name not in dict(config.mesh.rules)]
  _require(not missing, f'config.mesh.rules has no rule for the activation axes {", ".join(missing)}; '
           'add them (None keeps a dimension whole), as configs/common.py does')
  data_parallel = math.prod(shape[axis] for axis in sharding.batch_axes(config.mesh.rules))
  for name in batch_names:
    size = config.train[name]
    _require(size > 0 and size % data_parallel == 0,
             f'config.train.{name}={size} is not a positive multiple of the {data_parallel} '
             f'data-parallel devices (mesh {shape}); use a multiple of {data_parallel}')
    _require(size % process_count == 0,
             f'config.train.{name}={size} is not divisible by the {process_count} processes')
