"""Nodes that talk to a model, and the model backends they talk through."""
