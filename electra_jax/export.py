"""Exports a run's newest checkpoint to Hugging Face transformers (PyTorch-layout safetensors).

  python -m electra_jax.export --workdir=runs/tiny --output=hf/tiny

A pre-training run becomes OUT/discriminator (ElectraForPreTraining) and OUT/generator
(ElectraForMaskedLM), or OUT/masked_lm (ElectraForMaskedLM) for the MLM baseline; with
config.model.architecture='modernbert', ModernBertForTokenClassification (one label: the RTD logit)
and ModernBertForMaskedLM. A fine-tuning run becomes OUT itself: ElectraForSequenceClassification
(classification, regression) or ElectraForTokenClassification (tagging), or their ModernBert
counterparts, from its median seed unless --seed names one. Every folder holds config.json,
model.safetensors and the tokenizer files. OUT must not exist; it appears only once everything in it
is written, and never replaces what appeared meanwhile.
"""

import glob
import hashlib
import json
import os
import shutil

from absl import flags, logging
from flax import nnx
import jax

from electra_jax import checkpoint, cli, files, lease, model, pretrainer, workdir
from electra_jax.data import tokenizer_json, wordpiece
from electra_jax.errors import UserError
from electra_jax.finetune.model import Finetuner
from electra_jax.hf import config_json, convert, folder, tokenizer_files

def _restore_params(directory: str, new_model) -> dict:
  """The parameters of `new_model()` from the newest checkpoint in `directory`, as numpy."""
  abstract = nnx.to_pure_dict(nnx.state(nnx.eval_shape(new_model), nnx.Param))
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=device), abstract)
  checkpoints = checkpoint.Checkpoints(directory, every=1, keep=1, read_only=True)
  try:
    return jax.device_get(checkpoints.restore_part({'params': abstract})['params'])
  finally:
    checkpoints.close()


def _tokenizer_files(tokenizer, model_max_length: int) -> dict[str, bytes]:
  if isinstance(tokenizer, wordpiece.WordPiece):
    return tokenizer_files.wordpiece_files(tokenizer.vocab_text, tokenizer.lowercase,
                                           tokenizer.strip_accents, model_max_length)
  if isinstance(tokenizer, tokenizer_json.TokenizerJson):
    return tokenizer_files.json_files(tokenizer.json_text, model_max_length)
  return tokenizer_files.sentencepiece_files(tokenizer.model_proto, model_max_length)


def _pretrained(run: workdir.Run, output: str) -> list[tuple[str, str]]:
  cfg = run.config.model
  kind = run.config.objective.get('kind', 'rtd')
  params = _restore_params(os.path.join(run.directory, 'checkpoints'),
                           lambda: pretrainer.pretraining_model(cfg, kind, nnx.Rngs(0)))
  # The discriminator reads a GDES delta added to the token table; the generator reads the table.
  folded = pretrainer.fold_embedding_delta(params)
  tokenizer = _tokenizer_files(run.tokenizer, cfg.max_position_embeddings)
  exports = convert.pretraining_exports(cfg, kind)
  for e in exports:
    # A masked LM's decoder weight is tied to the token table, so transformers expects it absent.
    folder.write(os.path.join(output, e.folder),
                 config_json.hf_config(cfg, e.architecture, generator=e.generator,
                                       special_ids=run.config.data, **(e.extra or {})),
                 convert.to_hf(params if e.generator else folded, e.blocks, cfg.vocab_size),
                 tokenizer)
  return [(e.folder, e.architecture) for e in exports]


def _seed_dir(directory: str, main_metric: str, seed: int | None) -> str:
  finished = workdir.finished_seeds(directory)
  if seed is None:
    if not finished:
      raise UserError(f'{directory} has no finished seed yet; rerun the fine-tuning command first')
    seed = workdir.median_seed(finished, main_metric)
  elif seed not in finished:
    raise UserError(f'--seed={seed}: {directory} has no finished seed_{seed}; finished: '
                    f'{", ".join(map(str, sorted(finished))) or "none"}')
  return os.path.join(directory, f'seed_{seed}')


def _finetuned(run: workdir.Run, output: str, seed: int | None) -> list[tuple[str, str]]:
  cfg, task = run.config.model, run.config.task
  if task.head == 'span':
    raise UserError('question answering runs do not export: transformers\' question answering '
                    'classes have no answerability head')
  if task.head != 'tagging' and task.classifier_head != 'hf':
    raise UserError(f'this run\'s classifier_head={task.classifier_head!r} (one dense layer) has no '
                    'transformers class; fine-tune with --config.classifier_head=hf to export')
  seed_dir = _seed_dir(run.directory, task.main_metric, seed)
  params = _restore_params(
      os.path.join(seed_dir, 'checkpoints'),
      lambda: Finetuner(cfg, task.head, task.num_outputs, nnx.Rngs(0), task.classifier_head))
  family = 'ModernBert' if model.architecture(cfg) == 'modernbert' else 'Electra'
  if task.head == 'tagging':
    architecture, extra = f'{family}ForTokenClassification', {}
  elif task.head == 'regression':
    architecture, extra = f'{family}ForSequenceClassification', {'problem_type': 'regression'}
  else:
    architecture = f'{family}ForSequenceClassification'
    extra = {'problem_type': 'single_label_classification'}
  labels = task.labels or ['score']
  extra.update(id2label=dict(enumerate(labels)), label2id={n: i for i, n in enumerate(labels)})
  hf_config = config_json.hf_config(cfg, architecture, special_ids=run.tokenizer.special_ids,
                                    **extra)
  folder.write(output, hf_config,
               convert.to_hf(params, convert.finetuned_blocks(cfg), cfg.vocab_size),
               _tokenizer_files(run.tokenizer, cfg.max_position_embeddings))
  return [('', f'{architecture} from {os.path.basename(seed_dir)}')]


def export(workdir_path: str, output: str, seed: int | None = None) -> list[tuple[str, str]]:
  """Writes the Hugging Face folder(s) of the run at `workdir_path` under `output`; returns each
  folder (relative to `output`) with what it holds."""
  run = workdir.open_run(workdir_path, '--workdir')
  if run.tokenizer is None:
    raise UserError(f'--workdir={workdir_path} was trained on synthetic data and has no tokenizer; '
                    'a Hugging Face model needs one')
  output = os.path.abspath(os.path.expanduser(output))
  if os.path.exists(output):
    raise UserError(f'--output={output} already exists; give a new directory')
  os.makedirs(os.path.dirname(output), exist_ok=True)
  # Everything is written under another name, and OUT appears by one rename once complete: an export
  # killed midway leaves only OUT.partial-<machine>-<pid> (the next export to OUT removes it), and
  # never replaces an OUT that appeared meanwhile.
  _remove_killed_exports(output)
  partial = f'{output}.partial-{_machine()}-{os.getpid()}'
  try:
    if 'task' in run.config:
      written = _finetuned(run, partial, seed)
    else:
      written = _pretrained(run, partial)
    try:
      files.rename_new(partial, output)
    except OSError as e:
      raise UserError(f'--output={output} appeared while exporting ({e.strerror}); give a new '
                      'directory') from e
  finally:
    shutil.rmtree(partial, ignore_errors=True)
  return written


def _machine() -> str:
  """This machine and PID namespace (lease.machine), short enough for a folder name."""
  return hashlib.sha256(json.dumps(lease.machine(), sort_keys=True).encode()).hexdigest()[:12]


def _remove_killed_exports(output: str) -> None:
  """Removes what exports to `output` that were killed on this machine left."""
  for partial in glob.glob(glob.escape(output) + '.partial-*'):
    machine, _, pid = partial[len(output) + len('.partial-'):].partition('-')
    if machine == _machine() and pid.isdigit() and not lease.running_here(int(pid)):
      logging.info('removing %s, left by an export that was killed', partial)
      shutil.rmtree(partial, ignore_errors=True)


def main() -> None:
  args = flags.FLAGS
  for name, holds in export(args.workdir, args.output, args.seed):
    print(f'wrote {os.path.join(args.output, name).rstrip(os.sep)}: {holds}')


if __name__ == '__main__':  # Flags are defined here only: tests import this module beside others.
  flags.DEFINE_string('workdir', None, 'The --workdir of a pre-training or fine-tuning run.')
  flags.DEFINE_string('output', None, 'New directory for the Hugging Face model(s).')
  flags.DEFINE_integer('seed', None, 'Fine-tuning runs: the seed to export; default the median '
                       'seed, whose predictions the run reports.')
  flags.mark_flags_as_required(['workdir', 'output'])
  cli.run_command(main)
