"""Everything about the 3D face (detect, fit, reconstruct, render); knows nothing of generation."""
