"""Cases for the opset versions and element types tools/op_coverage.py found without a test."""
from __future__ import annotations
