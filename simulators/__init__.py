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
from simulators.modbus_tcp import ModbusTcpServer, run_tcp_simulator
from simulators.profile import DEMO_PROFILE, ProfileError, load_profile, parse_profile

__all__ = [
    "DEMO_PROFILE",
    "Counter",
    "GeneratedValue",
    "LoggedRequest",
    "ModbusDeviceState",
    "ModbusSimulator",
    "ModbusTcpServer",
    "ProfileError",
    "Ramp",
    "RandomWalk",
    "Sine",
    "decode_registers",
    "encode_registers",
    "load_profile",
    "parse_profile",
    "run_tcp_simulator",
]
