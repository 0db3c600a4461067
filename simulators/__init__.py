"""Stand-ins for real devices: real servers on real sockets and ptys, for tests and demos.

Nothing here imports ``drivers/`` or ``bridge/``: the simulators encode values on their
own, so that a decoding bug in a driver shows up instead of cancelling itself out.
"""

from simulators.modbus import (
    Counter,
    GeneratedValue,
    LoggedRequest,
    ModbusDeviceState,
    ModbusSimulator,
    Ramp,
    RandomWalk,
    Sine,
    decode_registers,
    encode_registers,
)
from simulators.modbus_rtu import RTU_DEMO_PROFILE, ModbusRtuServer, run_rtu_simulator
from simulators.modbus_tcp import ModbusTcpServer, run_tcp_simulator
from simulators.profile import DEMO_PROFILE, ProfileError, load_profile, parse_profile
from simulators.pty_port import PtyPort
from simulators.serial_line import LineInstrument, run_line_simulator

__all__ = [
    "DEMO_PROFILE",
    "RTU_DEMO_PROFILE",
    "Counter",
    "GeneratedValue",
    "LineInstrument",
    "LoggedRequest",
    "ModbusDeviceState",
    "ModbusRtuServer",
    "ModbusSimulator",
    "ModbusTcpServer",
    "ProfileError",
    "PtyPort",
    "Ramp",
    "RandomWalk",
    "Sine",
    "decode_registers",
    "encode_registers",
    "load_profile",
    "parse_profile",
    "run_line_simulator",
    "run_rtu_simulator",
    "run_tcp_simulator",
]
