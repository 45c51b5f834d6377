"""Suite-wide settings.

In CI (the CI environment variable set) Hypothesis runs derandomized: the
same examples every time, so a red build always reproduces. Locally each run
explores new examples.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
