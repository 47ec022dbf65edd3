"""Training the network: data preparation, datasets, losses, configuration, the loop."""
