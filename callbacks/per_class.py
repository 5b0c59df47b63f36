"""Per-class accuracy and the normalised confusion matrix, on validation (every validation) and test.

The numbers (``{stage}/acc_<class>``, ``per_class_accuracy.json``) follow every validation; the two validation
figures of a fit are drawn once, when it ends (also when it stops early or diverges), from its last
validation. Drawn at every validation, each replacing the one before, they cost the course MLP run (15
validations) 1.1-2 s of CPU per validation on a busy 2-core CPU, as much as the 100 training steps
between two validations. Outside a fit (``validate``, ``test``) they are drawn at once.

torchmetrics accumulates on the device and synchronises across DDP ranks on ``compute()``, so the
numbers cover the whole split however many processes evaluated it. Per class c:
accuracy_c = confusion[c, c] / sum_k confusion[c, k] (recall of class c).

``print_format`` also prints the test result the way PyTorch's "Training a classifier" tutorial prints
it, so a run sits line by line beside a report made with the tutorial (``tutorial``: today's tutorial;
``tutorial_2020``: the version of 2020, which report 003 quotes), and writes it to
``per_class_accuracy_test.txt``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.trainer.states import TrainerFn
from torchmetrics.classification import MulticlassConfusionMatrix

from callbacks.interrupts import STOP
from callbacks.outputs import plt, run_dir, save_figure
from datamodules.sources import CLASSES


PrintFormat = Literal["none", "tutorial", "tutorial_2020"]
# The tutorial's short class names; other names print as they are.
TUTORIAL_NAMES = {"airplane": "plane", "automobile": "car"}
TUTORIAL_TEXT = "per_class_accuracy_test.txt"


class PerClassAccuracy(Callback):
    """Logs ``{stage}/acc_<class>``; writes ``per_class_accuracy_{stage}.png``, ``confusion_matrix_{stage}.png``
    and ``per_class_accuracy.json`` (all stages) into the run directory, and the figures to W&B.

    Args:
        classes: class names, in label order.
        print_format: after ``test``, print the overall and per-class accuracy in the tutorial's words
            (``tutorial`` or ``tutorial_2020``, see :func:`tutorial_report`) and write them to
            ``per_class_accuracy_test.txt``; ``none``: neither.
        figures: False: ``per_class_accuracy.json`` only, no PNG (a study's runs: the study draws every cell's
            per-class accuracy in one figure).
    """

    def __init__(self, classes: Sequence[str] = CLASSES, print_format: PrintFormat = "none", figures: bool = True):
        self.classes = list(classes)
        self.figures = figures
        self.print_format = print_format
        self.confusion: MulticlassConfusionMatrix | None = None
        self.results: dict[str, dict[str, Any]] = {}
        self._pending_figures: tuple[torch.Tensor, int] | None = None  # a fit's last validation: (confusion, step)

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        # The default names (CIFAR-10's) give way to the data's own classes (the synthetic data's "0"/"1").
        data_classes = getattr(trainer.datamodule, "classes", None)
        if data_classes is not None and self.classes == list(CLASSES):
            self.classes = list(data_classes)

    def _reset(self, pl_module: LightningModule) -> None:
        self.confusion = MulticlassConfusionMatrix(len(self.classes)).to(pl_module.device)

    def _update(self, outputs: Any, batch: Any) -> None:
        if isinstance(outputs, torch.Tensor) and outputs.ndim == 2 and self.confusion is not None:
            self.confusion.update(outputs.detach(), batch[1])

    # validation
    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._reset(pl_module)

    def on_validation_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._update(outputs, batch)

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking:
            self._finish("val", trainer, pl_module)

    # test
    def on_test_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._reset(pl_module)

    def on_test_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._update(outputs, batch)

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._finish("test", trainer, pl_module)

    # the end of a fit: its validation figures
    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._pending_figures is not None:
            cm, step = self._pending_figures
            self._pending_figures = None
            out = run_dir(trainer)
            STOP.optional("per_class_accuracy_val.png", lambda: self._draw_per_class("val", cm, step, out, trainer))
            STOP.optional("confusion_matrix_val.png", lambda: self._draw_confusion("val", cm, step, out, trainer))

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        self.on_fit_end(trainer, pl_module)  # a diverged or interrupted run still gets its last validation's figures

    def _finish(self, stage: str, trainer: Trainer, pl_module: LightningModule) -> None:
        cm = self.confusion.compute().cpu().double()  # synced across ranks
        per_class = per_class_accuracy(cm)
        for name, acc in zip(self.classes, per_class.tolist()):
            pl_module.log(f"{stage}/acc_{name}", acc, sync_dist=True)  # already global (synced confusion matrix)
        if not trainer.is_global_zero:
            return
        # Outside fit, global_step is 0; the evaluated weights are those of the loaded checkpoint.
        step = trainer.global_step or getattr(pl_module, "checkpoint_step", 0)
        self.results[stage] = {
            "step": step,
            "overall_accuracy": float(cm.diag().sum() / cm.sum()),
            "per_class_accuracy": dict(zip(self.classes, per_class.tolist())),
            "confusion_matrix": cm.long().tolist(),
        }
        out = run_dir(trainer)
        (out / "per_class_accuracy.json").write_text(json.dumps(self.results, indent=2))
        if stage == "test" and self.print_format != "none":
            text = tutorial_report(cm, [TUTORIAL_NAMES.get(c, c) for c in self.classes], self.print_format)
            (out / TUTORIAL_TEXT).write_text(text + "\n")
            print(text, flush=True)
        if not self.figures:
            return
        if stage == "val" and trainer.state.fn == TrainerFn.FITTING:
            self._pending_figures = (cm, step)  # drawn once, when the fit ends
        else:
            self._draw_per_class(stage, cm, step, out, trainer)
            self._draw_confusion(stage, cm, step, out, trainer)

    def _draw_per_class(self, stage: str, cm: torch.Tensor, step: int, out: Path, trainer: Trainer) -> Path:
        return plot_per_class(per_class_accuracy(cm).tolist(), self.classes, f"{stage}: per-class accuracy (model at step {step})", out / f"per_class_accuracy_{stage}.png", trainer, f"{stage}/per_class_accuracy")

    def _draw_confusion(self, stage: str, cm: torch.Tensor, step: int, out: Path, trainer: Trainer) -> Path:
        return plot_confusion(cm, self.classes, f"{stage}: confusion matrix, rows normalised (model at step {step})", out / f"confusion_matrix_{stage}.png", trainer, f"{stage}/confusion_matrix")


def per_class_accuracy(confusion: torch.Tensor) -> torch.Tensor:
    """Row-normalised diagonal; a class absent from the split gets NaN rather than a fake 0."""
    support = confusion.sum(1)
    return torch.where(support > 0, confusion.diag() / support.clamp(min=1), torch.full_like(support, float("nan")))


def tutorial_report(confusion: torch.Tensor, classes: Sequence[str], print_format: PrintFormat = "tutorial") -> str:
    """The lines the tutorial prints after testing, from the confusion matrix (rows: true class).

    ``tutorial`` (today's ``cifar10_tutorial.py``)::

        Accuracy of the network on the 10000 test images: 55 %
        Accuracy for class: plane is 57.3 %

    ``tutorial_2020`` (the version report 003 quotes: whole percents, names right-aligned)::

        Accuracy of the network on the 10000 test images: 55 %
        Accuracy of plane : 57 %

    Both floor the overall percentage (``100 * correct // total``; 2020: ``%d`` of ``100 * correct / total``,
    the same for counts), the 2020 per-class line too. The image count is the split's, where the tutorial
    wrote 10000. A class absent from the split prints ``n/a`` where the tutorial would divide by zero.
    """
    counts = confusion.round().long()
    correct, total = int(counts.diag().sum()), int(counts.sum())
    lines = [f"Accuracy of the network on the {total} test images: {100 * correct // max(total, 1)} %"]
    for name, c, t in zip(classes, counts.diag().tolist(), counts.sum(1).tolist()):
        if print_format == "tutorial":
            lines.append(f"Accuracy for class: {name:5s} is {f'{100 * float(c) / t:.1f}' if t else 'n/a'} %")
        else:
            lines.append("Accuracy of %5s : %2s %%" % (name, 100 * c // t if t else "n/a"))
    return "\n".join(lines)


def plot_per_class(values: Sequence[float], classes: Sequence[str], title: str, path: Path, trainer: Trainer | None = None, key: str | None = None) -> Path:
    fig, ax = plt.subplots(figsize=(7, 3.5))
    bars = ax.bar(classes, values, color="tab:blue")
    ax.bar_label(bars, labels=[f"{v:.2f}" for v in values], fontsize=8)
    finite = [v for v in values if v == v]
    if finite:
        ax.axhline(sum(finite) / len(finite), color="tab:red", ls="--", lw=1, label=f"mean {sum(finite) / len(finite):.3f}")
        ax.legend(fontsize=8, loc="lower right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
    return save_figure(fig, path, trainer, key)


def plot_confusion(cm: torch.Tensor, classes: Sequence[str], title: str, path: Path, trainer: Trainer | None = None, key: str | None = None) -> Path:
    norm = (cm / cm.sum(1, keepdim=True).clamp(min=1)).numpy()
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=7, color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046)
    return save_figure(fig, path, trainer, key)
