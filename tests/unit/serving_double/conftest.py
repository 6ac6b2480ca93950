"""Fixtures for the TF Serving test double's tests (helpers live in double_helpers.py)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from double_helpers import double_module, models, start_double  # noqa: E402,F401
