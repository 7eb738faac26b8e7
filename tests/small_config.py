"""configs/tiny.py shrunk further so that a step compiles in a few seconds, on synthetic data: the
tests' default config, also usable from the command line (--config=tests/small_config.py)."""

from configs import tiny


def get_config():
  c = tiny.get_config()
  c.model.vocab_size = 128
  c.model.embedding_size = 32
  c.model.hidden_size = 64
  c.model.num_layers = 1
  c.model.num_heads = 2
  c.model.intermediate_size = 128
  c.model.max_position_embeddings = 32
  c.data.max_seq_length = 32
  c.train.batch_size = 16
  c.train.steps = 20
  c.train.warmup_steps = 2
  # The tests' figures were set with these; the quick start's tuning is tiny.py's business.
  c.train.learning_rate = 5e-4
  c.train.generator_learning_rate = 0.0
  c.objective.mask_prob = 0.15
  c.train.log_every = 1
  c.train.checkpoint_every = 3
  c.mesh.data = -1
  c.data.source = 'synthetic'
  c.train.eval_every = 0
  return c
