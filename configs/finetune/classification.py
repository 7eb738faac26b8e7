"""Sequence classification on [CLS], e.g. --config.train_file=train.csv --config.eval_file=dev.csv
(columns text, optional text_pair, label). Metrics: accuracy, f1 (of the second label), mcc."""

from configs.finetune import common


def get_config():
  config = common.get_config()
  config.kind = 'classification'
  return config
