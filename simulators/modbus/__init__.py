"""Simulated Modbus devices: units with typed values, a PDU server, and TCP and RTU transports.

The flow reads from the names: :mod:`~simulators.modbus.values` (typed values as registers),
:mod:`~simulators.modbus.unit` (one unit's tables), :mod:`~simulators.modbus.generated`
(waveforms driving registers), :mod:`~simulators.modbus.simulator` (the PDU server for
several units, with faults; :mod:`~simulators.modbus.reply_faults` for wrong replies),
:mod:`~simulators.modbus.profile` (units from a YAML profile), then the transports
:mod:`~simulators.modbus.tcp` (MBAP) and :mod:`~simulators.modbus.rtu` (RTU frames on a pty).
"""

from simulators.modbus.generated import GeneratedValue
from simulators.modbus.simulator import ExceptionRule, LoggedRequest, ModbusSimulator
from simulators.modbus.unit import ModbusDeviceState
from simulators.modbus.values import decode_registers, encode_registers

__all__ = [
    "ExceptionRule",
    "GeneratedValue",
    "LoggedRequest",
    "ModbusDeviceState",
    "ModbusSimulator",
    "decode_registers",
    "encode_registers",
]
