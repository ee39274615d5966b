"""The regulator dossier's contracts: its JSON Schemas and the CNIL form's data categories."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from schemas.vocab import Category

__all__ = [
    "CNIL_CATEGORIES",
    "CNIL_LABELS",
    "DESCRIPTION_SCHEMA",
    "DOSSIER_SCHEMA",
    "load_schema",
]

DOSSIER_SCHEMA = "dossier.schema.json"
DESCRIPTION_SCHEMA = "breach_description.schema.json"

C = Category
# Our field-level categories grouped as the CNIL's notification form asks for them.
CNIL_CATEGORIES: dict[str, tuple[Category, ...]] = {
    "identity": (C.NAME, C.BIRTH_DATE, C.BIRTH_PLACE),
    "contact": (C.EMAIL, C.PHONE, C.POSTAL_ADDRESS),
    "financial": (C.IBAN, C.BIC),
    "identifiers": (C.CUSTOMER_NUMBER, C.CONTRACT),
    "connection": (C.IP_ADDRESS,),
    "credentials": (C.PASSWORD,),
    "official_documents": (C.ID_DOCUMENT,),
    "other": (C.OTHER,),
}
CNIL_LABELS: dict[str, str] = {
    "identity": "État civil, identité, données d'identification",
    "contact": "Coordonnées (adresse postale ou électronique, téléphone)",
    "financial": "Données bancaires ou financières (IBAN, BIC)",
    "identifiers": "Identifiants attribués (numéro de client, numéro de contrat)",
    "connection": "Données de connexion ou de localisation (adresse IP)",
    "credentials": "Données d'authentification (mots de passe)",
    "official_documents": "Documents officiels (pièce d'identité)",
    "other": "Autres données",
}


@cache
def load_schema(name: str) -> dict[str, Any]:
    """One of this package's JSON Schemas (draft 2020-12), parsed."""
    text = (resources.files("schemas") / name).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema
