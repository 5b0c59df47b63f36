"""A figure that takes long to save, so that a test can signal a run while it draws its closing figures (tests only)."""

from __future__ import annotations

import time
from pathlib import Path

from lightning.pytorch import Callback
from matplotlib.figure import Figure


class SlowFigure(Callback):
    """From ``setup`` on, saving the figure file called ``name`` first writes ``marker``, then sleeps ``seconds``
    (inside matplotlib's ``savefig``, where a run draws its figures at the end)."""

    def __init__(self, name: str, marker: str, seconds: float = 5.0):
        self.name, self.marker, self.seconds = name, marker, seconds

    def setup(self, trainer, pl_module, stage) -> None:  # noqa: ANN001
        original, name, marker, seconds = Figure.savefig, self.name, Path(self.marker), self.seconds

        def savefig(fig: Figure, fname, *args, **kwargs):  # noqa: ANN001, ANN202
            if Path(str(fname)).name == name and not marker.exists():
                marker.write_text("saving\n")
                time.sleep(seconds)
            return original(fig, fname, *args, **kwargs)

        Figure.savefig = savefig
