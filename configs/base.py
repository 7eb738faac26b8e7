"""ELECTRA-Base (paper Table 6): 12 layers x 768, generator 1/3 width, 766K steps of 256 x 512.

  python -m electra_jax.main --config=configs/base.py --workdir=runs/base

Expected cost: 8.8e13 model FLOPs per step, 6.7e19 in all (the paper: 6.4e19, 4 days on 16 TPU v3
chips); about 2 days of one H100 at the 40% MFU that docs/benchmarks.md targets (not yet measured on a
GPU). small.py, large.py and tiny.py start from this file and change what differs.
"""

from configs import common


def get_config():
  config = common.get_config()
  # The Base sizes; every other field and its meaning is in common.py.
  config.model.embedding_size = 768  # Width of the shared embeddings; projected when != hidden_size.
  config.model.hidden_size = 768  # Discriminator width.
  config.model.num_layers = 12  # Discriminator depth.
  config.model.num_heads = 12  # Discriminator attention heads; hidden_size / 64 in the paper.
  config.model.intermediate_size = 3072  # Discriminator FFN width; 4 x hidden_size in the paper.
  # Generator width as a fraction of hidden_size; heads = max(1, width / 64), FFN = 4 x width.
  config.model.generator_fraction = 1 / 3
  config.data.max_seq_length = 512  # Tokens per example, [CLS] and [SEP]s included.
  config.train.steps = 766_000  # Optimizer updates in the whole run.
  config.train.batch_size = 256  # Global batch, in sequences, over all devices and hosts.
  config.train.learning_rate = 2e-4  # Peak learning rate, reached after warmup.
  return config
