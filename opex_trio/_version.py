"""The opex_trio version, in one place for the build and for the User-Agent."""

__version__ = "0.1.0"
"""The version of this opex_trio release."""
