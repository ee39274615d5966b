"""Deployments are code: every prefect.yaml entrypoint loads and its parameters fit the flow."""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOYMENTS = yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]


@pytest.mark.parametrize("deployment", DEPLOYMENTS, ids=lambda d: d["name"])
def test_entrypoint_loads_and_parameters_fit(deployment: dict[str, object]) -> None:
    from prefect import Flow

    file, _, name = str(deployment["entrypoint"]).partition(":")
    spec = importlib.util.spec_from_file_location(f"deployment_{name}", ROOT / file)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    flow = getattr(module, name)
    assert isinstance(flow, Flow)
    signature = inspect.signature(flow.fn)
    given = dict(deployment.get("parameters") or {})
    assert set(given) <= set(signature.parameters), "unknown parameters in prefect.yaml"
    required = {
        p.name for p in signature.parameters.values() if p.default is inspect.Parameter.empty
    }
    schedules = deployment.get("schedules") or []
    if schedules:  # a scheduled run has nobody to supply a missing parameter
        assert required <= set(given), f"scheduled without {required - set(given)}"


def test_work_pools_are_declared_once_as_anchors() -> None:
    text = (ROOT / "prefect.yaml").read_text()
    assert "&process_pool" in text
    for deployment in DEPLOYMENTS:
        assert deployment["work_pool"]["name"] == "leakwatch"
