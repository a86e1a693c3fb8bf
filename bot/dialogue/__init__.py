"""Mend's Rasa dialogue components (graph components that run in the Rasa server)."""
