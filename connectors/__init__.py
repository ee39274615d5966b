"""Acquiring leaked files, sniffing their shape and encoding, parsing them into string batches."""

from __future__ import annotations

from connectors.base import ROW, Artifact, RowReject, Table
from connectors.customers import CUSTOMER_COLUMNS, OPTIONAL_CUSTOMER_COLUMNS, read_customers
from connectors.delimited import FIELD_CAP
from connectors.files import acquire_file, acquire_path
from connectors.parse import PARSERS, Sniffed, parse_artifact, register_parser, sniff_artifact
from connectors.roles import RoleDecision, detect_roles, header_category, parse_overrides
from connectors.sniff import detect_encoding, sniff_media_type

__all__ = [
    "CUSTOMER_COLUMNS",
    "FIELD_CAP",
    "OPTIONAL_CUSTOMER_COLUMNS",
    "PARSERS",
    "ROW",
    "Artifact",
    "RoleDecision",
    "RowReject",
    "Sniffed",
    "Table",
    "acquire_file",
    "acquire_path",
    "detect_encoding",
    "detect_roles",
    "header_category",
    "parse_artifact",
    "parse_overrides",
    "read_customers",
    "register_parser",
    "sniff_artifact",
    "sniff_media_type",
]
