"""Eight fake CPU devices, set before JAX initialises, so that sharded code paths run on any machine."""

import os
import sys

os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                           ' --xla_force_host_platform_device_count=8').strip()
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pytest  # pylint: disable=g-import-not-at-top

from configs import tiny  # pylint: disable=g-import-not-at-top


@pytest.fixture
def config():
  """configs/tiny.py shrunk further so that a step compiles in a few seconds."""
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
  c.train.log_every = 1
  c.train.checkpoint_every = 3
  c.mesh.data = -1
  return c
