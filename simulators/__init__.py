"""Stand-ins for real devices: real servers on real sockets and ptys, for tests and demos.

Nothing here imports ``drivers/`` or ``bridge/``: the simulators encode values on their
own, so that a decoding bug in a driver shows up instead of cancelling itself out.
"""

from simulators.modbus import (
    GeneratedValue,
    LoggedRequest,
    ModbusDeviceState,
    ModbusSimulator,
    decode_registers,
    encode_registers,
)
from simulators.modbus.profile import DEMO_PROFILE, ProfileError, load_profile, parse_profile
from simulators.modbus.rtu import RTU_DEMO_PROFILE, ModbusRtuServer, run_rtu_simulator
from simulators.modbus.tcp import ModbusTcpServer, run_tcp_simulator
from simulators.pty_port import PtyPort
from simulators.serial_line import LineInstrument, run_line_simulator
from simulators.waveforms import Counter, Ramp, RandomWalk, Sine

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
