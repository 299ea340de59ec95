"""SFT of students on teacher traces: recipes, the TRL entrypoint, durable checkpoints."""

from valley_assets.training.checkpoints import is_complete_checkpoint
from valley_assets.training.recipe import Recipe, load_recipe

__all__ = ["Recipe", "is_complete_checkpoint", "load_recipe"]
