"""Traces: counterexample files (node-link JSON, GraphML, ITF), their replay, and their views."""
