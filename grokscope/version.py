"""The package version, in a module of its own so that any layer can read it without importing the
whole package (`import grokscope` imports training and analysis)."""

__version__ = "0.1.0"
