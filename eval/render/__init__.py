"""Markdown and HTML rendering of results: figures, templates and pages."""
