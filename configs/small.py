"""ELECTRA-Small (paper Table 6): 12 layers x 256, embeddings 128, 1M steps of 128 x 128."""

from configs import common


def get_config():
  config = common.get_config()
  config.model.embedding_size = 128
  config.model.hidden_size = 256
  config.model.num_heads = 4
  config.model.intermediate_size = 1024
  config.model.generator_fraction = 1 / 4
  config.data.max_seq_length = 128
  config.train.learning_rate = 5e-4
  config.train.batch_size = 128
  config.train.steps = 1_000_000
  return config
