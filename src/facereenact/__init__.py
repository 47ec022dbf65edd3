"""facereenact: one-shot face reenactment with identity-matched 3D correspondence."""

__version__ = "0.1.0"
