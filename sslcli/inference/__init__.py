"""What a trained model answers: energies F(x, y), embeddings, z sweeps, heatmaps."""
