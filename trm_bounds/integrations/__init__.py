"""Trainer integrations of the monitor (:mod:`trm_bounds.monitor`); each module imports its
framework (``trm_bounds.integrations.trl`` needs the ``[trl]`` extra), this package nothing."""
