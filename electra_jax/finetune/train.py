"""The fine-tuning loop, top to bottom: open the pre-training run, read the task, then for every seed
load the encoder, train, predict and score; finally report each seed and the median.

It runs on pre-training's machinery: `step.build` compiles the model and loss for the mesh, and
`loop.run_steps` steps, logs and checkpoints, so a fine-tuning run resumes like a pre-training one.
"""

import glob
import json
import math
import os

from absl import logging
from flax import nnx
import jax
import ml_collections
import numpy as np

from electra_jax import (checkpoint, data, distributed, files, lease, loop, model, optimizer,
                         sharding, step, validation)
from electra_jax import workdir as workdir_lib
from electra_jax.data import pipeline
from electra_jax.errors import UserError
from electra_jax.finetune import classification, losses, pretrained, qa, tagging, tasks
from electra_jax.finetune.model import CLASSIFIER_HEADS, Finetuner
from electra_jax.metric_writer import MetricWriter, TrainLog

CONFIG_FILE = 'finetune_config.json'
ORIGIN_FILE = 'started_from.json'  # In each seed's directory: the pre-trained weights it started from.


def _seed_dir(workdir: str, seed: int) -> str:
  return os.path.join(workdir, f'seed_{seed}')


def _progress(seed_dir: str) -> bool:
  """Whether a seed has saved progress; before that, an attempt failed early and left nothing that a
  new config could not replace."""
  return (checkpoint.has_checkpoint(os.path.join(seed_dir, 'checkpoints'))
          or os.path.exists(os.path.join(seed_dir, workdir_lib.RESULTS_FILE)))


def _read_json(path: str) -> dict | None:
  try:
    with open(path, encoding='utf-8') as f:
      return json.load(f)
  except FileNotFoundError:
    return None


def _claim_workdir(workdir: str, config: ml_collections.ConfigDict, seeds: list[int],
                   source: pretrained.Pretrained, task: tasks.TaskData) -> None:
  """Records the config (CONFIG_FILE), for export the model and task (config.json), and for each seed
  that starts now the weights it starts from (ORIGIN_FILE). While any seed of the workdir has saved
  progress or another job holds one, a job must match both configs but for the fields that may
  change (the seeds, say), and a seed that starts now must start from the weights the others did;
  otherwise it writes nothing. Process 0 decides, under a lock that jobs sharing the workdir honour."""
  current = json.loads(config.to_json())
  model_and_task = ml_collections.ConfigDict({
      'model': source.config.model, 'data': source.config.data,
      'task': {'name': task.name, 'head': task.head, 'num_outputs': task.num_outputs,
               'labels': task.labels, 'main_metric': task.main_metric,
               'classifier_head': config.classifier_head}})
  ours = {_seed_dir(workdir, seed) for seed in seeds}

  def claim() -> None:
    with files.exclusive(os.path.join(workdir, CONFIG_FILE)):
      active = sorted(path for path in glob.glob(os.path.join(workdir, 'seed_*'))
                      if _progress(path) or (path not in ours and lease.in_use(path)))
      if active:
        workdir_lib.check_fits(workdir, CONFIG_FILE, current, workdir_lib.FINETUNING_RESUMABLE)
        # The pre-training run's sections, less what it may change on resume (where its data cache is).
        workdir_lib.check_fits(workdir, workdir_lib.CONFIG_FILE, model_and_task,
                               workdir_lib.PRETRAINING_RESUMABLE)
      starting = sorted(path for path in ours if not _progress(path)) if source.origin else []
      origin = source.origin() if starting else None
      for path in active if starting else []:
        theirs = _read_json(os.path.join(path, ORIGIN_FILE))
        if theirs is not None and theirs != origin:
          raise UserError(
              f'--workdir={workdir}: {os.path.basename(path)} started from '
              f'{pretrained.describe(theirs)}, and a new seed would start from '
              f'{pretrained.describe(origin)}; fine-tune into another --workdir, where every '
              'seed starts from the same weights')
      files.write_atomically(os.path.join(workdir, CONFIG_FILE), json.dumps(current, indent=2))
      workdir_lib.record(workdir, model_and_task, source.tokenizer)
      for path in starting:
        files.write_atomically(os.path.join(path, ORIGIN_FILE), json.dumps(origin, indent=2))

  distributed.on_process_0(claim)


def _record_results(workdir: str, task: tasks.TaskData) -> dict[str, float]:
  """Writes RESULTS_FILE of the workdir: every finished seed's metrics, their median and the median
  seed, whose predictions it copies beside it. Returns the median. Jobs that share the workdir
  update it in turn."""

  def update() -> dict[str, float]:
    with files.exclusive(os.path.join(workdir, workdir_lib.RESULTS_FILE)):
      per_seed = workdir_lib.finished_seeds(workdir)
      median = {name: float(np.median([r[name] for r in per_seed.values()]))
                for name in next(iter(per_seed.values()))}
      median_seed = workdir_lib.median_seed(per_seed, task.main_metric)
      # The median seed lends its predictions, so that the predictions file matches a reported run.
      with open(os.path.join(_seed_dir(workdir, median_seed), task.predictions_file), 'rb') as f:
        files.write_atomically(os.path.join(workdir, task.predictions_file), f.read())
      files.write_atomically(os.path.join(workdir, workdir_lib.RESULTS_FILE), json.dumps(
          {'median': median, 'median_seed': median_seed, 'seeds': per_seed}, indent=2))
      logging.info('median of %d seed(s): %s; predictions of seed %d in %s', len(per_seed),
                   _format(median), median_seed, os.path.join(workdir, task.predictions_file))
      return median

  return distributed.on_process_0(update)


def _load_task(config, tokenizer) -> tasks.TaskData:
  if config.kind == 'qa':
    return qa.load(config, tokenizer)
  if config.kind == 'tagging':
    return tagging.load(config, tokenizer)
  return classification.load(config, tokenizer)


def _resolve_train(config, task: tasks.TaskData, model_config) -> ml_collections.ConfigDict:
  """config.train with the paper's defaults filled in and the step counts derived from epochs: the
  paper's epochs are raised to at least `min_steps` updates, explicit epochs are taken as given."""
  t = ml_collections.ConfigDict(config.train.to_dict())
  t.epochs = t.epochs or task.epochs
  hidden = model_config.hidden_size
  t.learning_rate = t.learning_rate or (3e-4 if hidden <= 256 else 1e-4 if hidden <= 768 else 5e-5)
  t.layerwise_lr_decay = t.layerwise_lr_decay or (0.9 if model_config.num_layers >= 24 else 0.8)
  examples = len(task.train['input_ids'])
  by_epochs = max(1, int(t.epochs * examples / t.batch_size))
  # The paper's epochs were chosen for GLUE's thousands of rows; on a small task they are too few
  # updates to leave the majority class, so only they are raised.
  t.steps = by_epochs if config.train.epochs else max(by_epochs, t.min_steps)
  t.warmup_steps = int(t.warmup_fraction * t.steps)
  raised = (f', raised to the floor of {t.steps} (config.train.min_steps; '
            f'{t.steps * t.batch_size / examples:.3g} epochs)' if t.steps > by_epochs else '')
  logging.info('%s: %d train and %d eval rows; %g epochs = %d steps of %d%s; warmup %d; learning '
               'rate %g, layer-wise decay %g%s', task.name, examples, len(task.eval['input_ids']),
               t.epochs, by_epochs, t.batch_size, raised, t.warmup_steps, t.learning_rate,
               t.layerwise_lr_decay, ' (original off-by-one)' if t.original_layer_decay else '')
  return t


def _objective(config, model_config, task: tasks.TaskData) -> step.Objective:
  loss_of = losses.for_head(task.head, task.answerable_weight)

  def loss(module, batch, rng, deterministic):
    rngs = None if deterministic else nnx.Rngs(dropout=rng)
    return loss_of(module(batch, deterministic=deterministic, rngs=rngs), batch)

  def evaluate(module, batch, rng):
    del rng
    outputs = losses.predictions(task.head, module(batch, deterministic=True))
    return {**outputs, 'index': batch['index']}

  return step.Objective(
      new_model=lambda rng: Finetuner(model_config, task.head, task.num_outputs,
                                      nnx.Rngs(params=rng), config.classifier_head,
                                      model.compute_options(config.train)),
      loss=loss, evaluate=evaluate)


def _predict(training: step.Training, params, arrays: dict[str, np.ndarray],
             batch_size: int) -> dict[str, np.ndarray]:
  """Model outputs for every row of `arrays`, in row order. The last batch is padded with empty
  rows (index -1), which are dropped."""
  count = len(arrays['input_ids'])
  padded = math.ceil(count / batch_size) * batch_size
  arrays = {**arrays, 'index': np.arange(count, dtype=np.int32)}
  arrays = {key: np.concatenate([value, np.full((padded - count, *value.shape[1:]),
                                                -1 if key == 'index' else 0, value.dtype)])
            for key, value in arrays.items()}
  placement = data.Placement(training.batch_sharding, batch_size)
  outputs = list(loop.pipelined(
      lambda first: training.eval_step(
          params, placement.place({key: value[first + placement.rows] for key, value in arrays.items()}),
          jax.random.key(0)),
      range(0, padded, batch_size)))
  merged = {key: np.concatenate([o[key] for o in outputs]) for key in outputs[0]}
  order = merged.pop('index')
  keep = order >= 0
  position = np.argsort(order[keep])
  return {key: value[keep][position] for key, value in merged.items()}


def _run_seed(seed: int, config, task: tasks.TaskData, training: step.Training,
              source: pretrained.Pretrained, seed_dir: str, held: lease.Hold) -> dict[str, float]:
  train_config = config.train
  results_path = os.path.join(seed_dir, workdir_lib.RESULTS_FILE)
  if os.path.exists(results_path):
    logging.info('seed %d: finished earlier (%s)', seed, results_path)
    with open(results_path, encoding='utf-8') as f:
      return json.load(f)
  placement = data.Placement(training.batch_sharding, train_config.batch_size)
  batches = pipeline.TrainBatches(
      len(task.train['input_ids']),
      lambda indices: {key: value[indices] for key, value in task.train.items()},
      dataset_key=task.fingerprint, batch_size=train_config.batch_size, rows=placement.rows,
      seed=seed)
  checkpoints = checkpoint.Checkpoints(os.path.join(seed_dir, 'checkpoints'),
                                       every=train_config.checkpoint_every, keep=1)
  init_rng, step_rng = jax.random.split(jax.random.key(seed))
  restored = checkpoints.restore_latest(training.abstract_state)
  loop_state = None
  if restored is not None:
    state, loop_state = restored
    logging.info('seed %d: resumed at step %d', seed, int(state.step))
  else:
    state = training.init(init_rng)
    if not config.from_scratch:
      encoder = source.read_encoder(training.abstract_state.params)
      state = state.replace(params={**state.params, **encoder})

  writer = MetricWriter(seed_dir, first_step=int(state.step), total_steps=train_config.steps,
                        may_write=held.writable)
  log = TrainLog(writer, first_step=int(state.step), total_steps=train_config.steps,
                 every=train_config.log_every,
                 tokens_per_step=train_config.batch_size * config.max_seq_length)
  try:
    state = loop.run_steps(training, state, batches, placement, step_rng,
                           total=train_config.steps, log=log, checkpoints=checkpoints,
                           nonfinite=train_config.nonfinite, loop_state=loop_state,
                           profiler=loop.StepProfiler(train_config.profile_steps,
                                                      os.path.join(seed_dir, 'tensorboard')),
                           held=held)
  finally:
    checkpoints.close()
  results, predictions = task.score(_predict(training, state.params, task.eval,
                                             train_config.eval_batch_size))
  held.check_everywhere()
  writer.write(train_config.steps, results, split='eval')
  writer.close()
  if jax.process_index() == 0:
    files.write_atomically(os.path.join(seed_dir, task.predictions_file), predictions)
    files.write_atomically(results_path, json.dumps(results, indent=2))  # Last: marks the seed done.
  return results


def finetune(config: ml_collections.ConfigDict, workdir: str,
             wait_for_lock: bool = False) -> dict[str, float]:
  """Fine-tunes every seed of config.seeds into workdir/seed_<n>/ and returns (on process 0; None on
  the others) the median metrics of every finished seed of workdir (other jobs may add seeds), also
  written to workdir/results.json with each seed's, and the median seed's predictions beside it.
  `wait_for_lock` waits for the lease of a run that holds a seed but no longer renews it.

  Raises UserError when another run holds one of the seeds, or this config does not fit the run in
  workdir (nothing in it is written then)."""
  requested = config
  config, seeds, source, task = resolve(config)
  workdir_lib.make(workdir)
  for seed in seeds:
    os.makedirs(_seed_dir(workdir, seed), exist_ok=True)
  # Each seed is held on its own, so that jobs with other seeds may share the workdir.
  with lease.hold(*(_seed_dir(workdir, seed) for seed in seeds), wait=wait_for_lock) as held:
    # The config as given is what a rerun must match: the paper's defaults are resolved again.
    _claim_workdir(workdir, requested, seeds, source, task)
    return _finetune(config, workdir, seeds, source, task, held)


def parse_seeds(config: ml_collections.ConfigDict) -> list[int]:
  """The seeds of a fine-tuning config's `seeds` ('0,1,2')."""
  try:
    seeds = [int(s) for s in str(config.seeds).split(',') if s.strip()]
  except ValueError as e:
    raise UserError(f'config.seeds={config.seeds!r} must be integers, comma-separated') from e
  if not seeds or len(set(seeds)) != len(seeds):
    raise UserError(f'config.seeds={config.seeds!r} must name one or more distinct seeds')
  return seeds


def validate(config: ml_collections.ConfigDict, model_config: ml_collections.ConfigDict) -> None:
  """A fine-tuning config, for the model it starts from: its own fields here, those it shares with
  pre-training in validation.validate_training."""
  if config.kind not in tasks.KINDS:
    raise UserError(f'config.kind={config.kind!r} is unknown; use one of {", ".join(tasks.KINDS)}')
  if config.classifier_head not in CLASSIFIER_HEADS:
    raise UserError(f'config.classifier_head={config.classifier_head!r} is unknown; use one of '
                    f'{", ".join(CLASSIFIER_HEADS)}')
  if not 8 <= config.max_seq_length <= model_config.max_position_embeddings:
    raise UserError(f'config.max_seq_length={config.max_seq_length} must be between 8 and the '
                    f'model\'s max_position_embeddings={model_config.max_position_embeddings}')
  t = config.train
  for name in ('epochs', 'learning_rate', 'layerwise_lr_decay'):
    if t[name] < 0:
      raise UserError(f'config.train.{name}={t[name]} must not be negative (0 = the paper\'s)')
  if t.min_steps < 0:
    raise UserError(f'config.train.min_steps={t.min_steps} must not be negative (0 = no floor)')
  if not 0 <= t.warmup_fraction < 1 or t.layerwise_lr_decay > 1:
    raise UserError('config.train.warmup_fraction must be in [0, 1) and layerwise_lr_decay in [0, 1]')
  for name in ('log_every', 'checkpoint_every'):
    if t[name] <= 0:
      raise UserError(f'config.train.{name}={t[name]} must be positive')
  validation.validate_training(config, ('batch_size', 'eval_batch_size'), jax.device_count(),
                               jax.process_count())


def resolve(config: ml_collections.ConfigDict
            ) -> tuple[ml_collections.ConfigDict, list[int], pretrained.Pretrained, tasks.TaskData]:
  """The run's final config, checked once before anything is built or written: config.train with
  the paper's defaults filled in and the step counts derived from epochs; with it the seeds, the
  model it starts from and the task, read with that model's tokenizer."""
  seeds = parse_seeds(config)
  source = pretrained.open_source(config)
  validate(config, source.config.model)
  task = _load_task(config, source.tokenizer)
  config = config.copy_and_resolve_references()
  config.train = _resolve_train(config, task, source.config.model)
  return config, seeds, source, task


def _finetune(config: ml_collections.ConfigDict, workdir: str, seeds: list[int],
              source: pretrained.Pretrained, task: tasks.TaskData,
              held: lease.Hold) -> dict[str, float]:
  model_config, train_config = source.config.model, config.train
  mesh = sharding.make_mesh(config.mesh)
  lr_factor = optimizer.layerwise_decay(model_config.num_layers, train_config.layerwise_lr_decay,
                                        original=train_config.original_layer_decay)
  training = step.build(_objective(config, model_config, task),
                        *optimizer.create(train_config, lr_factor), mesh, config.mesh.rules)
  logging.info('%s from %s (%s)', 'random weights' if config.from_scratch else 'encoder',
               source.directory, 'the baseline without pre-training' if config.from_scratch else
               'generator and optimizer state left out')

  for seed in seeds:
    results = _run_seed(seed, config, task, training, source, _seed_dir(workdir, seed), held)
    logging.info('seed %d: %s', seed, _format(results))
    median = _record_results(workdir, task)
  return median


def _format(results: dict[str, float]) -> str:
  return '  '.join(f'{name} {value:.4f}' for name, value in results.items())
