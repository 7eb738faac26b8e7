"""ELECTRA-Large (paper Table 6): 24 layers x 1024, mask rate 25%, 400K steps of 2048 x 512."""

from configs import common


def get_config():
  config = common.get_config()
  config.model.embedding_size = 1024
  config.model.hidden_size = 1024
  config.model.num_layers = 24
  config.model.num_heads = 16
  config.model.intermediate_size = 4096
  config.model.generator_fraction = 1 / 4
  config.objective.mask_prob = 0.25
  config.train.batch_size = 2048
  config.train.steps = 400_000
  return config
