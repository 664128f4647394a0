"""The Aether control plane: one module per concern, clients passed in."""
