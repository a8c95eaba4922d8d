"""Imports every table module so that SQLModel.metadata knows the whole schema."""

from core import outbox as outbox_model
from core.cases import model as cases_model
from core.hierarchy import model as hierarchy_model

__all__ = ["cases_model", "hierarchy_model", "outbox_model"]
