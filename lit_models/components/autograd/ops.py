"""Every operation of the engine as a function of nodes (``ops.matmul(x, w)``, ``ops.softmax(z)``, ...)."""

from lit_models.components.autograd.elementwise import add, as_node, div, exp, log, mul, relu, sigmoid, sub, tanh
from lit_models.components.autograd.shapes import expand, matmul, mean, sum, transpose  # noqa: A004
from lit_models.components.autograd.softmax import cross_entropy, log_softmax, normalize_rows, softmax

ACTIVATION_OPS = {"relu": relu, "sigmoid": sigmoid, "tanh": tanh}

__all__ = [
    "ACTIVATION_OPS", "add", "as_node", "cross_entropy", "div", "exp", "expand", "log", "log_softmax", "matmul", "mean",
    "mul", "normalize_rows", "relu", "sigmoid", "softmax", "sub", "sum", "tanh", "transpose",
]
