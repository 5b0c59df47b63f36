"""Compare any run directories: the config keys that differ, best/last val acc, test acc, steps, wall time.

    python scripts/compare_runs.py RUN_DIR [RUN_DIR ...] [--out DIR]

See ``studies/compare.py``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from studies.compare import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
