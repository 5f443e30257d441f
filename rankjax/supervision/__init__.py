"""Supervision: which labels train the ranker, with which weights, under which objective."""
