"""Reproduce one course report: every configs/reports/r<NNN>_*.yaml study, then one reported-vs-ours table.

    python scripts/reproduce.py r003 [--out DIR] [--jobs N] [train.py fit flags, e.g. --data.data_dir DIR]

See ``studies/reproduce.py`` and the README's "Reproducing the reports" section.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from studies.reproduce import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
