"""Data: log readers, prepared ranking datasets and the input pipeline."""
