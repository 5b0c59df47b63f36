"""Run a study: a grid (or Optuna search) of train.py runs over seeds, resumable, with tables and plots.

    python scripts/study.py configs/studies/depth.yaml [--out DIR] [--jobs N] [--export-wandb-sweep [PATH]] [train.py fit flags ...]

See ``studies/main.py`` and the README's "Studies" section.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from studies.main import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
