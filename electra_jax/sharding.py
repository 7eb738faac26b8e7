"""Device mesh and shardings from the config.

The mesh has axes (data, fsdp, tensor). Parameters name their dimensions with logical axes (model.py);
config.mesh.rules maps those to mesh axes, so a layout change is a config change, not a code change.
"""

import math

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import ml_collections
from flax import nnx

from electra_jax.errors import UserError

MESH_AXES = ('data', 'fsdp', 'tensor')


def mesh_shape(mesh_config: ml_collections.ConfigDict, num_devices: int) -> tuple[int, ...]:
  """The mesh shape with its -1 axis (if any) filled so that the product equals num_devices."""
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
  devices = jax.devices() if devices is None else devices
  shape = mesh_shape(mesh_config, len(devices))
  return jax.make_mesh(shape, MESH_AXES, axis_types=(jax.sharding.AxisType.Auto,) * len(MESH_AXES),
                       devices=devices)


def axis_tuple(axes) -> tuple[str, ...]:
  """A rule's or PartitionSpec entry's mesh axes as a tuple: None -> (), 'x' -> ('x',)."""
  return () if axes is None else (axes,) if isinstance(axes, str) else tuple(axes)


def batch_axes(rules) -> tuple[str, ...]:
  return axis_tuple(dict(rules)['batch'])


def batch_sharding(mesh: Mesh, rules) -> NamedSharding:
  """Rows split over the data-parallel axes; every other dimension (sequence, labels) stays whole, so
  the one sharding fits arrays of any rank."""
  return NamedSharding(mesh, P(batch_axes(rules)))


def param_partition_specs(abstract_variables, rules) -> dict:
  """Pure dict of mesh PartitionSpecs for an nnx state whose variables carry logical axis names.

  Logical axes that no rule names are replicated.
  """
  to_mesh = dict(rules)

  def spec(variable):
    logical = variable.get_metadata().get('out_sharding') or (None,) * variable.ndim
    return P(*(to_mesh.get(name) for name in logical))

  specs = jax.tree.map(spec, abstract_variables, is_leaf=lambda x: isinstance(x, nnx.Variable))
  return nnx.to_pure_dict(specs)


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
