"""Eight fake CPU devices, set before JAX initialises, so that sharded code paths run on any machine."""

import atexit
import csv
import json
import os
import random
import shutil
import tempfile

os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                           ' --xla_force_host_platform_device_count=8').strip()
# One JAX persistent compilation cache for the session, shared by this process and every command
# the tests start (they inherit the environment): a program compiled once (the small config's step,
# say) is read back instead of compiled again by the next test or subprocess. A fresh directory per
# session, removed at exit; a JAX_COMPILATION_CACHE_DIR set outside is used as it is.
if 'JAX_COMPILATION_CACHE_DIR' not in os.environ:
  os.environ['JAX_COMPILATION_CACHE_DIR'] = tempfile.mkdtemp(prefix='electra_jax_tests_jit_')
  atexit.register(shutil.rmtree, os.environ['JAX_COMPILATION_CACHE_DIR'], ignore_errors=True)

import pytest  # pylint: disable=g-import-not-at-top

from tests import small_config as small_config_file  # pylint: disable=g-import-not-at-top


@pytest.fixture
def config():
  return small_config()


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def small_config():
  return small_config_file.get_config()


def cli_env(devices: int = 2, data_dir: str | None = None, **extra) -> dict[str, str]:
  """The environment for running a command in a subprocess on `devices` fake CPU devices."""
  env = {**os.environ, 'XLA_FLAGS': f'--xla_force_host_platform_device_count={devices}',
         'JAX_PLATFORMS': 'cpu', **extra}
  if data_dir:
    env['ELECTRA_JAX_DATA_DIR'] = data_dir  # The builtin corpus, tokenizer and dataset go here.
  return env


def read_metrics(workdir) -> list[dict]:
  with open(os.path.join(workdir, 'metrics.jsonl'), encoding='utf-8') as f:
    return [json.loads(line) for line in f]


def saved_state(step_dir) -> dict:
  """A checkpoint's train state as numpy arrays, whatever mesh wrote it."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  path = os.path.join(step_dir, 'state')
  metadata = ocp.PyTreeCheckpointer().metadata(path).item_metadata
  return ocp.PyTreeCheckpointer().restore(path, restore_args=jax.tree.map(
      lambda _: ocp.RestoreArgs(restore_type=np.ndarray), metadata))


_WORDS = ('the model reads text and learns which tokens were replaced by a small generator while '
          'training runs on every device of the mesh with sharded parameters and a global batch '
          'so that users can pretrain encoders for their own language domain and vocabulary').split()


def write_corpus(directory, files: int = 3, documents: int = 40, seed: int = 0) -> str:
  """Small English-like text files (one sentence per line, blank line between documents); returns
  a glob that matches them."""
  rng = random.Random(seed)
  os.makedirs(directory, exist_ok=True)
  for f in range(files):
    with open(os.path.join(directory, f'part{f}.txt'), 'w', encoding='utf-8') as out:
      for _ in range(documents):
        for _ in range(rng.randint(1, 12)):
          out.write(' '.join(rng.choice(_WORDS) for _ in range(rng.randint(3, 25))) + '.\n')
        out.write('\n')
  return os.path.join(directory, '*.txt')


def write_bpe_tokenizer_json(path, corpus_glob: str, vocab_size: int = 600) -> str:
  """A byte-level BPE tokenizer.json trained on the corpus, its special tokens added after the
  vocabulary as in ModernBERT's ([PAD] is not id 0); returns its path."""
  import glob  # pylint: disable=g-import-not-at-top
  import tokenizers  # pylint: disable=g-import-not-at-top
  pipeline = tokenizers.Tokenizer(tokenizers.models.BPE())
  pipeline.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
  pipeline.decoder = tokenizers.decoders.ByteLevel()
  pipeline.train(sorted(glob.glob(corpus_glob)), tokenizers.trainers.BpeTrainer(
      vocab_size=vocab_size, initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet()))
  pipeline.add_special_tokens(['[UNK]', '[CLS]', '[SEP]', '[PAD]', '[MASK]'])
  pipeline.post_processor = tokenizers.processors.TemplateProcessing(
      single='[CLS] $A [SEP]', pair='[CLS] $A [SEP] $B:1 [SEP]:1',
      special_tokens=[(t, pipeline.token_to_id(t)) for t in ('[CLS]', '[SEP]')])
  pipeline.save(str(path))
  return str(path)


def _write_csv(path, rows):
  with open(path, 'w', encoding='utf-8', newline='') as f:
    writer = csv.DictWriter(f, fieldnames=['text', 'label'])
    writer.writeheader()
    writer.writerows(rows)
  return str(path)


def keyword_task(directory, train_rows=384, eval_rows=128):
  """Label 'yes' when the text contains the word 'generator': learnable from the tokens alone."""
  rng = random.Random(0)
  others = [w for w in _WORDS if w != 'generator']

  def rows(n):
    result = []
    for i in range(n):
      words = [rng.choice(others) for _ in range(rng.randint(4, 12))]
      if i % 2:
        words[rng.randrange(len(words))] = 'generator'
      result.append({'text': ' '.join(words), 'label': 'yes' if i % 2 else 'no'})
    return result

  return (_write_csv(os.path.join(directory, 'train.csv'), rows(train_rows)),
          _write_csv(os.path.join(directory, 'dev.csv'), rows(eval_rows)))


def check_finetuned_export(directory, architecture: str, **start) -> None:
  """Fine-tunes on keyword_task from `start` (init_checkpoint= or init_from_hf=), exports the run,
  and checks that transformers loads it as `architecture` and predicts what the run predicted."""
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  from configs.finetune import classification  # pylint: disable=g-import-not-at-top
  from electra_jax import export  # pylint: disable=g-import-not-at-top
  from electra_jax.finetune import train as finetune_train  # pylint: disable=g-import-not-at-top
  config = classification.get_config()
  config.update(start)
  config.train_file, config.eval_file = keyword_task(directory, train_rows=96, eval_rows=48)
  config.max_seq_length = 32
  config.train.epochs, config.train.learning_rate = 2, 1e-3
  config.train.eval_batch_size = 48
  run, out = os.path.join(directory, 'run'), os.path.join(directory, 'hf')
  finetune_train.finetune(config, run)
  assert export.export(run, out) == [('', f'{architecture} from seed_0')]

  hf_model, info = transformers.AutoModelForSequenceClassification.from_pretrained(
      out, output_loading_info=True)
  assert not any(info.values()), info
  assert type(hf_model).__name__ == architecture
  assert hf_model.config.id2label == {0: 'no', 1: 'yes'}
  tokenizer = transformers.AutoTokenizer.from_pretrained(out)
  with open(config.eval_file, encoding='utf-8') as f:
    texts = [line.rsplit(',', 1)[0] for line in f.read().splitlines()[1:]]
  with torch.no_grad():
    logits = hf_model.eval()(**tokenizer(texts, padding=True, return_tensors='pt')).logits.numpy()
  with open(os.path.join(run, 'predictions.jsonl'), encoding='utf-8') as f:
    ours = [json.loads(line)['prediction'] for line in f]
  assert [hf_model.config.id2label[i] for i in logits.argmax(-1)] == ours


@pytest.fixture
def text_config(config, tmp_path):
  """The small config reading a generated text corpus, with everything cached under tmp_path."""
  config.data.source = 'text:' + write_corpus(str(tmp_path / 'corpus'), documents=80)
  config.data.data_dir = str(tmp_path / 'data')
  config.data.eval_fraction = 0.2
  config.train.eval_batches = 2
  return config


def plain_sentencepiece_model(prefix: str) -> str:
  """A sentencepiece model with sentencepiece's own specials (<unk>, <s>, </s>), not ELECTRA's."""
  import sentencepiece as spm  # pylint: disable=g-import-not-at-top
  spm.SentencePieceTrainer.train(sentence_iterator=iter(['the model reads plain text'] * 50),
                                 model_prefix=prefix, vocab_size=20, hard_vocab_limit=False,
                                 minloglevel=2)
  return prefix + '.model'


def pretraining_config(root):
  """The config of the pretrained_run fixture: its corpus and data cache are under `root`."""
  c = small_config()
  c.data.source = 'text:' + os.path.join(root, 'corpus', '*.txt')
  c.data.data_dir = os.path.join(root, 'data')
  c.data.eval_fraction = 0.0
  c.train.steps, c.train.learning_rate, c.train.checkpoint_every = 6, 5e-4, 3
  return c


@pytest.fixture(scope='session')
def pretrained_run(tmp_path_factory) -> str:
  """The workdir (root/run) of a short pre-training run on a generated text corpus (shared by the
  fine-tuning tests): checkpoints/, config.json and tokenizer.model."""
  from electra_jax import train  # pylint: disable=g-import-not-at-top
  root = tmp_path_factory.mktemp('pretrained')
  write_corpus(str(root / 'corpus'), documents=80)
  train.train_and_evaluate(pretraining_config(str(root)), str(root / 'run'))
  return str(root / 'run')
