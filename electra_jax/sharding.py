"""Device mesh and shardings from the config.

The mesh has axes (data, fsdp, tensor). Parameters and activations name their dimensions with logical
axes (model.py); config.mesh.rules maps those to mesh axes, so a layout change is a config change, not
a code change.
"""

import contextlib
import contextvars
import math

import jax
from jax.experimental import mesh_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import ml_collections
from flax import nnx
import numpy as np

from electra_jax.errors import UserError

MESH_AXES = ('data', 'fsdp', 'tensor')


def mesh_shape(mesh_config: ml_collections.ConfigDict, num_devices: int) -> tuple[int, ...]:
  """The whole mesh's shape: the in-slice axes (their -1, if any, filled so that the slice uses all
  its devices) times the dcn_ axes across slices."""
  dcn = dcn_shape(mesh_config)
  if num_devices % math.prod(dcn):
    raise UserError(f'config.mesh.dcn_* ({dict(zip(MESH_AXES, dcn))}) ask for {math.prod(dcn)} '
                    f'slices, which does not divide the {num_devices} devices')
  ici = ici_shape(mesh_config, num_devices // math.prod(dcn))
  return tuple(i * d for i, d in zip(ici, dcn))


def dcn_shape(mesh_config: ml_collections.ConfigDict) -> tuple[int, ...]:
  shape = tuple(mesh_config[f'dcn_{axis}'] for axis in MESH_AXES)
  if any(size < 1 for size in shape):
    raise UserError(f'config.mesh.dcn_* must be positive, got {dict(zip(MESH_AXES, shape))}')
  return shape


def ici_shape(mesh_config: ml_collections.ConfigDict, num_devices: int) -> tuple[int, ...]:
  """The mesh shape within one slice, its -1 axis (if any) filled so that it uses num_devices."""
  shape = [mesh_config[axis] for axis in MESH_AXES]
  if shape.count(-1) > 1:
    raise UserError(f'config.mesh has {shape.count(-1)} axes set to -1 ({shape}); at most one may '
                      'be -1 (all remaining devices)')
  if any(size == 0 or size < -1 for size in shape):
    raise UserError(f'config.mesh axes must be positive or -1, got {dict(zip(MESH_AXES, shape))}')
  fixed = math.prod(size for size in shape if size != -1)
  if -1 in shape:
    if num_devices % fixed:
      raise UserError(f'config.mesh fixes {fixed} devices per group, which does not divide the '
                        f'{num_devices} devices available')
    shape[shape.index(-1)] = num_devices // fixed
  if math.prod(shape) != num_devices:
    raise UserError(f'config.mesh {dict(zip(MESH_AXES, shape))} needs {math.prod(shape)} devices, '
                      f'but {num_devices} are available; set one axis to -1 to use them all')
  return tuple(shape)


def make_mesh(mesh_config: ml_collections.ConfigDict, devices=None) -> Mesh:
  """The mesh. With dcn_ axes, each axis is (slices) x (in-slice), the slower network outside: TPU
  slices when the devices have several, otherwise processes (the hosts of a GPU cluster), so that
  only the dcn_ axes' collectives cross the slow links."""
  devices = jax.devices() if devices is None else devices
  axis_types = (jax.sharding.AxisType.Auto,) * len(MESH_AXES)
  shape, dcn = mesh_shape(mesh_config, len(devices)), dcn_shape(mesh_config)
  if math.prod(dcn) == 1:
    return jax.make_mesh(shape, MESH_AXES, axis_types=axis_types, devices=devices)
  slices = {getattr(device, 'slice_index', 0) for device in devices}
  granules = len(slices) if len(slices) > 1 else len({d.process_index for d in devices})
  if granules != math.prod(dcn):
    raise UserError(f'config.mesh.dcn_* ({dict(zip(MESH_AXES, dcn))}) ask for {math.prod(dcn)} '
                    f'{"slices" if len(slices) > 1 else "processes"}, but the job has {granules}')
  ici = tuple(size // across for size, across in zip(shape, dcn))
  grid = mesh_utils.create_hybrid_device_mesh(ici, dcn, devices, process_is_granule=len(slices) == 1)
  return Mesh(grid, MESH_AXES, axis_types=axis_types)


def axis_tuple(axes) -> tuple[str, ...]:
  """A rule's or PartitionSpec entry's mesh axes as a tuple: None -> (), 'x' -> ('x',)."""
  return () if axes is None else (axes,) if isinstance(axes, str) else tuple(axes)


def batch_axes(rules) -> tuple[str, ...]:
  return axis_tuple(dict(rules)['batch'])


def batch_sharding(mesh: Mesh, rules) -> NamedSharding:
  """Rows split over the data-parallel axes; every other dimension (sequence, labels) stays whole, so
  the one sharding fits arrays of any rank."""
  return NamedSharding(mesh, P(batch_axes(rules)))


def logical_spec(logical, to_mesh: dict) -> P:
  """The mesh PartitionSpec of dimensions named by the logical axes `logical`; names without a rule
  are replicated."""
  return P(*(to_mesh.get(name) for name in logical))


def param_partition_specs(abstract_variables, rules) -> dict:
  """Pure dict of mesh PartitionSpecs for an nnx state whose variables carry logical axis names.

  Logical axes that no rule names are replicated.
  """
  to_mesh = dict(rules)

  def spec(variable):
    return logical_spec(variable.get_metadata().get('out_sharding') or (None,) * variable.ndim,
                        to_mesh)

  specs = jax.tree.map(spec, abstract_variables, is_leaf=lambda x: isinstance(x, nnx.Variable))
  return nnx.to_pure_dict(specs)


# (mesh, rules as a dict) while a step is traced for a mesh; None elsewhere.
_ACTIVATION_LAYOUT = contextvars.ContextVar('activation_layout', default=None)


@contextlib.contextmanager
def activation_layout(mesh: Mesh, rules):
  """Within it, `constrain` places activations on `mesh` as `rules` say (step.build traces the
  steps inside one)."""
  token = _ACTIVATION_LAYOUT.set((mesh, dict(rules)))
  try:
    yield
  finally:
    _ACTIVATION_LAYOUT.reset(token)


def constrain(x: jax.Array, *logical: str | None) -> jax.Array:
  """x, whose dimensions have the logical axes `logical`, constrained to their mesh axes, so that
  XLA keeps the layout we chose between layers instead of guessing one (and rematerialising whole
  arrays to switch between guesses). Without an activation_layout (one device, no mesh) x itself."""
  layout = _ACTIVATION_LAYOUT.get()
  if layout is None:
    return x
  mesh, to_mesh = layout
  return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, logical_spec(logical, to_mesh)))


def check_divisible(abstract_params: dict, specs: dict, mesh: Mesh) -> None:
  """Raises UserError naming the first parameter whose sharded dimension the mesh does not divide."""
  flat_params = jax.tree_util.tree_flatten_with_path(abstract_params)[0]
  flat_specs = jax.tree.leaves(specs, is_leaf=lambda x: isinstance(x, P))
  for (path, param), spec in zip(flat_params, flat_specs):
    for dim, axes in zip(param.shape, spec):
      axes = axis_tuple(axes)
      shards = math.prod(mesh.shape[axis] for axis in axes)
      if dim % shards:
        raise UserError(f'parameter {dotted(path)} of shape {param.shape} has a dimension of {dim} that '
                          f'mesh axes {axes} ({shards} devices) cannot split evenly; change '
                          'config.mesh or the model sizes')


def dotted(path) -> str:
  """'electra.encoder.layer.3.attention.query.kernel' for a key path into a parameter dict."""
  return '.'.join(str(getattr(key, 'key', key)) for key in path)


def named(mesh: Mesh, specs):
  return jax.tree.map(lambda spec: NamedSharding(mesh, spec), specs,
                      is_leaf=lambda x: isinstance(x, P))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def host_to_global(value: np.ndarray, array_sharding: NamedSharding, rows: np.ndarray | None = None,
                   size: int = 0) -> jax.Array:
  """A global array laid out by `array_sharding` from this process's host copy: the whole array, or
  with `rows` (process_rows) only those rows of a `size`-row first axis, the ones its devices hold."""
  if rows is None:
    return jax.make_array_from_callback(value.shape, array_sharding, lambda index: value[index])

  def shard(index):
    start, stop, _ = index[0].indices(size)
    first = int(np.searchsorted(rows, start))
    return value[first:first + stop - start]
  return jax.make_array_from_callback((size, *value.shape[1:]), array_sharding, shard)


def process_rows(batch_sharding: NamedSharding, size: int) -> np.ndarray:
  """The rows of a `size`-row global batch that this process's devices hold, ascending: what the
  process reads from the data, whatever the mesh layout and process count."""
  rows = set()
  for index in batch_sharding.addressable_devices_indices_map((size,)).values():
    rows.update(range(*index[0].indices(size)))
  return np.array(sorted(rows), np.int64)


def replication(abstract_params) -> tuple[int, int, float]:
  """(parameter bytes in all, parameter bytes on each device, fraction of the parameter bytes held
  whole by every device) for ShapeDtypeStructs carrying NamedShardings. FSDP and tensor parallelism
  exist to bring the last two down."""
  total = per_device = replicated = 0
  for param in jax.tree.leaves(abstract_params):
    size = math.prod(param.shape) * param.dtype.itemsize
    mesh, spec = param.sharding.mesh, param.sharding.spec
    shards = math.prod(mesh.shape[axis] for axes in spec for axis in axis_tuple(axes))
    total += size
    per_device += size // shards
    replicated += size if shards == 1 else 0
  return total, per_device, replicated / total
