"""The functional suite (``functional_suite.py``) against every driver and its simulator."""

from __future__ import annotations

from driver_cases import MODBUS_RTU, MODBUS_TCP, SERIAL_LINE, SERIAL_LINE_STREAM
from functional_suite import FunctionalSuite


class TestModbusTcp(FunctionalSuite):
    """modbus-tcp against the Modbus TCP simulator on a loopback port."""

    case = MODBUS_TCP


class TestModbusRtu(FunctionalSuite):
    """modbus-rtu against the RTU bus simulator on a pty."""

    case = MODBUS_RTU


class TestSerialLine(FunctionalSuite):
    """serial-line against the line instrument (JSON, query mode) on a pty."""

    case = SERIAL_LINE


class TestSerialLineStream(FunctionalSuite):
    """serial-line in stream mode against the line instrument sending lines by itself."""

    case = SERIAL_LINE_STREAM


def test_every_installed_driver_runs_the_suite() -> None:
    from bridge.registry import available_drivers

    suites = {cls.case.name for cls in FunctionalSuite.__subclasses__()}
    assert suites == set(available_drivers())
