"""Base recommenders. Importing this package registers every model module by name."""

from recsae.recommenders import bpr, embeddings, lightgcn, mf, ncf, sasrec  # noqa: F401
from recsae.recommenders.base import (
    DotRecommender,
    Recommender,
    load_checkpoint,
    model_class,
    register,
    registered_models,
    save_checkpoint,
)
from recsae.recommenders.mostpop import MostPop

__all__ = [
    "DotRecommender",
    "MostPop",
    "Recommender",
    "load_checkpoint",
    "model_class",
    "register",
    "registered_models",
    "save_checkpoint",
]
