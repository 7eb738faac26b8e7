"""Token tagging (CoNLL-2000 chunking, NER) from CoNLL column files. Metrics: span f1, precision,
recall, token_accuracy."""

from configs.finetune import common


def get_config():
  config = common.get_config()
  config.kind = 'tagging'
  return config
