"""Helpers for tests: scripted servers, hypothesis strategies and the transport contract check."""
