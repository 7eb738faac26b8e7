"""Regression on [CLS] (a numeric `label`), e.g. STS-B-like similarity scores.
Metrics: pearson, spearman, mse."""

from configs.finetune import common


def get_config():
  config = common.get_config()
  config.kind = 'regression'
  return config
