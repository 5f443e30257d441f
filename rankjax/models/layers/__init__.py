"""Building blocks of the rankers: BERT layers, dropout masks, weight loaders."""
