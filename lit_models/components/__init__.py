"""Plain ``nn.Module`` networks (and the NumPy reference MLP), usable without Lightning."""
