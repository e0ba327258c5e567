"""Training: Lightning module, data module, losses, metrics, checkpoints, the train/eval commands."""
