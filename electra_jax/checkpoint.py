"""Checkpoints with orbax: model + optimizer state and the data iterator's position, saved together.

Saves are asynchronous (training goes on while files are written) and atomic: orbax writes into a
temporary directory and renames it when complete, so an interrupted save never looks like a checkpoint.
"""

import os

import orbax.checkpoint as ocp

from electra_jax.errors import UserError


class Checkpoints:

  def __init__(self, directory: str, *, every: int, keep: int):
    self.directory = os.path.abspath(directory)
    self._every = every
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            max_to_keep=keep, enable_async_checkpointing=True, create=True,
            cleanup_tmp_directories=True))  # Leftovers of a save killed mid-write.

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def restore_latest(self, abstract_state):
    """(train state, data iterator state) of the newest checkpoint, or None when there is none."""
    step = self._manager.latest_step()
    if step is None:
      return None
    try:
      restored = self._manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()))
    except (ValueError, KeyError, TypeError) as e:
      first_line = (str(e).strip().splitlines() or [type(e).__name__])[0].rstrip(':')
      raise UserError(f'the checkpoint {self.directory}/{step} does not fit this config (was it '
                      f'trained with other model sizes?): {first_line[:300]}; use the config it '
                      'was trained with, or another --workdir') from e
    return restored.state, restored.data

  def save(self, step: int, state, source, *, force: bool = False) -> bool:
    """Starts saving `state` and `source.get_state()` if `step` is a multiple of `every` (or
    `force`); returns whether one started. The source's state is read only when a save is due."""
    if step % self._every and not force:
      return False
    return self._manager.save(step, force=True, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(source.get_state())))

  def close(self) -> None:
    """Waits for pending writes, then releases the manager."""
    self._manager.wait_until_finished()
    self._manager.close()
