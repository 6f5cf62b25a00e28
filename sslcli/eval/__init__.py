"""Evaluating representations: kNN accuracy, collapse metrics."""
