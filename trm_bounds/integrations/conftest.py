"""The TRL integration's doctests are collected only where TRL is installed (extra ``[trl]``)."""

import importlib.util

collect_ignore = [] if importlib.util.find_spec("trl") else ["trl.py"]
