"""ELECTRA-Small (paper Table 6): 12 layers x 256, embeddings 128, 1M steps of 128 x 128.

  python -m electra_jax.main --config=configs/small.py --workdir=runs/small

Expected cost: 1.2e12 model FLOPs per step, 1.2e18 in all (the paper: 1.4e18, 4 days on one V100);
about 1.3 hours of one H100 at the 25% MFU that docs/benchmarks.md targets (not yet measured on a GPU).
"""

from configs import base


def get_config():
  config = base.get_config()
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
