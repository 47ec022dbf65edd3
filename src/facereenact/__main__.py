"""``python -m facereenact``: the command line (what ``torchrun -m facereenact train`` runs)."""

from facereenact.cli import app

app()
