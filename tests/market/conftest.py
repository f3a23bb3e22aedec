"""Make ``tests/market/strategies.py`` importable as ``market_strategies``.

The test directories have no ``__init__.py``, so a plain ``import strategies`` would clash with a
module of the same name in another test directory; loading it under a unique name avoids that.
"""

import importlib.util
import sys
from pathlib import Path

_NAME = "market_strategies"
if _NAME not in sys.modules:
    _spec = importlib.util.spec_from_file_location(_NAME, Path(__file__).with_name("strategies.py"))
    assert _spec is not None
    assert _spec.loader is not None
    _module = importlib.util.module_from_spec(_spec)
    sys.modules[_NAME] = _module
    _spec.loader.exec_module(_module)
