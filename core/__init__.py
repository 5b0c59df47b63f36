"""What several layers need, below all of them: the models, data, callbacks and the command line import from
here, and this package imports none of them (``tests/test_layering.py`` holds every layer to that).

It earns its place by keeping layers pointing down. Without it the register of private Lightning details
lived in ``cli/`` while the models relied on it (the model layer importing the command-line layer), and a
hyperparameter type in ``lit_models/base.py`` made it and ``callbacks/weight_average.py`` import each other.

* ``lightning_internals``: the private Lightning details we rely on, each pinned by ``tests/test_lightning_internals.py``;
* ``torch_internals``: the same for private torch functions, pinned by ``tests/test_torch_internals.py``;
* ``arg_types``: value types the CLI checks from annotations (``Fraction``), shared by models and callbacks.
"""
