"""The command-line layer behind ``train.py``: parsing, validation, run directories, checkpoints, loggers.

``train.py`` stays a thin entry point; each module here does one job:

* ``parser``: jsonargparse errors as one line naming the flag;
* ``validation``: value ranges the Trainer's own signature cannot express, checked before data is read;
* ``checkpoints``: reading a ``--ckpt_path`` safely and turning it into config;
* ``run_dirs``: run directories (allocation, resume, SLURM requeue, clean-up of runs that never started);
* ``loggers``: every logger writes into the run directory; W&B offline unless keyed;
* ``lightning_cli``: the ``LightningCLI`` subclass that wires the above together.

The private Lightning details it relies on are registered in ``core/lightning_internals.py`` (the models use them too).
"""
