"""The sharded match flow: export key shards, link each on a Dask worker, combine in the store."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any
from uuid import uuid4

from prefect import flow, task, unmapped
from prefect.cache_policies import NONE
from prefect.runtime import flow_run
from prefect.task_runners import TaskRunner
from prefect_dask.task_runners import DaskTaskRunner

from core.settings import Settings
from flows.context import open_store
from matching.link import Plan
from matching.shards import combine, export_shards, link_shard, shard_paths
from matching.snapshot import take_snapshot

__all__ = ["sharded_match"]


def _run_dir(settings: Settings, run_id: str) -> Path:
    """One run's shard folder; workers find it through their own settings (a shared mount)."""
    return settings.work_dir / "shards" / run_id


def _partial(folder: Path, shard: int) -> Path:
    return folder / f"partial-{shard:05d}.parquet"


# Parameters are ids and counts; results are counts. The shard files hold keyed hashes and
# customer numbers only (only the store maps numbers to ids), and nothing is persisted or
# cached by Prefect.
@task(name="export-shards", persist_result=False, cache_policy=NONE)
def export_task(breach_id: str, run_id: str, shards: int) -> Plan:
    """Write the customer and leak keys of each shard to Parquet, from the store; returns the
    plan the leak keys follow ("hinted": only those that hit the customer filter)."""
    settings = Settings()
    with open_store(settings, read_only=True) as store:
        return export_shards(store, breach_id, _run_dir(settings, run_id), shards).plan


@task(name="link-shard", persist_result=False, cache_policy=NONE)
def link_shard_task(run_id: str, shard: int, shards: int) -> int:
    """Join one shard's files into its (customer, leaked row) pairs; runs on a Dask worker."""
    settings = Settings()
    folder = _run_dir(settings, run_id)
    link_shard(
        shard_paths(folder, shards)[shard],
        _partial(folder, shard),
        memory_limit=settings.duckdb_memory_limit,
    )
    return shard


@task(name="combine-shards", persist_result=False, cache_policy=NONE)
def combine_task(breach_id: str, run_id: str, shards: int, plan: Plan) -> int:
    """Combine the shards' pairs and replace the breach's exposures in the store."""
    settings = Settings()
    folder = _run_dir(settings, run_id)
    with open_store(settings) as store:
        take_snapshot(store, "match", keep=settings.snapshot_keep)
        partials = [_partial(folder, n) for n in range(shards)]
        return combine(store, breach_id, partials, plan=plan).exposed


@task(name="remove-shards", persist_result=False, cache_policy=NONE)
def cleanup_task(run_id: str) -> None:
    """Delete the run's shard folder."""
    shutil.rmtree(_run_dir(Settings(), run_id), ignore_errors=True)


@flow(name="link-shards")
def link_shards(run_id: str, shards: int) -> list[int]:
    """Every shard linked in parallel by the flow's task runner."""
    return link_shard_task.map(unmapped(run_id), range(shards), unmapped(shards)).result()


# Any: prefect-dask declares its runner over Prefect's default future type, not Dask's.
def _task_runner(settings: Settings, workers: int) -> TaskRunner[Any]:
    """The cluster at ``LEAKWATCH_DASK_ADDRESS``, else a local one of ``workers`` processes."""
    if settings.dask_address:
        return DaskTaskRunner(address=settings.dask_address)
    return DaskTaskRunner(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs={
            "n_workers": workers,
            "threads_per_worker": 1,
            "processes": True,
            "dashboard_address": None,
        },
    )


@flow(name="sharded-match")
def sharded_match(breach_id: str, shards: int = 4, workers: int = 2) -> int:
    """Recompute a breach's exposures by key shard on Dask; the same rows as one machine."""
    if shards < 1 or workers < 1:
        raise ValueError("shards and workers must be at least 1")
    settings = Settings()
    run_id = str(flow_run.id or uuid4().hex)
    try:
        plan = export_task(breach_id, run_id, shards)
        link_shards.with_options(task_runner=_task_runner(settings, workers))(run_id, shards)
        return combine_task(breach_id, run_id, shards, plan)
    finally:
        cleanup_task(run_id)
