"""The breach the notice tests write about: an operator's facts, complete for art. 34(2)."""

from __future__ import annotations

from datetime import UTC, datetime

from schemas.models import BreachFacts

EXAMPLE_BREACH = BreachFacts(
    breach_id="B-2026-01",
    operator_name="Opérateur Exemple",
    detected_at=datetime(2026, 1, 14, 9, 30, tzinfo=UTC),
    summary_fr="Une personne non autorisée a copié une partie de notre base de clients.",
    summary_en="An unauthorised person copied part of our customer database.",
    measures_fr="Nous avons bloqué l'accès utilisé et informé la CNIL.",
    measures_en="We blocked the access that was used and informed the CNIL.",
    dpo_contact="dpo@operateur.example",
    support_contact="01 23 45 67 89 ou https://assistance.operateur.example",
    sender_email="securite@operateur.example",
)
