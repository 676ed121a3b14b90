"""Moved to :mod:`featkit.validation` (the checks serve every part of featkit); kept so
that plugins importing ``featkit.extractors.params`` keep working."""

from featkit.validation import check_bool, check_float, check_int, is_int, is_number

__all__ = ["check_bool", "check_float", "check_int", "is_int", "is_number"]
