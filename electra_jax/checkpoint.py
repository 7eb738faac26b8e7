"""Checkpoints with orbax: model + optimizer state and the training loop's state (the data iterator's
position and the loop's bookkeeping), saved together.

Saves are asynchronous (training goes on while files are written) and atomic: orbax writes into a
temporary directory and renames it when complete (on GCS: marks it complete), so a save killed midway
never looks like a checkpoint, and the next run restores the one before it. Every process writes its
own shards of the state; the directory must be one that all hosts see.
"""

import os

import jax
import orbax.checkpoint as ocp

from electra_jax import sharding

from electra_jax.errors import UserError


def has_checkpoint(directory: str) -> bool:
  """Whether `directory` holds a complete checkpoint; looks without creating or cleaning anything."""
  return latest_step(directory) is not None


def latest_step(directory: str) -> int | None:
  """The step of the newest complete checkpoint in `directory`, looking as has_checkpoint does."""
  return max(ocp.utils.checkpoint_steps(directory), default=None)


class Checkpoints:

  def __init__(self, directory: str, *, every: int, keep: int, read_only: bool = False):
    """`read_only` opens another run's checkpoints: nothing is created, cleaned or saved."""
    self.directory = os.path.abspath(directory)
    self._every = every
    if read_only and not os.path.isdir(self.directory):
      raise UserError(f'{self.directory} does not exist: the run has no checkpoint yet')
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            max_to_keep=keep, enable_async_checkpointing=True, create=not read_only,
            cleanup_tmp_directories=not read_only))  # Leftovers of a save killed mid-write.

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def restore_latest(self, abstract_state):
    """(train state, loop state) of the newest checkpoint, or None when there is none."""
    step = self._manager.latest_step()
    if step is None:
      return None
    try:
      restored = self._manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()))
    except (ValueError, KeyError, TypeError) as e:
      raise self._does_not_fit(step, _first_line(e)) from e
    return restored.state, restored.data

  def restore_part(self, abstract_part: dict, step: int | None = None) -> dict:
    """The arrays named by `abstract_part` (a nested dict shaped like a part of the saved train
    state, e.g. {'params': {'embeddings': ...}}, of jax.ShapeDtypeStructs with shardings) from
    checkpoint `step` (default the newest); nothing else is read. UserError if there is no such
    checkpoint or a shape differs."""
    step = self._manager.latest_step() if step is None else step
    if step is None or step not in self.steps():
      raise UserError(f'{self.directory} holds no checkpoint{"" if step is None else f" {step}"}; '
                      'was it deleted?')
    self._check_shapes(step, abstract_part)
    try:
      restored = self._manager.restore(step, args=ocp.args.Composite(state=ocp.args.PyTreeRestore(
          item=abstract_part, restore_args=ocp.checkpoint_utils.construct_restore_args(abstract_part),
          partial_restore=True)))
    except (ValueError, KeyError, TypeError) as e:
      raise self._does_not_fit(step, _first_line(e)) from e
    return restored.state

  def _check_shapes(self, step: int, abstract_part: dict) -> None:
    """UserError naming every array that is missing from the checkpoint or has another shape."""
    saved = ocp.PyTreeCheckpointer().metadata(
        os.path.join(self.directory, str(step), 'state')).item_metadata
    problems = []
    for path, wanted in jax.tree_util.tree_flatten_with_path(abstract_part)[0]:
      node = saved
      for key in path:
        try:
          node = node[str(key.key)]
        except (KeyError, TypeError):
          node = None
          break
      name = sharding.dotted(path)
      if node is None:
        problems.append(f'{name} is missing')
      elif tuple(node.shape) != tuple(wanted.shape):
        problems.append(f'{name} is {tuple(node.shape)}, expected {tuple(wanted.shape)}')
    if problems:
      raise self._does_not_fit(step, f'{len(problems)} arrays differ: {"; ".join(problems[:4])}'
                               f'{"; ..." if len(problems) > 4 else ""}')

  def _does_not_fit(self, step: int, detail: str) -> UserError:
    """The one error for a checkpoint whose arrays the config's model cannot take."""
    return UserError(f'the checkpoint {self.directory}/{step} does not fit this config (was it '
                     f'trained with other model sizes?): {detail[:300]}; use the config it was '
                     'trained with, or another --workdir')

  def due(self, step: int) -> bool:
    return step % self._every == 0

  def save(self, step: int, state, loop: dict) -> None:
    """Starts saving the train state and `loop` (JSON: the data position and the loop's own
    bookkeeping) as checkpoint `step`; the write finishes in the background."""
    self._manager.save(step, force=True, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(loop)))

  def wait(self) -> None:
    """Returns once every started save is complete on disk."""
    self._manager.wait_until_finished()

  def path(self, step: int) -> str:
    return os.path.join(self.directory, str(step))

  def close(self) -> None:
    """Waits for pending writes, then releases the manager."""
    self.wait()
    self._manager.close()


def _first_line(error: Exception) -> str:
  return (str(error).strip().splitlines() or [type(error).__name__])[0].rstrip(':')
