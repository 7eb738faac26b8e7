import json
import os
import random
import shutil
import subprocess
import sys
import time

import jax
import ml_collections
import numpy as np
import pytest

from configs.finetune import classification, glue as glue_config, qa as qa_config
from configs.finetune import tagging as tagging_config
from electra_jax import checkpoint, lease, optimizer, sharding, step
from electra_jax.errors import UserError
from electra_jax.finetune import pretrained, tasks, train
from tests.conftest import _WORDS, keyword_task


@pytest.fixture
def finetune_config(pretrained_run, tmp_path):
  c = classification.get_config()
  c.init_checkpoint = pretrained_run
  c.train_file, c.eval_file = keyword_task(str(tmp_path))
  c.max_seq_length = 32
  c.train.eval_batch_size = 64
  c.train.log_every = 10
  c.train.min_steps = 0  # A few steps are enough for what these tests check; the floor has its own.
  return c


def test_a_learnable_task_reaches_high_accuracy_and_writes_results(finetune_config, tmp_path):
  finetune_config.train.epochs = 12
  finetune_config.train.learning_rate = 1e-3
  workdir = str(tmp_path / 'run')
  results = train.finetune(finetune_config, workdir)
  assert set(results) == {'accuracy', 'f1', 'mcc'}
  assert results['accuracy'] >= 0.9, results
  with open(os.path.join(workdir, 'results.json'), encoding='utf-8') as f:
    assert json.load(f) == {'median': results, 'median_seed': 0, 'seeds': {'0': results}}
  with open(os.path.join(workdir, 'predictions.jsonl'), encoding='utf-8') as f:
    predictions = [json.loads(line) for line in f]
  assert len(predictions) == 128 and [p['index'] for p in predictions] == list(range(128))
  assert np.mean([p['prediction'] == p['label'] for p in predictions]) == pytest.approx(
      results['accuracy'])
  with open(os.path.join(workdir, 'seed_0', 'metrics.jsonl'), encoding='utf-8') as f:
    records = [json.loads(line) for line in f]
  assert records[-1] == {'step': 144, 'split': 'eval', **results}  # 12 epochs x 384 rows / 32.
  assert os.listdir(os.path.join(workdir, 'seed_0', 'checkpoints')) == ['144']


def test_seeds_report_the_median_of_every_job_and_a_rerun_reuses_finished_seeds(
    finetune_config, tmp_path, monkeypatch):
  finetune_config.train.epochs = 0.25  # 3 steps: the seeds disagree.
  finetune_config.seeds = '0,2'
  workdir = str(tmp_path / 'run')
  train.finetune(finetune_config, workdir)
  finetune_config.seeds = '1'  # Another job in the same workdir: its results join the first's.
  median = train.finetune(finetune_config, workdir)
  per_seed = []
  for seed in (0, 1, 2):
    with open(os.path.join(workdir, f'seed_{seed}', 'results.json'), encoding='utf-8') as f:
      per_seed.append(json.load(f))
  assert median == {k: float(np.median([r[k] for r in per_seed])) for k in median}
  middle = sorted(range(3), key=lambda s: per_seed[s]['accuracy'])[1]
  with open(os.path.join(workdir, 'results.json'), encoding='utf-8') as f:
    assert json.load(f) == {'median': median, 'median_seed': middle,
                            'seeds': {str(seed): r for seed, r in enumerate(per_seed)}}
  with open(os.path.join(workdir, 'predictions.jsonl'), encoding='utf-8') as a, open(
      os.path.join(workdir, f'seed_{middle}', 'predictions.jsonl'), encoding='utf-8') as b:
    assert a.read() == b.read()

  monkeypatch.setattr(train.loop, 'run_steps', lambda *a, **k: pytest.fail('trained again'))
  finetune_config.seeds = '0,1,2'
  assert train.finetune(finetune_config, workdir) == median

  recorded = {name: open(os.path.join(workdir, name), 'rb').read()
              for name in ('config.json', 'finetune_config.json')}
  finetune_config.train.learning_rate = 1e-5
  with pytest.raises(UserError, match=r'another config \(train.learning_rate: 0.0 there, 1e-05 '
                     r'here\); use another --workdir'):
    train.finetune(finetune_config, workdir)
  assert recorded == {name: open(os.path.join(workdir, name), 'rb').read() for name in recorded}


def test_a_seed_that_another_run_holds_is_refused_before_anything_is_written(finetune_config,
                                                                             tmp_path):
  finetune_config.seeds = '0,1'
  workdir = tmp_path / 'run'
  (workdir / 'seed_1').mkdir(parents=True)
  with lease.hold(str(workdir / 'seed_1')):
    with pytest.raises(UserError, match=f'^{workdir}/seed_1 is in use by another run: host '):
      train.finetune(finetune_config, str(workdir))
  assert sorted(os.listdir(workdir)) == ['seed_0', 'seed_1']
  assert os.listdir(workdir / 'seed_0') == []  # Released again; nothing was written.


def test_a_job_with_another_config_is_refused_while_another_job_trains_a_seed(finetune_config,
                                                                            tmp_path):
  """The first job has recorded its config and holds seed_0, with nothing saved yet: a second job
  with another seed and another learning rate must not replace the config."""
  workdir = tmp_path / 'run'
  (workdir / 'seed_0').mkdir(parents=True)
  first = json.loads(finetune_config.to_json())
  (workdir / train.CONFIG_FILE).write_text(json.dumps(first), encoding='utf-8')
  with subprocess.Popen([sys.executable, '-c', 'import sys; sys.stdin.read()'],
                        stdin=subprocess.PIPE) as job:
    now = time.time()
    (workdir / 'seed_0' / lease.LOCK_FILE).write_text(json.dumps(
        {**lease.machine(), 'pid': job.pid, 'since': now, 'renewed': now}), encoding='utf-8')
    finetune_config.seeds, finetune_config.train.learning_rate = '1', 1e-5
    with pytest.raises(UserError, match=r'another config \(train.learning_rate: 0.0 there, 1e-05 '
                       'here'):
      train.finetune(finetune_config, str(workdir))
    job.stdin.close()
  assert json.loads((workdir / train.CONFIG_FILE).read_text(encoding='utf-8')) == first
  assert os.listdir(workdir / 'seed_1') == []


def test_a_new_seed_must_start_from_the_checkpoint_the_others_started_from(finetune_config,
                                                                         tmp_path):
  workdir = tmp_path / 'run'
  finetune_config.train.epochs = 0.1
  train.finetune(finetune_config, str(workdir))
  with open(workdir / 'seed_0' / train.ORIGIN_FILE, encoding='utf-8') as f:
    origin = json.load(f)
  source = pretrained.open_source(finetune_config)
  assert origin == {'init_checkpoint': source.directory,
                    'step': checkpoint.latest_step(os.path.join(source.directory, 'checkpoints'))}
  # As if the pre-training run had saved a newer checkpoint since seed 0 started.
  (workdir / 'seed_0' / train.ORIGIN_FILE).write_text(json.dumps({**origin, 'step': 1}),
                                                      encoding='utf-8')
  finetune_config.seeds = '1'
  with pytest.raises(UserError, match=(
      rf'^--workdir={workdir}: seed_0 started from the checkpoint of step 1 of .*, and a new seed '
      rf'would start from the checkpoint of step {origin["step"]} of .*; fine-tune into another '
      '--workdir')):
    train.finetune(finetune_config, str(workdir))
  assert not os.path.exists(workdir / 'seed_1' / train.ORIGIN_FILE)
  finetune_config.seeds = '0'  # A finished (or resumed) seed reads no weights: still fine.
  assert 'accuracy' in train.finetune(finetune_config, str(workdir))
  # A seed of this job starts after the pre-training run dropped the step the job started from.
  with pytest.raises(UserError, match=(
      rf'no longer holds the checkpoint of step {origin["step"] + 1000} that this fine-tuning run '
      'started from .*; fine-tune into another --workdir')):
    pretrained._restore_encoder(source.directory, {}, False, origin['step'] + 1000)  # pylint: disable=protected-access


def test_from_scratch_never_reads_the_pretrained_weights(finetune_config, tmp_path, monkeypatch):
  """Nor needs them: a pre-training run without a checkpoint gives its sizes and tokenizer."""
  sizes_only = tmp_path / 'sizes_only'
  sizes_only.mkdir()
  for name in ('config.json', 'tokenizer.model'):
    shutil.copy(os.path.join(finetune_config.init_checkpoint, name), sizes_only)
  finetune_config.init_checkpoint = str(sizes_only)
  finetune_config.from_scratch = True
  finetune_config.train.epochs = 0.1
  monkeypatch.setattr(pretrained, '_restore_encoder', lambda *a: pytest.fail('weights were read'))
  assert 'accuracy' in train.finetune(finetune_config, str(tmp_path / 'run'))
  assert not os.path.exists(tmp_path / 'run' / 'seed_0' / train.ORIGIN_FILE)


def test_the_encoder_is_the_pretrained_discriminator(finetune_config, pretrained_run):
  """Embeddings and discriminator encoder arrive unchanged; the generator is not part of it."""
  source = pretrained.open_workdir(pretrained_run)
  mesh = sharding.make_mesh(finetune_config.mesh)
  task = train._load_task(finetune_config, source.tokenizer)  # pylint: disable=protected-access
  tuned = step.build(train._objective(finetune_config, source.config.model, task),  # pylint: disable=protected-access
                     *optimizer.create(train._resolve_train(  # pylint: disable=protected-access
                         finetune_config, task, source.config.model)), mesh,
                     finetune_config.mesh.rules)
  encoder = source.read_encoder(tuned.abstract_state.params)

  pretraining = step.build(step.rtd_objective(source.config), *optimizer.create(
      source.config.train), mesh, finetune_config.mesh.rules)
  saved = checkpoint.Checkpoints(os.path.join(pretrained_run, 'checkpoints'), every=1, keep=1,
                                 read_only=True)
  state, _ = saved.restore_latest(pretraining.abstract_state)
  saved.close()
  expected = {'embeddings': state.params['embeddings'],
              'electra': state.params['discriminator']['electra']}
  assert jax.tree.structure(encoder) == jax.tree.structure(expected)
  for a, b in zip(jax.tree.leaves(encoder), jax.tree.leaves(expected)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  assert set(tuned.abstract_state.params) == {'embeddings', 'electra', 'classifier'}


def test_a_missing_or_mismatched_checkpoint_is_one_line(finetune_config, pretrained_run, tmp_path):
  def error(**fields):
    for name, value in fields.items():
      setattr(finetune_config, name, value)
    with pytest.raises(UserError) as raised:
      train.finetune(finetune_config, str(tmp_path / 'run'))
    assert '\n' not in str(raised.value)
    return str(raised.value)

  assert 'init_checkpoint is not set' in error(init_checkpoint='')
  assert 'has no config.json' in error(init_checkpoint=str(tmp_path))
  broken = str(tmp_path / 'broken')
  shutil.copytree(pretrained_run, broken)
  os.remove(os.path.join(broken, 'tokenizer.model'))
  assert 'has no tokenizer' in error(init_checkpoint=broken)

  wider = str(tmp_path / 'wider')
  shutil.copytree(pretrained_run, wider)
  with open(os.path.join(wider, 'config.json'), encoding='utf-8') as f:
    config = json.load(f)
  config['model']['intermediate_size'] *= 2
  with open(os.path.join(wider, 'config.json'), 'w', encoding='utf-8') as f:
    json.dump(config, f)
  message = error(init_checkpoint=wider)
  assert 'does not fit' in message and 'intermediate' in message, message
  shutil.rmtree(os.path.join(wider, 'checkpoints'))
  assert 'no checkpoint' in error(init_checkpoint=wider)


def _task(rows: int, epochs: float = 3) -> tasks.TaskData:
  """A task of `rows` training rows for `_resolve_train`, which reads only their count."""
  return tasks.TaskData(name='task', head='classification', num_outputs=2,
                        train={'input_ids': np.zeros((rows, 8), np.int32)},
                        eval={'input_ids': np.zeros((16, 8), np.int32)}, score=None,
                        predictions_file='predictions.jsonl', main_metric='accuracy', epochs=epochs)


_SMALL = ml_collections.ConfigDict({'hidden_size': 256, 'num_layers': 12})


@pytest.mark.parametrize('rows,epochs,steps', [
    (1_000, 0.0, 300),  # The paper's 3 epochs are 93 updates: raised to the floor.
    (10_000, 0.0, 937),  # Above the floor: the paper's epochs.
    (1_000, 3.0, 93),  # Explicit epochs, even the paper's, are honoured exactly.
    (1_000, 0.5, 15),
])
def test_the_papers_epochs_are_raised_to_a_floor_of_updates_on_small_tasks(rows, epochs, steps):
  config = classification.get_config()
  config.train.epochs = epochs
  resolved = train._resolve_train(config, _task(rows), _SMALL)  # pylint: disable=protected-access
  assert (resolved.steps, resolved.warmup_steps) == (steps, steps // 10)
  assert (resolved.epochs, resolved.learning_rate) == (epochs or 3, 3e-4)


def test_the_log_says_when_the_floor_applied(monkeypatch):
  logged = []
  monkeypatch.setattr(train.logging, 'info', lambda message, *args: logged.append(message % args))
  train._resolve_train(classification.get_config(), _task(193), _SMALL)  # pylint: disable=protected-access
  assert ('3 epochs = 18 steps of 32, raised to the floor of 300 (config.train.min_steps; 49.7 '
          'epochs); warmup 30;') in logged[0]
  config = classification.get_config()
  config.train.min_steps = 10
  train._resolve_train(config, _task(193), _SMALL)  # pylint: disable=protected-access
  assert '3 epochs = 18 steps of 32; warmup 1;' in logged[1]


@pytest.mark.parametrize('config,epochs', [(glue_config.get_config('rte'), 10),
                                           (glue_config.get_config('mrpc'), 3),
                                           (qa_config.get_config(), 2)])
def test_glue_and_squad_keep_the_papers_epochs_exactly(config, epochs):
  """Their scores are compared with the paper's, so even a small training set gets no floor."""
  assert config.train.min_steps == 0
  resolved = train._resolve_train(config, _task(320, epochs), _SMALL)  # pylint: disable=protected-access
  assert resolved.steps == epochs * 10


@pytest.mark.parametrize('change,message', [
    (lambda c: setattr(c, 'kind', 'ner'),
     "kind='ner' is unknown; use one of classification, regression, qa, tagging"),
    (lambda c: setattr(c, 'classifier_head', 'mlp'), "classifier_head='mlp' is unknown; use one of hf"),
    (lambda c: setattr(c, 'max_seq_length', 64), "max_seq_length=64 must be between 8 and the model's"),
    (lambda c: setattr(c.train, 'epochs', -1.0), "epochs=-1.0 must not be negative \\(0 = the paper's\\)"),
    (lambda c: setattr(c.train, 'min_steps', -1), 'min_steps=-1 must not be negative \\(0 = no floor\\)'),
    (lambda c: setattr(c.train, 'warmup_fraction', 1.0), 'warmup_fraction must be in'),
    (lambda c: setattr(c.train, 'layerwise_lr_decay', 1.5), 'layerwise_lr_decay in'),
    (lambda c: setattr(c.train, 'checkpoint_every', 0), 'checkpoint_every=0 must be positive'),
    (lambda c: setattr(c.train, 'eval_batch_size', 12), 'eval_batch_size=12 is not a positive multiple'),
])
def test_impossible_finetuning_configs_are_rejected_with_one_line(change, message):
  model_config = ml_collections.ConfigDict({'max_position_embeddings': 32})
  config = classification.get_config()
  config.max_seq_length = 32
  train.validate(config, model_config)  # Valid as it stands.
  change(config)
  with pytest.raises(UserError, match=message) as error:
    train.validate(config, model_config)
  assert '\n' not in str(error.value)


@pytest.mark.parametrize('seeds,message', [('0,x', 'must be integers'), (' , ', 'one or more distinct'),
                                           ('1,1', 'one or more distinct')])
def test_seeds_must_be_distinct_integers(seeds, message):
  config = classification.get_config()
  assert train.parse_seeds(config) == [0]
  config.seeds = seeds
  with pytest.raises(UserError, match=message):
    train.parse_seeds(config)


def test_squad_and_conll_tasks_run_end_to_end(pretrained_run, tmp_path):
  """Every head trains and writes its metrics and predictions (learning is tested above)."""
  rng = random.Random(0)
  paragraphs = []
  for i in range(24):
    context = ' '.join(rng.choice(_WORDS) for _ in range(40))
    answer_start = context.index(' ') + 1
    answer = context[answer_start:].split(' ')[0]
    qas = [{'id': f'q{i}', 'question': 'which word is second', 'answers': [
        {'text': answer, 'answer_start': answer_start}]}]
    if i % 3 == 0:
      qas.append({'id': f'q{i}x', 'question': 'who wrote it', 'answers': [], 'is_impossible': True})
    paragraphs.append({'context': context, 'qas': qas})
  squad = tmp_path / 'squad.json'
  squad.write_text(json.dumps({'version': 'v2.0', 'data': [{'title': 't',
                                                           'paragraphs': paragraphs}]}))
  c = qa_config.get_config()
  c.init_checkpoint, c.train_file, c.eval_file = pretrained_run, str(squad), str(squad)
  c.max_seq_length, c.qa.max_query_length, c.qa.doc_stride = 32, 8, 8
  c.train.epochs, c.train.eval_batch_size = 1, 64
  results = train.finetune(c, str(tmp_path / 'qa'))
  assert {'exact_match', 'f1', 'has_answer_f1', 'no_answer_f1'} <= set(results)
  with open(tmp_path / 'qa' / 'predictions.json', encoding='utf-8') as f:
    assert set(json.load(f)) == {q['id'] for p in paragraphs for q in p['qas']}

  conll = tmp_path / 'train.conll'
  lines = []
  for _ in range(40):
    for word in rng.sample(_WORDS, 6):
      lines.append(f'{word} NN {"B-ML" if word == "model" else "O"}')
    lines.append('')
  conll.write_text('\n'.join(lines))
  c = tagging_config.get_config()
  c.init_checkpoint, c.train_file, c.eval_file = pretrained_run, str(conll), str(conll)
  c.max_seq_length, c.train.epochs, c.train.eval_batch_size = 32, 1, 64
  results = train.finetune(c, str(tmp_path / 'tagging'))
  assert set(results) == {'precision', 'recall', 'f1', 'token_accuracy'}
  predicted = (tmp_path / 'tagging' / 'predictions.conll').read_text().split('\n\n')
  assert len([s for s in predicted if s.strip()]) == 40
