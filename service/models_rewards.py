"""Database schema: rewards records (see service/models.py for the conventions)."""

from __future__ import annotations
