"""TRM masks and the certificate during a run, for any trainer (docs/theory.md §6, §9).

>>> import tempfile, torch
>>> from trm_bounds.monitor import Monitor
>>> mon = Monitor(tempfile.mkdtemp(), max_response_length=4)
>>> lp = torch.tensor([[-1.0, -1.0, 0.0], [-1.0, -3.0, -1.0]])
>>> out = mon.update(0, lp, torch.full((2, 3), -1.0), torch.tensor([[1, 1, 0], [1, 1, 1]]))
>>> out.keep.tolist(), out.metrics["trm/acceptance_rate"]
([True, False], 0.5)
>>> mon.close()

Importing this package does not import torch; :meth:`Monitor.update` does.
"""

from trm_bounds.monitor.metrics import VERL_NAMES
from trm_bounds.monitor.monitor import Monitor, MonitorOutput, parse_criteria
from trm_bounds.monitor.run_folder import SCHEMA, RunFolderError

__all__ = ["Monitor", "MonitorOutput", "RunFolderError", "parse_criteria", "VERL_NAMES", "SCHEMA"]
