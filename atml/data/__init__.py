"""Datasets: where they are found, how they are decoded, how they are batched. No models here."""
