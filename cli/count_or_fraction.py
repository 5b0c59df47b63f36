"""``--trainer.limit_val_batches 2`` is 2 batches, as Lightning means it, not the fraction 2.0.

Lightning declares its batch limits ``Optional[Union[int, float]]``: an int counts batches, a float is a
fraction. Python's ``typing`` caches unions by *equality*, and ``Union[int, float] == Union[float, int]``,
so the object Lightning's annotation gets is whichever equal union was built first in the process:
``lightning/fabric/fabric.py`` (``clip_gradients(clip_val: Optional[Union[float, int]])``) is imported
first, and the Trainer's ``limit_*_batches`` read as ``Union[float, int, None]``. jsonargparse tries a
union's types in order, and ``float`` accepts every integer: ``2`` became ``2.0``, on the command line and
in YAML alike, and ``1`` (one batch) silently became ``1.0`` (all of them).

:func:`ints_first` finds every such parameter of a class; the parser (``cli.parser``) adds those with
``int`` tried first. The union is rebuilt with ``|`` (``types.UnionType``), which ``typing``'s cache
never answers with an older, reordered object.
"""

from __future__ import annotations

import functools
import inspect
import operator
import types
import typing
from typing import Any

NoneType = type(None)


def _reordered(annotation: Any, default: Any) -> Any | None:
    """``annotation`` with ``int`` moved just before ``float``; None when it has no float ahead of an int."""
    if typing.get_origin(annotation) not in (typing.Union, types.UnionType):
        return None
    args = list(typing.get_args(annotation))
    if int not in args or float not in args or args.index(int) < args.index(float):
        return None
    args.remove(int)
    args.insert(args.index(float), int)
    if default is None and NoneType not in args:
        args.append(NoneType)
    return functools.reduce(operator.or_, args)


def ints_first(component: Any) -> dict[str, tuple[Any, Any]]:
    """``{parameter: (type with int before float, default)}`` for the parameters of ``component`` (a class or
    function) whose annotation would parse an integer as a float."""
    try:
        parameters = inspect.signature(component).parameters.values()
    except (TypeError, ValueError):  # builtins and the like: nothing to reorder
        return {}
    found = {}
    for p in parameters:
        if p.default is not inspect.Parameter.empty and (typehint := _reordered(p.annotation, p.default)) is not None:
            found[p.name] = (typehint, p.default)
    return found
