"""Make the collection importable as ansible_collections.mlserve.tfserving."""

import os
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIXTURES = os.path.join(REPO, "tests", "fixtures", "models")

sys.path.insert(0, os.path.join(REPO, "collections"))
