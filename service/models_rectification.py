"""Database schema: rectification records (see service/models.py for the conventions)."""

from __future__ import annotations
