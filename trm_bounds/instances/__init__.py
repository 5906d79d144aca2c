"""Instances: tree and finite-state policy pairs, the exchange format, the named family.

- :mod:`~trm_bounds.instances.tree`: :class:`TreeInstance` (docs/theory.md §1);
- :mod:`~trm_bounds.instances.finite`: :class:`FiniteStateInstance`;
- :mod:`~trm_bounds.instances.format`: the ``trm-oracle-instances/v1`` reader and writer;
- :mod:`~trm_bounds.instances.named`: the named instances, in both forms;
- :mod:`~trm_bounds.instances.random`: random building blocks;
- :mod:`~trm_bounds.instances.generators`: ``GENERATORS``, random instances by kind;
- :mod:`~trm_bounds.instances.strategies`: hypothesis strategies (needs ``trm-bounds[test]``;
  imported only by tests and users, never by the package).
"""

from trm_bounds.instances.finite import FiniteStateInstance, to_tree_instance
from trm_bounds.instances.format import (
    SCHEMA,
    InstanceFormatError,
    instance_record,
    load_instances,
    write_instances,
)
from trm_bounds.instances.tree import TreeInstance

__all__ = [
    "SCHEMA",
    "InstanceFormatError",
    "TreeInstance",
    "FiniteStateInstance",
    "instance_record",
    "load_instances",
    "write_instances",
    "to_tree_instance",
]
