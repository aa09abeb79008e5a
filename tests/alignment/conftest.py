import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# tiny.py lives beside the tests; the repo root makes `alignment` importable without an install.
for path in (HERE, HERE.parents[1]):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
