"""Plot a configured LR schedule without training: check it before spending GPU time.

    python scripts/plot_lr_schedule.py --config configs/vgg.yaml [any train.py fit flags] [--out DIR]

Builds the model's optimizer and scheduler exactly as ``train.py fit`` would, steps them for the
configured length (``max_steps``, or ``max_epochs`` x steps per epoch from the data settings; the
official 50,000 training images unless ``--train_images`` says otherwise) and writes
``lr_schedule.png`` and ``lr_schedule.csv`` into ``--out`` (default: current directory).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from callbacks.lr_schedule import write_lr_schedule  # noqa: E402

# A dry run builds no model on a device: it must work on a machine without the configured GPU.
CPU_ONLY = ["--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.strategy", "auto"]


def main(argv: list[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], add_help=False)
    ap.add_argument("--out", type=Path, default=Path("."))
    ap.add_argument("--train_images", type=int, default=50_000, help="images before the validation split")
    ap.add_argument("-h", "--help", action="store_true")
    own, rest = ap.parse_known_args(argv)
    if own.help:
        print(__doc__)
        sys.exit(0)
    import train

    cli = train.CIFARCLI(
        train.ClassifierModule, train.CIFAR10DataModule, subclass_mode_model=True, run=False,
        auto_configure_optimizers=False, args=[*rest, "--trainer.logger", "false", *CPU_ONLY],
    )
    model, data, trainer = cli.model, cli.datamodule.hparams, cli.trainer
    train_images = own.train_images - data.val_size
    per_epoch = train_images // data.batch_size if data.drop_last else math.ceil(train_images / data.batch_size)
    per_epoch = math.ceil(per_epoch / trainer.accumulate_grad_batches)
    if trainer.max_steps and trainer.max_steps > 0:
        total = trainer.max_steps if trainer.max_epochs in (None, -1) else min(trainer.max_steps, trainer.max_epochs * per_epoch)
    elif trainer.max_epochs and trainer.max_epochs > 0:
        total = trainer.max_epochs * per_epoch
    else:
        sys.exit("error: set --trainer.max_steps or --trainer.max_epochs to plot a schedule")
    model.total_training_steps = lambda: total  # what the Trainer would estimate

    config = model.configure_optimizers()
    optimizer = config["optimizer"] if isinstance(config, dict) else config
    sched_cfg = config.get("lr_scheduler") if isinstance(config, dict) else None
    scheduler = sched_cfg["scheduler"] if isinstance(sched_cfg, dict) else sched_cfg
    interval = sched_cfg.get("interval", "epoch") if isinstance(sched_cfg, dict) else "epoch"
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        sys.exit("error: ReduceLROnPlateau depends on validation results and cannot be plotted without training")

    steps, epochs, lrs = [], [], {}
    for step in range(total):
        epoch = step // per_epoch
        steps.append(step + 1)  # as LRScheduleMonitor: the k-th update's rate at step k
        epochs.append(epoch)
        for j, group in enumerate(optimizer.param_groups):
            lrs.setdefault(f"opt0_group{j}", []).append(float(group["lr"]))
        optimizer.step()  # no gradients: changes nothing, but keeps schedulers' call-order check quiet
        if scheduler is not None:
            if interval == "step":
                scheduler.step()
            elif (step + 1) % per_epoch == 0:
                scheduler.step()
    own.out.mkdir(parents=True, exist_ok=True)
    png = write_lr_schedule(own.out, steps, epochs, lrs)
    print(f"{total} steps ({per_epoch} per epoch): lr {lrs['opt0_group0'][0]:.3g} -> max {max(lrs['opt0_group0']):.3g} -> {lrs['opt0_group0'][-1]:.3g}; wrote {png}")
    return png


if __name__ == "__main__":
    main()
