"""Which config keys tell runs apart, and a short label per run built from them (for the comparison's legend).

Runs of different classes (an MLP and a NumPy MLP, SGD and the NumPy SGD) hold different argument sets: SGD's
``dampening``, ``foreach``, ``fused``... "differ" from a run that has no such argument. Such a key is no
difference worth a column when every run that has it holds the class's default: the class column says it.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
from collections.abc import Sequence
from typing import Any

from studies.naming import format_value

IGNORED = ("run_name", "runs_dir", "ckpt_path")  # differ between any two runs by construction; the run column names them
UNSET, UNKNOWN = "<unset>", object()


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Nested config -> dotted keys; lists stay values (``model.init_args.hidden_sizes: [100]``)."""
    if not isinstance(tree, dict) or not tree:
        return {prefix: tree}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


@functools.cache
def _defaults(class_path: str) -> dict[str, Any]:
    """Constructor defaults of a class (its bases' too: ``**kwargs`` reach them); {} if it cannot be imported."""
    module, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return {}
    defaults: dict[str, Any] = {}
    for klass in reversed(inspect.getmro(cls) if inspect.isclass(cls) else ()):
        try:
            params = inspect.signature(klass.__init__).parameters.values()
        except (TypeError, ValueError):
            continue
        defaults.update({p.name: p.default for p in params if p.default is not inspect.Parameter.empty})
    return defaults


def _plain(value: Any) -> Any:
    return [_plain(v) for v in value] if isinstance(value, (list, tuple)) else value


def default_of(config: dict[str, Any], key: str) -> Any:
    """The default of ``X.init_args.arg`` for the class at ``X.class_path`` in this run; UNKNOWN otherwise."""
    owner, sep, arg = key.rpartition(".init_args.")
    if not sep or "." in arg or not isinstance(class_path := config.get(f"{owner}.class_path"), str):
        return UNKNOWN
    return _plain(_defaults(class_path).get(arg, UNKNOWN))


def _at_default_where_set(runs: Sequence[dict[str, Any]], key: str) -> bool:
    """Every run that has ``key`` holds one and the same value, its class's default; the rest lack it."""
    held = [c for c in runs if key in c]
    if len(held) == len(runs) or len({_text(c[key]) for c in held}) != 1:
        return False
    return all((d := default_of(c, key)) is not UNKNOWN and _plain(c[key]) == d for c in held)


def _text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def differing_keys(configs: Sequence[dict[str, Any]]) -> list[str]:
    """Flattened keys whose values differ between the runs, less arguments that only one class has, at its default."""
    keys = list(dict.fromkeys(k for c in configs for k in c))
    differ = [k for k in keys if k not in IGNORED and len({_text(c.get(k, UNSET)) for c in configs}) > 1]
    return [k for k in differ if not _at_default_where_set(configs, k)]


def short_names(keys: Sequence[str]) -> dict[str, str]:
    """The shortest dotted tail that tells each key from the others, ``init_args`` left out:
    ``model.init_args.optimizer.init_args.lr`` -> ``lr`` (``optimizer.lr`` beside a scheduler's ``lr``);
    ``model.class_path`` -> ``model``."""
    parts = {}
    for key in keys:
        kept = [p for p in key.split(".") if p != "init_args"]
        parts[key] = kept[:-1] if kept[-1] == "class_path" and len(kept) > 1 else kept
    names = {}
    for key, kept in parts.items():
        n = 1
        while n < len(kept) and sum(other[-n:] == kept[-n:] for other in parts.values()) > 1:
            n += 1
        names[key] = ".".join(kept[-n:])
    return names


def _priority(key: str) -> tuple[int, int]:
    """The model class first, then the model's arguments, then data, then the rest (trainer, seed)."""
    order = 0 if key == "model.class_path" else 1 if key.startswith("model.") else 2 if key.startswith("data.") else 3
    return order, key.count(".")


def labels(configs: Sequence[dict[str, Any]], keys: Sequence[str], names: Sequence[str]) -> list[str]:
    """One label per run, all different: ``model=MLPClassifier, hidden_sizes=100``. Keys join (model class
    first) while they split runs whose labels are still equal; runs left equal get their ``names`` too."""
    chosen: list[str] = []
    short = short_names(keys)

    def texts() -> list[str]:
        return [", ".join(f"{short[k]}={format_value(c[k])}" for k in chosen if k in c) for c in configs]

    for key in sorted(keys, key=_priority):
        before = texts()
        if len(set(before)) == len(before):
            break
        chosen.append(key)
        if len(set(texts())) == len(set(before)):
            chosen.pop()  # it tells no two runs apart that were still alike
    out = texts()
    return [f"{t} ({n})" if t and out.count(t) > 1 else t or n for t, n in zip(out, names)]
