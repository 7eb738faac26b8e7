r"""The paper's central result, small: RTD against the MLM baseline at equal compute, and both against
random weights, fine-tuned on offline tasks (Clark et al., ICLR 2020, Table 1 and Figure 3).

  python -m bench.quality --output=runs/quality        # about 30 minutes on 2 CPU cores

from the repository root (bench/ is a package, as configs/ is).

1. Pre-trains --config (the README's quick start, RTD) and the MLM baseline of the discriminator's
   sizes (BERT's 80/10/10 masking) on the builtin corpus, for the same model FLOPs
   (electra_jax/flops.py): the MLM model has no generator, so it gets more steps.
2. Builds the offline tasks (electra_jax.finetune.docstring_kind and .docstring_next) and fine-tunes
   each as the README does, from random weights (from_scratch), the MLM run and the RTD run, over
   --seeds.
3. The domain-adaptive use: RTD pre-training on one task's training texts alone (labels dropped, a
   `text:` source), then fine-tuning on a tenth of its labels (for as many steps as 3 epochs of
   all of them), against random weights.
4. Writes its section of --doc (docs/quality.md, between markers; the rest is kept): the tables
   (medians over seeds, min-max), the pre-training runs'
   last eval records, and PNG plots beside it (eval curves against FLOPs, RTD health over steps,
   downstream accuracy). Finished runs and seeds under --output are reused by a rerun.

--toy runs the same code paths at toy sizes (a CI test does).
"""

import csv
import json
import os
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

from configs.finetune import classification  # pylint: disable=g-import-not-at-top
from electra_jax import cli, files, flops, train  # pylint: disable=g-import-not-at-top
from electra_jax import workdir as workdir_lib  # pylint: disable=g-import-not-at-top
from electra_jax.errors import UserError  # pylint: disable=g-import-not-at-top
from electra_jax.finetune import docstring_kind, docstring_next  # pylint: disable=g-import-not-at-top
from electra_jax.finetune import train as finetune_train  # pylint: disable=g-import-not-at-top

_CONFIG = config_flags.DEFINE_config_file(
    'config', os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'configs',
                           'tiny.py'), 'The RTD pre-training config (the README quick start\'s).')
_OUTPUT = flags.DEFINE_string('output', 'runs/quality', 'Directory for every run of the comparison.')
_DOC = flags.DEFINE_string('doc', 'docs/quality.md', 'Markdown report; its plots go beside it.')
_SEEDS = flags.DEFINE_string('seeds', '0,1,2,3,4', 'Fine-tuning seeds.')
_TOY = flags.DEFINE_bool('toy', False, 'Toy sizes: checks the code paths in a minute or two.')
_TASKS = flags.DEFINE_list('tasks', ['docstring_kind', 'docstring_next'], 'Offline tasks to run.')

TASKS = {'docstring_kind': docstring_kind.rows, 'docstring_next': docstring_next.rows}
INITS = ('scratch', 'mlm', 'rtd')
DOMAIN_TASK = 'docstring_kind'  # The domain-adaptive row's task.
DOMAIN_LABEL_SHARE = 0.1


def _shrink(config: ml_collections.ConfigDict) -> None:
  """Toy sizes: a model and runs that compile and finish in seconds."""
  config.model.update(vocab_size=256, embedding_size=32, hidden_size=32, num_layers=1, num_heads=1,
                      intermediate_size=64, max_position_embeddings=64)
  config.data.max_seq_length = 64
  config.train.update(steps=4, warmup_steps=1, batch_size=8, log_every=2, eval_every=2,
                      checkpoint_every=4, eval_batches=1)


def _pretrain(config: ml_collections.ConfigDict, workdir: str) -> list[dict]:
  train.train_and_evaluate(config, workdir)
  with open(os.path.join(workdir, 'metrics.jsonl'), encoding='utf-8') as f:
    return [json.loads(line) for line in f]


def mlm_config(rtd: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The MLM baseline of `rtd`'s discriminator, for the same model FLOPs (and as many evaluations)."""
  config = ml_collections.ConfigDict(rtd.to_dict())
  config.objective.kind = 'mlm'
  config.objective.mask_token_fraction, config.objective.random_token_fraction = 0.8, 0.1
  budget = rtd.train.steps * flops.step_flops(rtd)
  config.train.steps = max(1, round(budget / flops.step_flops(config)))
  scale = config.train.steps / rtd.train.steps
  for name in ('warmup_steps', 'log_every', 'eval_every', 'checkpoint_every'):
    config.train[name] = max(1, round(rtd.train[name] * scale)) if rtd.train[name] else 0
  return config


def _write_task(directory: str, rows: dict[str, list[dict]]) -> dict[str, str]:
  """train.csv, dev.csv, a train file with DOMAIN_LABEL_SHARE of the rows, and the training texts
  alone as a corpus (one document per row); returns their paths."""
  docstring_kind.write_splits(directory, rows)
  few = rows['train'][:max(2, round(len(rows['train']) * DOMAIN_LABEL_SHARE))]
  docstring_kind.write_splits(os.path.join(directory, 'few'), {'train': few})
  corpus = os.path.join(directory, 'texts.txt')
  text = ''.join('\n'.join(row[k] for k in ('text', 'text_pair') if k in row) + '\n\n'
                 for row in rows['train'])
  # Rewritten only when it changes: a corpus's fingerprint includes its modification time, and a
  # rerun must find the pre-training run on it reusable.
  if not os.path.exists(corpus) or open(corpus, encoding='utf-8').read() != text:
    files.write_atomically(corpus, text)
  return {'train': os.path.join(directory, 'train.csv'), 'dev': os.path.join(directory, 'dev.csv'),
          'few': os.path.join(directory, 'few', 'train.csv'), 'corpus': corpus}


def _finetune(init_checkpoint: str, scratch: bool, train_file: str, eval_file: str, workdir: str,
              seeds: str, toy: bool, epochs: float = 0.0) -> list[float]:
  """Accuracy per seed of the README's fine-tuning command (with `epochs` if given)."""
  config = classification.get_config()
  config.init_checkpoint, config.from_scratch = init_checkpoint, scratch
  config.train_file, config.eval_file, config.seeds = train_file, eval_file, seeds
  config.train.epochs = epochs
  if toy:
    config.train.epochs, config.max_seq_length = 0.02, 64
  finetune_train.finetune(config, workdir)
  accuracies = []
  for seed in seeds.split(','):
    with open(os.path.join(workdir, f'seed_{seed}', workdir_lib.RESULTS_FILE),
              encoding='utf-8') as f:
      accuracies.append(json.load(f)['accuracy'])
  return accuracies


def _cell(values: list[float]) -> str:
  return f'{np.median(values):.3f} ({min(values):.3f}-{max(values):.3f})'


def _plots(directory: str, curves: dict[str, list[dict]], downstream: dict) -> list[str]:
  names = []

  def save(fig, name):
    fig.tight_layout()
    fig.savefig(os.path.join(directory, name), dpi=90)
    plt.close(fig)
    names.append(name)

  fig, (lm, auc) = plt.subplots(1, 2, figsize=(10, 3.5))
  for kind, metric, label in (('rtd', 'gen_accuracy', "RTD's generator"),
                              ('mlm', 'mlm_accuracy', 'MLM baseline')):
    evals = [r for r in curves[kind] if r['split'] == 'eval']
    lm.plot([r['flops'] for r in evals], [r[metric] for r in evals], 'o-', label=label)
  lm.set(xlabel='model FLOPs', ylabel='eval masked-LM accuracy', title='Masked LM vs compute')
  lm.legend()
  evals = [r for r in curves['rtd'] if r['split'] == 'eval']
  auc.plot([r['flops'] for r in evals], [r['disc_auc'] for r in evals], 'o-', color='C2')
  auc.set(xlabel='model FLOPs', ylabel='eval disc_auc', title="RTD's discriminator vs compute")
  save(fig, 'quality_curves.png')

  fig, ax = plt.subplots(figsize=(6, 3.5))
  records = [r for r in curves['rtd'] if r['split'] == 'train']
  for metric in ('disc_auc', 'disc_spread', 'sampled_accuracy', 'disc_accuracy_replaced',
                 'disc_accuracy_original'):
    ax.plot([r['step'] for r in records], [r[metric] for r in records], label=metric)
  ax.set(xlabel='step', ylim=(0, 1.02), title='RTD health (train records)')
  ax.legend(fontsize=7)
  save(fig, 'quality_health.png')

  fig, ax = plt.subplots(figsize=(7, 3.5))
  rows = list(downstream.items())
  for column, (label, per_init) in enumerate(rows):
    for init, values in per_init.items():
      offset = INITS.index(init)
      x = column + (offset - 1) * 0.25
      ax.scatter([x] * len(values), values, color=f'C{offset}', s=12,
                 label=init if column == 0 else None)
      ax.hlines(np.median(values), x - 0.1, x + 0.1, color=f'C{offset}')
  ax.set_xticks(range(len(rows)), [label.split(':')[0] + ('\n(domain-adaptive)' if ':' in label
                                                           else '') for label, _ in rows],
                fontsize=7)
  ax.set(ylabel='dev accuracy', title='Fine-tuning: each seed, and the median')
  ax.legend(fontsize=7)
  save(fig, 'quality_downstream.png')
  return names


def run(rtd_config: ml_collections.ConfigDict, output: str, doc: str, seeds: str, toy: bool,
        tasks: list[str]) -> dict:
  """Runs the comparison, writes `doc` and its plots; returns the downstream accuracies."""
  unknown = [task for task in tasks if task not in TASKS]
  if unknown:
    raise UserError(f'--tasks: unknown task {unknown[0]!r}; use {", ".join(TASKS)}')
  if toy:
    _shrink(rtd_config)
  runs = {'rtd': os.path.join(output, 'rtd'), 'mlm': os.path.join(output, 'mlm')}
  configs = {'rtd': rtd_config, 'mlm': mlm_config(rtd_config)}
  curves = {kind: _pretrain(configs[kind], runs[kind]) for kind in ('rtd', 'mlm')}

  stdlib = sysconfig.get_paths()['stdlib']
  downstream, sizes = {}, {}
  for task in tasks:
    paths = _write_task(os.path.join(output, 'tasks', task), TASKS[task](stdlib, 0))
    with open(paths['train'], encoding='utf-8', newline='') as f:
      sizes[task] = sum(1 for _ in csv.DictReader(f))
    downstream[task] = {
        init: _finetune(runs['rtd' if init == 'scratch' else init], init == 'scratch',
                        paths['train'], paths['dev'], os.path.join(output, 'ft', f'{task}_{init}'),
                        seeds, toy)
        for init in INITS}
    if task == DOMAIN_TASK:
      domain = ml_collections.ConfigDict(rtd_config.to_dict())
      domain.data.source = 'text:' + paths['corpus']
      domain.data.eval_fraction = 0.05
      curves['domain'] = _pretrain(domain, os.path.join(output, 'domain_rtd'))
      label = (f'{task}: {DOMAIN_LABEL_SHARE:.0%} of labels, {3 / DOMAIN_LABEL_SHARE:.0f} epochs, '
               'RTD on its own texts')
      # As many updates as the full task's 3 epochs: the default 3 epochs of a tenth of the rows
      # are 18 steps, after which both starts still answer the majority class.
      downstream[label] = {
          init: _finetune(os.path.join(output, 'domain_rtd'), init == 'scratch', paths['few'],
                          paths['dev'], os.path.join(output, 'ft', f'{task}_few_{init}'), seeds, toy,
                          epochs=3 / DOMAIN_LABEL_SHARE)
          for init in ('scratch', 'rtd')}
  _write_doc(doc, configs, curves, downstream, sizes, seeds, toy)
  return downstream


def _write_doc(doc: str, configs, curves, downstream, sizes, seeds: str, toy: bool) -> None:
  directory = os.path.dirname(os.path.abspath(doc))
  os.makedirs(directory, exist_ok=True)
  plots = _plots(directory, curves, downstream)
  rtd, mlm = configs['rtd'], configs['mlm']
  lines = [
      '## RTD against MLM at equal compute, and against random weights', '',
      'Written by `python -m bench.quality' + (' --toy' if toy else '') + '` on '
      f'{jax.devices()[0].device_kind} ({os.cpu_count()} cores), jax {jax.__version__}. '
      f'Fine-tuning: the README\'s command (configs/finetune/classification.py), seeds {seeds}; '
      'each cell is the median dev accuracy over the seeds, with the lowest and highest.', '',
      f'- **RTD**: {rtd.train.steps} steps of the pre-training config '
      f'({rtd.model.num_layers} x {rtd.model.hidden_size}, batch {rtd.train.batch_size} x '
      f'{rtd.data.max_seq_length}), {rtd.train.steps * flops.step_flops(rtd):.3g} model FLOPs.',
      f'- **MLM**: the same discriminator sizes as a masked LM (80/10/10 masking), '
      f'{mlm.train.steps} steps for the same {mlm.train.steps * flops.step_flops(mlm):.3g} FLOPs.',
      '- **scratch**: the same sizes and tokenizer with random weights (`from_scratch=True`).', '',
      '| task | train rows | scratch | MLM | RTD | RTD - scratch | RTD - MLM |',
      '|---|---|---|---|---|---|---|']
  for task in sizes:
    cells = downstream[task]
    medians = {init: np.median(values) for init, values in cells.items()}
    lines.append(f'| {task} | {sizes[task]} | ' + ' | '.join(_cell(cells[i]) for i in INITS)
                 + f' | {medians["rtd"] - medians["scratch"]:+.3f} | '
                 f'{medians["rtd"] - medians["mlm"]:+.3f} |')
  for label, cells in downstream.items():
    if label not in TASKS:
      lines += ['', f'Domain-adaptive ({label}):', '', '| scratch | RTD | RTD - scratch |',
                '|---|---|---|', f'| {_cell(cells["scratch"])} | {_cell(cells["rtd"])} | '
                f'{np.median(cells["rtd"]) - np.median(cells["scratch"]):+.3f} |']
  lines += ['', 'Last eval records of the pre-training runs:', '']
  for kind, records in curves.items():
    last = [r for r in records if r['split'] == 'eval'][-1]
    shown = {k: v for k, v in last.items() if k not in ('split',)}
    lines.append(f'- {kind}: ' + ', '.join(
        f'{k} {v:.4g}' if isinstance(v, float) else f'{k} {v}' for k, v in shown.items()))
  lines += [''] + [f'![{name}]({name})' for name in plots]
  _replace_section(doc, '\n'.join(lines))


BEGIN, END = '<!-- begin bench/quality.py output -->', '<!-- end bench/quality.py output -->'


def _replace_section(doc: str, text: str) -> None:
  """Writes `text` between the BEGIN and END markers of `doc`, keeping what is written around them
  by hand (the ablations); a new doc holds the section alone."""
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
    downstream = run(_CONFIG.value, _OUTPUT.value, _DOC.value, _SEEDS.value, _TOY.value,
                     _TASKS.value)
  except UserError as e:
    sys.exit(f'error: {e}')
  print(json.dumps({label: {init: float(np.median(v)) for init, v in cells.items()}
                    for label, cells in downstream.items()}))


if __name__ == '__main__':
  app.run(main)
