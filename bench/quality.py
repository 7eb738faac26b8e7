r"""Does pre-training pay off? Two measurements, written into docs/quality.md.

  python -m bench.quality --output=runs/quality                    # about 1.5 hours on 2 CPU cores
  python -m bench.quality --output=runs/quality --budgets=1,4,16   # the whole curve: about 3.5 hours

from the repository root (bench/ is a package, as configs/ is). Finished runs and seeds under
--output are reused, so a long curve can be run in parts.

1. **Transfer on an artificial language** (electra_jax.finetune.word_classes): its word classes only
   the unlabelled corpus reveals, and fine-tuning sees half of each class's words while evaluation
   sees only the other half, so random weights stay at chance. --config's RTD pre-training on that
   corpus for each of --transfer_steps, the MLM baseline at the same model FLOPs
   (electra_jax/flops.py; BERT's 80/10/10 masking), random weights, the Hugging Face round trip of
   the longest RTD run (export, then `init_from_hf`) and a negative control (that run with its
   tokenizer's pieces shuffled, which must fall to chance), each fine-tuned with the README's
   command over --seeds; and RTD on ModernBERT (--config with model.architecture=modernbert) at the
   model FLOPs of the longest RTD run.
2. **The compute curve on real text**: RTD pre-training of --config on the builtin corpus for each
   of --budgets times its steps (seeds 0, 1, 2 up to 4x, seed 0 beyond), and at 4x once more with an
   8k-piece vocabulary, and RTD on ModernBERT at --modernbert_budgets (seed 0, at the model FLOPs of
   --config's run at that budget); each fine-tuned on the docstring tasks against random weights
   (the vocabulary ablation against random weights with its own tokenizer).

--toy runs the transfer at the size of its CI test (tests/test_quality.py: 3,000 steps of a
2 x 64 model, about 3 minutes) and the curve at toy sizes (code paths only).
"""

import json
import os
import random
import shutil
import sys
import sysconfig

from absl import app, flags
import jax
import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import ml_collections  # pylint: disable=g-import-not-at-top
from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top
from sentencepiece import sentencepiece_model_pb2  # pylint: disable=g-import-not-at-top

from configs.finetune import classification  # pylint: disable=g-import-not-at-top
from electra_jax import cli, export, files, flops, preemption, train  # pylint: disable=g-import-not-at-top
from electra_jax.data import tokenizer as tokenizer_lib  # pylint: disable=g-import-not-at-top
from electra_jax.errors import UserError  # pylint: disable=g-import-not-at-top
from electra_jax.finetune import docstring_kind, docstring_next  # pylint: disable=g-import-not-at-top
from electra_jax.finetune import train as finetune_train  # pylint: disable=g-import-not-at-top
from electra_jax.finetune import word_classes  # pylint: disable=g-import-not-at-top

_CONFIG = config_flags.DEFINE_config_file(
    'config', os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'configs',
                           'tiny.py'), 'The RTD pre-training config (the README quick start\'s).')
_OUTPUT = flags.DEFINE_string('output', 'runs/quality', 'Directory for every run of the comparison.')
_DOC = flags.DEFINE_string('doc', 'docs/quality.md', 'Markdown report; its plots go beside it.')
_SEEDS = flags.DEFINE_string('seeds', '0,1,2', 'Fine-tuning seeds.')
_TRANSFER_STEPS = flags.DEFINE_list('transfer_steps', ['500', '2000'],
                                    'Pre-training steps of the transfer runs.')
_BUDGETS = flags.DEFINE_list('budgets', ['1'], 'Compute-curve budgets, in multiples of --config\'s '
                             'steps; empty (--budgets=) = no curve.')
_MLM = flags.DEFINE_bool('mlm', True, 'The transfer benchmark\'s MLM baseline (its CI test leaves '
                         'it out).')
_MODERNBERT_TRANSFER = flags.DEFINE_bool('modernbert_transfer', True, 'The transfer benchmark\'s '
                                         'ModernBERT arm (its CI test leaves it out).')
_MODERNBERT_BUDGETS = flags.DEFINE_list('modernbert_budgets', ['1', '4'], 'Compute-curve budgets '
                                        'of the ModernBERT arm; empty = no arm.')
_TOY = flags.DEFINE_bool('toy', False, 'The CI test\'s sizes.')

TASKS = {'docstring_kind': docstring_kind.rows, 'docstring_next': docstring_next.rows}
SEEDS_UP_TO_4X = (0, 1, 2)
LARGE_VOCAB = 8192  # The vocabulary ablation's, at 4x.
MODERNBERT = 'modernbert'  # The ModernBERT arm's run names end so.
# What "transfers" means here: dev accuracy on unseen words this far above random weights'.
TRANSFER_MARGIN = 0.20


def _shrink(config: ml_collections.ConfigDict, toy: bool) -> None:
  """The transfer test's sizes (a small model that learns the topics in a few thousand steps), or
  with `toy` sizes that compile and finish in seconds."""
  config.model.update(embedding_size=64, hidden_size=64, num_heads=2, intermediate_size=256,
                      max_position_embeddings=64)
  config.data.max_seq_length = 64
  config.train.eval_batches = 2
  # Faster rates than the quick start's, and no slower generator: the topics are learnt by the
  # generator's masked LM into the shared embeddings; with the quick start's generator at 1e-4 the
  # discriminator reaches an AUC of 0.9 on parts of speech alone and knows no topic after 4,000
  # steps (docs/quality.md).
  config.train.learning_rate, config.train.generator_learning_rate = 2e-3, 0.0
  if toy:
    config.model.update(vocab_size=256, embedding_size=32, hidden_size=32, num_layers=1,
                        num_heads=1, intermediate_size=64)
    config.train.steps = 4


def with_steps(config: ml_collections.ConfigDict, steps: int) -> ml_collections.ConfigDict:
  """`config` trained for `steps`, its warmup and its log, eval and checkpoint intervals scaled alike
  (so that 1x is `config` itself, and a finished quick start run is reused)."""
  config = ml_collections.ConfigDict(config.to_dict())
  scale = steps / config.train.steps
  for name in ('warmup_steps', 'log_every', 'eval_every', 'checkpoint_every'):
    config.train[name] = max(1, round(config.train[name] * scale)) if config.train[name] else 0
  config.train.steps = steps
  return config


def _at_flops_of(reference: ml_collections.ConfigDict,
                 config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """`config` for the model FLOPs of the `reference` run (and as many evaluations)."""
  budget = reference.train.steps * flops.step_flops(reference)
  return with_steps(config, max(1, round(budget / flops.step_flops(config))))


def mlm_config(rtd: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The MLM baseline of `rtd`'s discriminator, for the same model FLOPs."""
  config = ml_collections.ConfigDict(rtd.to_dict())
  config.objective.kind = 'mlm'
  config.objective.mask_token_fraction, config.objective.random_token_fraction = 0.8, 0.1
  return _at_flops_of(rtd, config)


def modernbert_config(electra: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """RTD with `electra`'s settings on ModernBERT (its width, depth, heads and FFN width; a generator
  of half the depth at full width), for the same model FLOPs."""
  config = ml_collections.ConfigDict(electra.to_dict())
  config.model.architecture = 'modernbert'
  return _at_flops_of(electra, config)


def _pretrain(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """The run's last eval record (training it first unless it finished earlier)."""
  train.train_and_evaluate(config, workdir)
  with open(os.path.join(workdir, 'metrics.jsonl'), encoding='utf-8') as f:
    return [r for r in map(json.loads, f) if r['split'] == 'eval'][-1]


def _finetune(train_file: str, eval_file: str, workdir: str, seeds: str, max_seq_length: int,
              epochs: float = 0.0, **start) -> list[float]:
  """Dev accuracy per seed of the README's fine-tuning command from `start` (init_checkpoint,
  init_from_hf, from_scratch); `epochs` 0 = its default."""
  config = classification.get_config()
  config.update(start)
  config.train_file, config.eval_file, config.seeds = train_file, eval_file, seeds
  config.max_seq_length, config.train.epochs = max_seq_length, epochs
  finetune_train.finetune(config, workdir)
  with open(os.path.join(workdir, 'results.json'), encoding='utf-8') as f:
    per_seed = json.load(f)['seeds']
  return [per_seed[seed]['accuracy'] for seed in seeds.split(',')]


def shuffled_tokenizer_copy(workdir: str, output: str) -> str:
  """A copy of pre-training run `workdir` whose tokenizer gives every ordinary piece another's id:
  the same text, the wrong embeddings. The negative control of the transfer benchmark."""
  if not os.path.exists(output):
    partial = output + '.partial'
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(workdir, partial, ignore=shutil.ignore_patterns('lock.json', 'tensorboard'))
    proto = sentencepiece_model_pb2.ModelProto()
    with open(os.path.join(workdir, tokenizer_lib.FILE_NAME), 'rb') as f:
      proto.ParseFromString(f.read())
    normal = [i for i, p in enumerate(proto.pieces) if p.type == p.NORMAL]
    moved = normal[:]
    random.Random(0).shuffle(moved)
    pieces = [sentencepiece_model_pb2.ModelProto.SentencePiece() for _ in proto.pieces]
    for old, piece in enumerate(proto.pieces):
      pieces[old].CopyFrom(piece)
    for source, target in zip(normal, moved):
      pieces[target].CopyFrom(proto.pieces[source])
    del proto.pieces[:]
    proto.pieces.extend(pieces)
    files.write_atomically(os.path.join(partial, tokenizer_lib.FILE_NAME),
                           proto.SerializeToString())
    os.rename(partial, output)
  return output


def transfers(accuracies: list[float], random_weights: list[float]) -> bool:
  return float(np.median(accuracies)) >= float(np.median(random_weights)) + TRANSFER_MARGIN


def transfer(config: ml_collections.ConfigDict, output: str, steps: list[int], seeds: str,
             toy: bool, mlm: bool = True, modernbert: bool = True) -> tuple[dict, dict]:
  """Pre-trains and fine-tunes every arm of the transfer benchmark; returns {arm: {steps:
  accuracies}} (steps 0 for arms with one run) and each pre-training run's last eval record."""
  paths = word_classes.write(os.path.join(output, 'word_classes'),
                             documents=2_000 if toy else 20_000)
  on_corpus = ml_collections.ConfigDict(config.to_dict())
  on_corpus.data.source = 'text:' + paths['corpus']
  on_corpus.data.eval_fraction = 0.05

  def tune(name: str, **start) -> list[float]:
    # Its sentences are at most 13 pieces long.
    return _finetune(paths['train'], paths['dev'], os.path.join(output, 'ft', name), seeds, 32,
                     **start)

  arms, records = {'rtd': {}, **({'mlm': {}} if mlm else {})}, {}
  for n in steps:
    rtd = with_steps(on_corpus, n)
    for kind, run_config in (('rtd', rtd), ('mlm', mlm_config(rtd)))[:2 if mlm else 1]:
      workdir = os.path.join(output, f'{kind}_{n}')
      records[f'{kind}_{n}'] = _pretrain(run_config, workdir)
      arms[kind][n] = tune(f'{kind}_{n}', init_checkpoint=workdir)
  longest = os.path.join(output, f'rtd_{max(steps)}')
  arms['random weights'] = {0: tune('scratch', init_checkpoint=longest, from_scratch=True)}
  hf = os.path.join(output, f'rtd_{max(steps)}_hf')
  if not os.path.exists(hf):
    export.export(longest, hf)
  arms['HF round trip'] = {max(steps): tune('hf', init_from_hf=os.path.join(hf, 'discriminator'))}
  arms['shuffled tokenizer'] = {max(steps): tune(
      'shuffled', init_checkpoint=shuffled_tokenizer_copy(longest, longest + '_shuffled'))}
  if modernbert:
    workdir = os.path.join(output, f'modernbert_{max(steps)}')
    records[f'modernbert_{max(steps)}'] = _pretrain(
        modernbert_config(with_steps(on_corpus, max(steps))), workdir)
    arms[MODERNBERT] = {max(steps): tune(f'modernbert_{max(steps)}', init_checkpoint=workdir)}
    arms[_random_for(MODERNBERT)] = {0: tune('modernbert_scratch', init_checkpoint=workdir,
                                             from_scratch=True)}
  return arms, records


def curve(config: ml_collections.ConfigDict, output: str, budgets: list[float], seeds: str,
          toy: bool, modernbert_budgets: list[float] = ()) -> tuple[dict, dict]:
  """Pre-trains on the builtin corpus at each budget (and ModernBERT at its own) and fine-tunes on
  the docstring tasks; returns {task: {run: accuracies}} (run 'random weights' included) and
  {run: (FLOPs, last eval record)}."""
  runs = {}
  for budget in budgets:
    for seed in SEEDS_UP_TO_4X if budget <= 4 else SEEDS_UP_TO_4X[:1]:
      run_config = with_steps(config, max(1, round(budget * config.train.steps)))
      run_config.train.seed = seed
      runs[f'{budget:g}x seed {seed}'] = run_config
    if budget == 4:
      run_config = with_steps(config, 4 * config.train.steps)
      run_config.model.vocab_size = LARGE_VOCAB
      runs[f'4x {LARGE_VOCAB // 1024}k vocab'] = run_config
  for budget in modernbert_budgets:
    runs[f'{budget:g}x {MODERNBERT}'] = modernbert_config(
        with_steps(config, max(1, round(budget * config.train.steps))))
  pretrained = {}
  for name, run_config in runs.items():
    workdir = os.path.join(output, 'curve', name.replace(' ', '_'))
    record = _pretrain(run_config, workdir)
    pretrained[name] = (workdir, record['flops'], record)
  stdlib = sysconfig.get_paths()['stdlib']
  # Toy sizes check the code paths only: a few steps of short examples.
  length, epochs = (32, 0.02) if toy else (classification.get_config().max_seq_length, 0.0)
  downstream = {}
  for task, make_rows in TASKS.items():
    directory = os.path.join(output, 'tasks', task)
    docstring_kind.write_splits(directory, make_rows(stdlib, 0))
    train_file, dev_file = (os.path.join(directory, f'{s}.csv') for s in ('train', 'dev'))
    cells = {}
    for name, (workdir, _, _) in pretrained.items():
      cells[name] = _finetune(train_file, dev_file, os.path.join(workdir, 'ft', task), seeds,
                              length, epochs, init_checkpoint=workdir)
    # Random weights of each kind of run (its tokenizer and architecture), from its first run.
    baselines = {}
    for name, (workdir, _, _) in pretrained.items():
      baselines.setdefault(_random_for(name), workdir)
    for row, workdir in baselines.items():
      directory = (os.path.join(output, 'curve', 'scratch', task) if row == 'random weights' else
                   os.path.join(workdir, 'scratch', task))
      cells[row] = _finetune(train_file, dev_file, directory, seeds, length, epochs,
                             init_checkpoint=workdir, from_scratch=True)
    downstream[task] = cells
  return downstream, {name: (f, record) for name, (_, f, record) in pretrained.items()}


def _random_for(name: str) -> str:
  """The random-weights row that run or arm `name` is measured against: the one with its tokenizer
  and architecture."""
  if 'vocab' in name:
    return f'random weights, {name.split(" ", 1)[1]}'
  return f'random weights, {MODERNBERT}' if name.endswith(MODERNBERT) else 'random weights'


def _cell(values: list[float]) -> str:
  return f'{np.median(values):.3f} ({min(values):.3f}-{max(values):.3f})'


def _gain(values: list[float], baseline: list[float]) -> str:
  return f'{np.median(values) - np.median(baseline):+.3f}'


def _transfer_section(config, arms: dict, records: dict, seeds: str) -> list[str]:
  lines = [
      '## Transfer on an artificial language', '',
      f'`electra_jax.finetune.word_classes`: {word_classes.TOPICS} topics of '
      f'{word_classes.WORDS} nouns, verbs and adjectives each; the label is the sentence\'s topic '
      f'(chance 1/{word_classes.TOPICS}); fine-tuning on 1,000 sentences in half of each topic\'s '
      'words, dev accuracy on 1,000 sentences in only the other half. Pre-training: '
      f'{config.model.num_layers} x {config.model.hidden_size}, batch '
      f'{config.train.batch_size} x {config.data.max_seq_length}, on the unlabelled corpus; MLM at '
      f'the same model FLOPs, and so RTD on ModernBERT ("modernbert", against its own random '
      'weights); their steps column names the RTD run whose FLOPs they match. Fine-tuning: '
      f'the README\'s command, seeds {seeds}; median (lowest-highest). "Transfers" = at least '
      f'{TRANSFER_MARGIN:.2f} above random weights.', '',
      '| arm | pre-training steps | dev accuracy, unseen words | - random weights | transfers |',
      '|---|---|---|---|---|']
  for arm, by_steps in arms.items():
    chance = arms[_random_for(arm)][0]
    for n, values in by_steps.items():
      lines.append(f'| {arm} | {n or ""} | {_cell(values)} | {_gain(values, chance)} | '
                   f'{"yes" if transfers(values, chance) else "no"} |')
  lines += ['', 'Last eval records of the transfer pre-training runs:', '']
  lines += [f'- {name}: ' + _record(record) for name, record in records.items()]
  return lines


def _curve_section(config, downstream: dict, pretrained: dict, seeds: str) -> list[str]:
  lines = [
      '## The compute curve on real text', '',
      f'RTD pre-training of the quick start ({config.train.steps} steps = 1x) on the builtin '
      f'corpus; each run fine-tuned with the README\'s command, seeds {seeds}, median (lowest-'
      'highest) dev accuracy; "- random" against random weights of the same tokenizer and '
      'architecture. '
      f'"{MODERNBERT}": RTD on ModernBERT at the model FLOPs of that budget\'s run (fewer steps).',
      '',
      '| run | model FLOPs | eval gen_loss | eval disc_auc | ' + ' | '.join(
          f'{task} | - random' for task in downstream) + ' |',
      '|---|---|---|---|' + '---|---|' * len(downstream)]
  first = next(iter(downstream.values()))
  for name in first:
    f, record = pretrained.get(name, (None, None))
    cells = [f'{f:.3g}' if f else '', f'{record["gen_loss"]:.3f}' if record else '',
             f'{record["disc_auc"]:.3f}' if record else '']
    for cells_of_task in downstream.values():
      values = cells_of_task[name]
      cells += [_cell(values), _gain(values, cells_of_task[_random_for(name)])
                if not name.startswith('random weights') else '']
    lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
  return lines


def _record(record: dict) -> str:
  return ', '.join(f'{k} {v:.4g}' if isinstance(v, float) else f'{k} {v}'
                   for k, v in record.items() if k != 'split')


def _plots(directory: str, arms: dict, downstream: dict, pretrained: dict) -> list[str]:
  """quality_transfer.png (accuracy on unseen words against pre-training steps) and, with a curve,
  quality_curve.png (each seed's gain over random weights against FLOPs, and the median)."""
  names = []

  def save(fig, ax, name, **labels):
    ax.set(**labels)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(directory, name), dpi=90)
    plt.close(fig)
    names.append(name)

  fig, ax = plt.subplots(figsize=(6, 3.5))
  for arm in [arm for arm in ('rtd', 'mlm', 'modernbert') if arm in arms]:
    ax.plot(list(arms[arm]), [np.median(v) for v in arms[arm].values()], 'o-',
            label='RTD, ModernBERT' if arm == 'modernbert' else arm.upper())
  for i, arm in enumerate(('random weights', 'shuffled tokenizer')):
    ax.axhline(np.median(next(iter(arms[arm].values()))), color=f'C{i + 2}', ls='--', label=arm)
  save(fig, ax, 'quality_transfer.png', xscale='log', xlabel='pre-training steps',
       ylabel='dev accuracy, unseen words', title='Transfer on the artificial language')
  if downstream:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for i, (task, cells) in enumerate(downstream.items()):
      # FLOPs -> every seed's gain, by architecture; the vocabulary ablation is a table row only.
      gains = {'': {}, MODERNBERT: {}}
      for name, values in cells.items():
        if name in pretrained and 'vocab' not in name:
          arm = gains[MODERNBERT if name.endswith(MODERNBERT) else '']
          baseline = np.median(cells[_random_for(name)])
          arm.setdefault(pretrained[name], []).extend(v - baseline for v in values)
      for arm, style in (('', 'o-'), (MODERNBERT, 's--')):
        xs = sorted(gains[arm])
        if not xs:
          continue
        ax.scatter([x for x in xs for _ in gains[arm][x]], [g for x in xs for g in gains[arm][x]],
                   s=10, color=f'C{i}', alpha=0.5)
        ax.plot(xs, [np.median(gains[arm][x]) for x in xs], style, color=f'C{i}',
                label=f'{task}, {arm}' if arm else task)
    ax.axhline(0, color='gray', lw=0.8)
    save(fig, ax, 'quality_curve.png', xscale='log', xlabel='pre-training model FLOPs',
         ylabel='dev accuracy - random weights', title='Gain over random weights against compute')
  return names


def run(config: ml_collections.ConfigDict, output: str, doc: str, seeds: str, transfer_steps,
        budgets, toy: bool, mlm: bool = True, modernbert_transfer: bool = True,
        modernbert_budgets=()) -> dict:
  """Runs both measurements and writes `doc` and its plots; returns the medians."""
  try:
    transfer_steps = [int(n) for n in transfer_steps]
    budgets = [float(b) for b in budgets]
    modernbert_budgets = [float(b) for b in modernbert_budgets]
  except ValueError as e:
    raise UserError(f'--transfer_steps, --budgets and --modernbert_budgets take numbers ({e})') from e
  if not transfer_steps or min(transfer_steps) < 1 or min(budgets + modernbert_budgets, default=1) <= 0:
    raise UserError('--transfer_steps needs at least one positive count, and --budgets and '
                    '--modernbert_budgets positive multiples')
  transfer_config = ml_collections.ConfigDict(config.to_dict())
  if toy:
    _shrink(transfer_config, toy=False)
    _shrink(config, toy=True)
  arms, records = transfer(transfer_config, os.path.join(output, 'transfer'), transfer_steps, seeds,
                           toy, mlm, modernbert_transfer)
  downstream, pretrained = (curve(config, output, budgets, seeds, toy, modernbert_budgets)
                            if budgets or modernbert_budgets else ({}, {}))
  directory = os.path.dirname(os.path.abspath(doc))
  os.makedirs(directory, exist_ok=True)
  plots = _plots(directory, arms, downstream, {k: v[0] for k, v in pretrained.items()})
  lines = [f'Written by `python -m bench.quality{" --toy" if toy else ""} '
           f'--transfer_steps={",".join(map(str, transfer_steps))} '
           f'--budgets={",".join(f"{b:g}" for b in budgets)} '
           f'--modernbert_budgets={",".join(f"{b:g}" for b in modernbert_budgets)}` on '
           f'{jax.devices()[0].device_kind} '
           f'({os.cpu_count()} cores), jax {jax.__version__}.', '']
  lines += _transfer_section(transfer_config, arms, records, seeds)
  if downstream:
    lines += [''] + _curve_section(config, downstream, pretrained, seeds)
  lines += [''] + [f'![{name}]({name})' for name in plots]
  _replace_section(doc, '\n'.join(lines))
  medians = {f'transfer {arm} {n}': float(np.median(v)) for arm, by_steps in arms.items()
             for n, v in by_steps.items()}
  medians.update({f'{task} {name}': float(np.median(v)) for task, cells in downstream.items()
                  for name, v in cells.items()})
  return medians


BEGIN, END = '<!-- begin bench/quality.py output -->', '<!-- end bench/quality.py output -->'


def _replace_section(doc: str, text: str) -> None:
  """Writes `text` between the BEGIN and END markers of `doc`, keeping what is written around them
  by hand; a new doc holds the section alone."""
  before, after = '', '\n'
  if os.path.exists(doc):
    with open(doc, encoding='utf-8') as f:
      old = f.read()
    if BEGIN in old and END in old:
      before, after = old.split(BEGIN)[0], old.split(END, 1)[1]
  files.write_atomically(doc, f'{before}{BEGIN}\n{text}\n{END}{after}')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {" ".join(argv[1:])}')
  cli.quiet_libraries()
  try:
    medians = run(_CONFIG.value, _OUTPUT.value, _DOC.value, _SEEDS.value, _TRANSFER_STEPS.value,
                  _BUDGETS.value, _TOY.value, _MLM.value, _MODERNBERT_TRANSFER.value,
                  _MODERNBERT_BUDGETS.value)
  except UserError as e:
    sys.exit(f'error: {e}')
  except preemption.Stopped as e:  # Ctrl-C or SIGTERM: the run's checkpoint is saved; rerun to go on.
    sys.exit(str(e))
  print(json.dumps(medians))


if __name__ == '__main__':
  app.run(main)
