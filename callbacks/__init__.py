"""Callbacks shared by every model: plots and files written into the run directory (and W&B)."""
