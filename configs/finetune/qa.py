"""Extractive QA: SQuAD 1.1 / 2.0 JSON files (--config.train_file, --config.eval_file) or a prepared
TFDS squad (--config.tfds=squad/v2.0). Windows of 384 pieces, as BERT's run_squad. Metrics: exact_match,
f1."""

from configs.finetune import common


def get_config():
  config = common.get_config()
  config.kind = 'qa'
  config.max_seq_length = 384
  # The paper's 2 epochs exactly, so that the scores compare with its SQuAD results (SQuAD has
  # about 90,000 training questions).
  config.train.min_steps = 0
  return config
