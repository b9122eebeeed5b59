import os
import sys

# Tests import `alter` from the source tree and `tests.helpers`.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
