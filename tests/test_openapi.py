"""/openapi.json: a valid OpenAPI 3.1 document of every route, and schemathesis run against
the live bridge (a Modbus simulator behind it) finding no 5xx and no answer off the schema."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from conftest import BOILER_POINTS, BridgeFactory, eventually, tcp_device
from openapi_spec_validator import OpenAPIV31SpecValidator

from bridge.api.app import ROUTES
from bridge.api.openapi import ERROR_TITLES
from simulators.modbus import ModbusSimulator

PROBLEM = "application/problem+json"
READER, WRITER = "reader", "fuzz"
#: the boiler with something of every writable kind: a float with min and max in
#: little-endian word order, a coil, and one bit of a status register
POINTS: list[dict[str, Any]] = [
    {**p, "writable": True} if p["id"] == "alarm" else p for p in BOILER_POINTS
]
#: examples per operation and phase (the whole run stays well under a minute), and the
#: seed: fixed, so that a failure repeats; set BRIDGE_FUZZ_SEED to explore further
MAX_EXAMPLES = int(os.environ.get("BRIDGE_FUZZ_EXAMPLES", "40"))
SEED = os.environ.get("BRIDGE_FUZZ_SEED", "20261127")
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")

#: The run's configuration. Statuses that a request valid by the schema may get, beyond
#: schemathesis's defaults (2xx, 3xx, 401, 403, 404, 409, 429, 5xx), where the document
#: cannot say more:
#: - a PUT's body is any JSON scalar, and only the point decides what it takes (a bool for
#:   a coil, a number within min and max for the setpoint): 422 otherwise;
#: - the stream and the traffic view are WebSockets: a plain GET of them, which is all an
#:   HTTP fuzzer sends, is answered 400 (as documented; the upgrade is tested in
#:   test_stream.py and test_ui.py), so their warnings that most requests are refused say
#:   nothing. Any other warning fails the run.
#: Device and point ids come from the device file most of the time, so that the fuzzer
#: reaches the devices instead of 404s.
SCHEMATHESIS_CONFIG = """
warnings = { fail-on = true }

[[operations]]
include-operation-id = "write_point"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "422"]

[[operations]]
include-path = "/api/v1/stream"
checks.positive_data_acceptance.expected-statuses = ["400", "401", "403", "404"]
warnings = false

[[operations]]
include-path = "/api/v1/traffic"
checks.positive_data_acceptance.expected-statuses = ["400", "401", "403", "404"]
warnings = false

[dictionaries.devices]
values = ["boiler"]

[dictionaries.points]
values = ["setpoint", "pump_on", "alarm", "temperature", "model"]

[parameters]
"path.device" = { dictionary = "devices", probability = 0.8 }
"path.point" = { dictionary = "points", probability = 0.8 }
"""


def walk(node: Any) -> Iterator[dict[str, Any]]:
    """Every mapping in a JSON document."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


async def fetch_document(session: aiohttp.ClientSession, **headers: str) -> dict[str, Any]:
    async with session.get("openapi.json", headers=headers) as response:
        assert response.status == 200, await response.text()
        assert response.content_type == "application/json"
        document: dict[str, Any] = await response.json()
        return document


@pytest.fixture
async def document(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> dict[str, Any]:
    _, port = simulator
    _, session = await bridge_factory([tcp_device("boiler", port, points=POINTS)])
    return await fetch_document(session)


# --------------------------------------------------------------------------- the document


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    errors = [str(e.message) for e in OpenAPIV31SpecValidator(document).iter_errors()]
    assert errors == []


def test_every_route_is_documented_with_its_method(document: dict[str, Any]) -> None:
    served = {(route.method.lower(), route.path) for route in ROUTES}
    documented = {(method, path) for path, item in document["paths"].items() for method in item}
    assert documented == served
    ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))
    # names a generated client can use as they are
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", i) and "handler" not in i for i in ids), ids


def test_every_error_is_problem_json_and_every_status_is_documented(
    document: dict[str, Any],
) -> None:
    problem = {"$ref": "#/components/schemas/Problem"}
    for route in ROUTES:
        operation = document["paths"][route.path][route.method.lower()]
        responses = operation["responses"]
        statuses = {int(status) for status in responses}
        wanted = {200, *route.errors} | (set() if route.open else {401})
        assert statuses == wanted, route.path
        for status, response in responses.items():
            if int(status) >= 400:
                assert response["content"] == {PROBLEM: {"schema": problem}}, (route.path, status)
                assert response["description"] == ERROR_TITLES[int(status)]
        if route.open:
            assert operation["security"] == []
        elif route.write:
            assert operation["security"] == [{"writeToken": []}]
        else:
            assert operation["security"] == [{"readToken": []}, {"writeToken": []}]
        assert operation["tags"][0] in {tag["name"] for tag in document["tags"]}
    write = document["paths"]["/api/v1/devices/{device}/points/{point}"]["put"]
    assert {"400", "401", "403", "404", "413", "422", "502", "503", "504"} <= set(
        write["responses"]
    )
    assert write["requestBody"]["required"] is True


def test_every_model_schema_is_present_and_every_reference_resolves(
    document: dict[str, Any],
) -> None:
    schemas = document["components"]["schemas"]
    models = {"Problem"}
    for route in ROUTES:
        models.update(m.__name__ for m in (route.answer, route.body) if m is not None)
    assert models <= set(schemas)
    assert {"ReadingOut", "DeviceOut"} <= set(schemas)  # nested in others
    references = {n["$ref"] for n in walk(document) if isinstance(n.get("$ref"), str)}
    assert references
    for reference in references:
        prefix, _, name = reference.rpartition("/")
        assert prefix == "#/components/schemas"
        assert name in schemas, reference
    problem = schemas["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail"}
    reading = schemas["ReadingOut"]["properties"]
    assert set(reading) == {"device", "point", "value", "unit", "quality", "ts", "seq", "error"}


async def test_the_document_follows_the_root_path_and_needs_the_read_token(
    simulator: tuple[ModbusSimulator, int], bridge_factory: BridgeFactory
) -> None:
    _, port = simulator
    _, session = await bridge_factory(
        [tcp_device("boiler", port)], root_path="/resource", read_token=READER
    )
    async with session.get("openapi.json") as response:
        assert response.status == 401
    document = await fetch_document(session, Authorization=f"Bearer {READER}")
    assert document["servers"] == [{"url": "/resource"}]
    assert "/api/v1/devices" in document["paths"]
    schemes = document["components"]["securitySchemes"]
    assert {name: scheme["scheme"] for name, scheme in schemes.items()} == {
        "readToken": "bearer", "writeToken": "bearer",
    }  # fmt: skip


# --------------------------------------------------------------------------- the fuzzer


@pytest.mark.timeout(120)
async def test_schemathesis_finds_nothing_against_the_live_bridge(
    simulator: tuple[ModbusSimulator, int],
    bridge_factory: BridgeFactory,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _, port = simulator
    running, session = await bridge_factory(
        [tcp_device("boiler", port, points=POINTS, timeout=1.0)],
        read_token=READER,
        write_token=f"fuzzer:{WRITER}",
    )

    async def ready() -> bool:
        async with session.get("readyz", headers={"Authorization": f"Bearer {READER}"}) as r:
            return r.status == 200

    await eventually(ready)
    caplog.set_level(logging.INFO, logger="bridge.audit")
    config = tmp_path / "schemathesis.toml"
    config.write_text(SCHEMATHESIS_CONFIG, encoding="utf-8")
    events = tmp_path / "events.ndjson"
    command = [
        str(SCHEMATHESIS), "--config-file", str(config), "--no-color",
        "run", f"{running.url}/openapi.json",
        "--checks", "all",
        "--header", f"Authorization: Bearer {WRITER}",
        "--max-examples", str(MAX_EXAMPLES),
        "--seed", SEED,
        "--generation-database", "none",
        "--request-timeout", "10",
        "--report", "ndjson", "--report-ndjson-path", str(events),
    ]  # fmt: skip
    environment = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=tmp_path,
        env={**environment, "NO_COLOR": "1", "COLUMNS": "120"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    report = output.decode(errors="replace")
    assert process.returncode == 0, report
    # every operation was tested but the document itself, which schemathesis leaves out
    tested = set(re.findall(r'"label":"([A-Z]+ /[^"]*)"', events.read_text(encoding="utf-8")))
    assert tested == {f"{r.method} {r.path}" for r in ROUTES} - {"GET /openapi.json"}, report
    # it got past validation to the devices: every writable point was written
    written = {
        record.getMessage().split(" point=")[1].split(" ")[0]
        for record in caplog.records
        if record.name == "bridge.audit" and record.getMessage().endswith("result=ok")
    }
    assert written == {"setpoint", "pump_on", "alarm"}, report
