"""The training-free path: dense correspondence from the identity-matched 3D face, and the warp."""
