"""Studies: a grid (or an Optuna search) of ``train.py fit`` runs over seeds, resumable, summarised and drawn.

One job per module:

* ``spec``: the study file (keys, validation, the cells it declares), ``study_yaml`` its YAML rules; ``naming``: readable cell names;
* ``flags``: flag values as command-line text, and checking them with train.py's own parser;
* ``store``: the study directory (its lock, the spec it ran, refusing a different study);
* ``runner``: the runs as subprocesses (jobs, resume, progress); ``results``: what each run left behind;
* ``summary`` (CSV/markdown tables), ``plots``, ``search`` (Optuna), ``wandb_sweep`` (export);
* ``compare``: any set of run directories side by side; ``main``: ``scripts/study.py``.
"""
