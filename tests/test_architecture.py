"""The package's layers: no module imports one above its own (`scripts/import_graph.py` draws the graph)."""

from __future__ import annotations

import pytest

from scripts import import_graph

pytestmark = pytest.mark.in_process


def test_no_module_reaches_back_up_a_layer() -> None:
    assert import_graph.violations(import_graph.graph()) == []


def test_the_check_sees_an_import_that_reaches_up() -> None:
    edges = {"service.stores.sqlite": {"service.jobs.engine"}, "service.jobs.engine": {"service.stores.base"}}
    assert import_graph.violations(edges) == ["service.stores.sqlite (layer 2) imports service.jobs.engine (layer 3)"]
