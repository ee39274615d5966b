"""Running the breach-response flow from the command line, and telling the officer what happened."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from core.settings import Settings

__all__ = ["RunOutcome", "run_breach_response"]


@dataclass(frozen=True)
class RunOutcome:
    summary: dict[str, Any]

    @property
    def refused(self) -> int:
        return int(self.summary["refused_artifacts"])

    def render(self) -> str:
        s = self.summary
        notices = s["notices"]
        lines = [
            f"Breach {s['breach_id']}",
            f"  leaked rows read        {s['rows_read']:>10}",
            f"  rows refused            {s['rows_rejected']:>10}",
            f"  values refused          {s['values_rejected']:>10}",
            f"  files refused           {s['refused_artifacts']:>10}",
            f"  exposed customers       {s['exposed']:>10}",
            f"  notices drafted         {notices['drafted']:>10}",
            f"  without e-mail (post)   {notices['without_email']:>10}",
            f"  report                  {s['report']}",
        ]
        return "\n".join(lines)


def run_breach_response(
    *,
    breach_id: str,
    sources: list[str],
    customers: str | None,
    column_map: dict[str, str],
    output_dir: str,
    settings: Settings,
) -> RunOutcome:
    """Run the flow in this process; its tasks read the same store as the command."""
    from flows.breach_response import breach_response  # importing Prefect takes a second or two

    os.environ["LEAKWATCH_STORE"] = str(settings.store)
    summary = breach_response(
        breach_id=breach_id,
        sources=sources,
        customers=customers,
        column_map=column_map,
        output_dir=output_dir,
    )
    return RunOutcome(summary)
