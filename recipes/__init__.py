"""Declarative monitoring recipes: schema, loader and the built-in YAML recipes.

>>> from mlflow_monitor.recipes import load_recipe
>>> load_recipe("classification").task
'classification'
"""

from mlflow_monitor.recipes.loader import BUILTIN_RECIPES, RECIPE_TAG, RecipeError, load_recipe
from mlflow_monitor.recipes.schema import Recipe

__all__ = ["BUILTIN_RECIPES", "RECIPE_TAG", "Recipe", "RecipeError", "load_recipe"]
