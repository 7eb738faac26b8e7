"""A few-minute CPU model for smoke tests and first runs: it learns visibly in about a minute on 2 cores."""

from configs import common


def get_config():
  config = common.get_config()
  config.model.vocab_size = 1024
  config.model.embedding_size = 128
  config.model.hidden_size = 128
  config.model.num_layers = 2
  config.model.num_heads = 2
  config.model.intermediate_size = 512
  config.model.max_position_embeddings = 128
  config.model.generator_fraction = 1 / 2
  config.data.max_seq_length = 128
  config.train.steps = 300
  config.train.batch_size = 32
  # Higher rates make the loss fall faster but collapse the discriminator's outputs to one vector
  # (it predicts "original" everywhere at first), which leaves nothing for fine-tuning to build on.
  config.train.learning_rate = 5e-4
  config.train.warmup_steps = 30
  # A CPU preset: float32, so that runs on different meshes and process counts (the tests compare
  # them) differ by float32 rounding only.
  config.train.dtype = 'float32'
  config.train.log_every = 20
  config.train.checkpoint_every = 100
  config.train.eval_every = 100
  config.train.eval_batches = 8
  config.data.eval_fraction = 0.05  # The builtin corpus is small: hold out enough for 8 batches.
  return config
