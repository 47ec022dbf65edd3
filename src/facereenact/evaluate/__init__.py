"""Evaluation tools: independent reference face analysers and accuracy measurements."""
