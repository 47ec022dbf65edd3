"""The local web app behind ``facereenact serve``: upload a portrait and a driving clip, watch
the job's progress, play and download the result.

``create_app(settings)`` (in :mod:`facereenact.web.app`) builds the FastAPI application; the
page itself is plain HTML and JavaScript in ``static/``, served by the app (no CDN: it works
offline).
"""
