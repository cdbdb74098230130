"""recsae: sparse autoencoders on recommender embeddings, benchmarked end to end."""

__version__ = "0.1.0"
