import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(_HERE)))
for p in (_ROOT, _HERE):
    if p not in sys.path:
        sys.path.insert(0, p)
