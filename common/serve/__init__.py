"""Serving a saved run: batched predictions (Predictor, `python -m common.serve.predict`) and an HTTP server
(`python -m common.serve`)."""
