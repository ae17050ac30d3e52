"""Hydra configuration (YAML) shipped as the package ``orchestrator.conf``."""
