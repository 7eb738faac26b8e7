"""Pre-training input: where batches come from and how they reach the devices.

The contract every source meets (the synthetic one here, the text pipeline later):
  - an iterator of process-local batches: dicts of int32 numpy arrays `input_ids`, `segment_ids`,
    `input_mask`, each [global_batch_size / process_count, max_seq_length], in the layout
    `[CLS] A [SEP] B [SEP] [PAD]...` (segment 0 for A, 1 for B; mask 1 on real tokens);
  - `get_state()` -> a JSON-serialisable dict and `set_state(dict)`, so that the checkpoint holds the
    iterator's position and a resumed run continues with exactly the next batch.
Masking is not part of the data: it is drawn on device, every step (electra_jax/rtd.py).
"""

import jax
import ml_collections
import numpy as np

from electra_jax.data.synthetic import SyntheticSource
from electra_jax.errors import UserError

SOURCES = ('synthetic',)


def create_source(config: ml_collections.ConfigDict, process_index: int = 0, process_count: int = 1):
  if config.data.source == 'synthetic':
    return SyntheticSource(
        vocab_size=config.model.vocab_size, max_seq_length=config.data.max_seq_length,
        global_batch_size=config.train.batch_size, seed=config.train.seed,
        pad_id=config.data.pad_id, cls_id=config.data.cls_id, sep_id=config.data.sep_id,
        process_index=process_index, process_count=process_count)
  raise UserError(f'config.data.source={config.data.source!r} is unknown; use one of '
                  f'{", ".join(SOURCES)}')


def to_global(local_batch: dict[str, np.ndarray], sharding: jax.sharding.Sharding) -> dict:
  """Assembles every process's local rows into global jax.Arrays laid out by `sharding`."""
  return {key: jax.make_array_from_process_local_data(sharding, value)
          for key, value in local_batch.items()}
