"""valley: reasoning-distillation scaling studies on code, as a Dagster project."""

__version__ = "0.1.0"
