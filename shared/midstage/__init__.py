"""Midstage runtime library, shipped to Lambda as a layer (`import midstage` everywhere)."""

__version__ = "0.1.0"
