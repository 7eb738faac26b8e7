"""Loading built examples with grain: global shuffle, per-process shards, padded batches, prefetch.

One global order of examples (shuffled with the seed, reshuffled each epoch) is cut into global
batches; every process reads only its rows of each (`rows`, from data.Placement). The whole order is
a function of (seed, step), the same for any number of processes: the iterator state is one index,
which the checkpoint stores next to the model, and which means the same batch on another mesh.
"""

from typing import Callable

import grain
import numpy as np

from electra_jax.errors import UserError


def reader(source, max_length: int, word_starts: np.ndarray | None = None
           ) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
  """Indices -> one padded batch. Reading a batch of records in one call is several times faster than
  grain batching single records. With `word_starts` (the tokenizer's table, for whole word masking)
  the batch also has `word_starts`: bool [rows, max_length], looked up here so that the built dataset
  stays the same with the option on or off."""

  def read(indices: np.ndarray) -> dict[str, np.ndarray]:
    rows = source.__getitems__(indices.tolist())
    input_ids = np.zeros((len(rows), max_length), np.int32)  # [PAD] is id 0.
    segment_ids = np.zeros((len(rows), max_length), np.int32)
    lengths = np.empty(len(rows), np.int64)
    for i, row in enumerate(rows):
      lengths[i] = n = len(row['input_ids'])
      input_ids[i, :n] = row['input_ids']
      segment_ids[i, :n] = row['segment_ids']
    input_mask = (np.arange(max_length)[None, :] < lengths[:, None]).astype(np.int32)
    batch = {'input_ids': input_ids, 'segment_ids': segment_ids, 'input_mask': input_mask}
    if word_starts is not None:
      batch['word_starts'] = word_starts[input_ids]
    return batch
  return read


class TrainBatches:
  """Endless process-local batches (`rows` of each `batch_size`-example global batch) of
  `num_examples` examples; `read` turns example indices into arrays (`reader` for a built split;
  fine-tuning indexes arrays in memory). `get_state`/`set_state` for checkpoints."""

  def __init__(self, num_examples: int, read: Callable[[np.ndarray], dict[str, np.ndarray]], *,
               dataset_key: str, batch_size: int, rows: np.ndarray, seed: int,
               read_threads: int = 1, prefetch: int = 4):
    self._dataset_key = dataset_key
    self.num_examples = num_examples
    dataset = (grain.MapDataset.range(num_examples)
               .shuffle(seed=seed)
               .repeat()
               .batch(batch_size, drop_remainder=True)
               .map(lambda indices: read(indices[rows])))
    self._iterator = iter(dataset.to_iter_dataset(
        grain.ReadOptions(num_threads=read_threads, prefetch_buffer_size=prefetch)))

  def __iter__(self):
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    return next(self._iterator)

  def get_state(self) -> dict:
    return {'dataset': self._dataset_key, 'grain': self._iterator.get_state()}

  def set_state(self, state: dict) -> None:
    if state.get('dataset') != self._dataset_key:
      raise UserError(f'the checkpoint was trained on dataset {state.get("dataset")} but the config '
                      f'now gives {self._dataset_key} (another corpus, tokenizer or sequence '
                      'length); resume with the original data config, or use a new --workdir')
    self._iterator.set_state(state['grain'])


def eval_batches(source, *, batch_size: int, rows: np.ndarray, max_length: int, max_batches: int,
                 word_starts: np.ndarray | None = None) -> list[dict[str, np.ndarray]]:
  """This process's rows of up to `max_batches` full global batches of the validation split, in
  stored order: the same every evaluation, so that eval metrics are comparable across steps and runs.
  `word_starts` as for `reader`."""
  read = reader(source, max_length, word_starts)
  count = min(max_batches, len(source) // batch_size)
  return [read(first + rows) for first in range(0, count * batch_size, batch_size)]
