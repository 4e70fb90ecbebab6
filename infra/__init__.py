"""Deployment and local-development tooling. Never imported by functions."""
