"""Reading and writing a Modbus device through any transport: planned blocks, refusal learning.

A :class:`ModbusLink` keeps, per device, the blocks it reads and what it has learnt from
refusals (see :mod:`drivers.modbus.planner`), and turns writes into registers or coils.
Requests and replies are PDUs (:mod:`drivers.modbus.pdu` builds and checks them); a
transport implements only :meth:`ModbusLink.transact`, one request PDU sent and its reply
PDU received, bounded by the device's timeout, and says what its frames were on the wire
while the traffic view watches.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from drivers.base import (
    BadValue,
    DriverError,
    Exchange,
    Link,
    PointFailure,
    PointValues,
    ReadResult,
    Value,
    Wire,
)
from drivers.modbus.blocks import BlockDecoder, decode_block
from drivers.modbus.codec import encode_bit, encode_value
from drivers.modbus.config import ModbusDevice, ModbusPoint
from drivers.modbus.pdu import (
    ModbusRefusal,
    read_reply_data,
    read_request,
    read_values,
    write_coil_request,
    write_registers_request,
    write_reply,
)
from drivers.modbus.planner import ReadBlock, barrier_between, plan_reads, split_block
from drivers.modbus.rtu_frame import describe_pdu

ILLEGAL_ADDRESS = 2

#: the traffic view's entry for bytes a transport dropped before a request (no device)
UNREQUESTED = "bytes nothing asked for"
UNREQUESTED_WHY = (
    "arrived while no request was out (a reply after its timeout; on a bus, also another "
    "master or noise): dropped"
)

#: a point found unreadable is asked for again only every this many polls
REPROBE_EVERY = 30


@dataclass
class DevicePlan:
    """What the link has learnt about one device's address space, and the blocks that follow."""

    device: ModbusDevice
    barriers: set[tuple[str, int]] = field(default_factory=set)
    isolated: set[str] = field(default_factory=set)
    unreadable: dict[str, str] = field(default_factory=dict)
    polls: int = 0
    blocks: list[ReadBlock] = field(default_factory=list)

    #: the device's point ids in file order, and each one's position
    ids: tuple[str, ...] = field(default=(), init=False)
    index: dict[str, int] = field(default_factory=dict, init=False)
    _decoders: dict[int, BlockDecoder] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.ids = tuple(point.id for point in self.device.points)
        self.index = {point_id: i for i, point_id in enumerate(self.ids)}
        self.replan()

    def decoder(self, block: ReadBlock) -> BlockDecoder:
        """The decoder of a register block of the device into the device's column: the
        planned blocks' are kept, one made for another block (a half of a refused one) is
        not, as a poll cut short before it learns anything splits its block anew."""
        decoder = self._decoders.get(id(block))
        if decoder is not None and decoder.block is block:
            return decoder
        return self._new_decoder(block)

    def _new_decoder(self, block: ReadBlock) -> BlockDecoder:
        return BlockDecoder(block, [self.index[point.id] for point in block.points])

    def replan(self) -> None:
        """Recompute the blocks from the points and what has been learnt."""
        self.blocks = plan_reads(
            self.device.points,
            max_gap=self.device.max_gap,
            max_registers=self.device.max_registers,
            max_bits=self.device.max_bits,
            barriers=frozenset(self.barriers),
            isolated=frozenset(self.isolated),
        )
        self._decoders = {
            id(block): self._new_decoder(block) for block in self.blocks if not block.is_bits
        }


def plan_for(device: ModbusDevice) -> DevicePlan:
    """A fresh plan for a device (also what ``device-bridge check`` prints)."""
    return DevicePlan(device)


ModbusDeviceT = TypeVar("ModbusDeviceT", bound=ModbusDevice)
"""The device model of one Modbus transport."""


class ModbusLink(Link[ModbusDeviceT]):
    """The transport-independent half of a Modbus link."""

    def __init__(self, devices: Sequence[ModbusDeviceT]) -> None:
        self._plans = {device.id: DevicePlan(device) for device in devices}

    @abstractmethod
    async def transact(
        self, device: ModbusDevice, request: bytes, wire: Wire | None = None
    ) -> bytes:
        """Send one request PDU to the device and return its reply PDU as received.

        The transport frames the bytes and checks the unit; whether the reply answers the
        request is checked here. Raises DeviceTimeout when no reply came in time,
        DeviceError when only unusable frames came, LinkError when the connection is gone.
        Given a ``wire``, the transport puts in it the frame it sent and what came back for
        it, whole frames as on the wire, also when it raises.
        """

    async def _exchange(self, device: ModbusDevice, request: bytes) -> bytes:
        """``transact``, reported to the tap (the frames on the wire) while one is attached."""
        tap = self.tap
        if tap is None:
            return await self.transact(device, request)
        started, begun = time.time(), time.perf_counter()
        wire, error = Wire(), None
        try:
            reply = await self.transact(device, request, wire)
            if reply[:1] and reply[0] & 0x80:
                error = str(ModbusRefusal(reply[1]))
            return reply
        except DriverError as exc:
            error = str(exc)
            raise
        finally:
            if wire.unrequested:
                tap.record(
                    Exchange("", UNREQUESTED, b"", wire.unrequested, wire.unrequested_at, 0.0,
                             UNREQUESTED_WHY)
                )  # fmt: skip
            tap.record(
                Exchange(device.id, f"unit {device.unit}: {describe_pdu(request)}", wire.sent,
                         wire.received, started, time.perf_counter() - begun, error)
            )  # fmt: skip

    async def _request(
        self, device: ModbusDevice, block: ReadBlock
    ) -> Sequence[int] | Sequence[bool]:
        """One read of a block: its registers or bits.

        Raises ModbusRefusal for an exception reply, another DriverError for anything else.
        """
        return read_values(
            block.function_code, block.count, await self._request_data(device, block)
        )

    async def _request_data(self, device: ModbusDevice, block: ReadBlock) -> bytes:
        """One read of a block: the data bytes of its checked reply; raises as ``_request``."""
        function = block.function_code
        request = read_request(function, block.start, block.count)
        return read_reply_data(function, block.count, await self._exchange(device, request))

    async def _write_registers(self, device: ModbusDevice, address: int, values: list[int]) -> None:
        """Write holding registers (function 6 for one, 16 for more); raise as ``_request``."""
        request = write_registers_request(address, values)
        write_reply(request, await self._exchange(device, request))

    async def _write_coil(self, device: ModbusDevice, address: int, value: bool) -> None:
        """Write one coil (function 5); raise as ``_request``."""
        request = write_coil_request(address, value)
        write_reply(request, await self._exchange(device, request))

    async def read_raw(
        self, device: ModbusDevice, block: ReadBlock
    ) -> Sequence[int] | Sequence[bool]:
        """One read request for ``device`` (any unit on this link), its answer undecoded:
        what ``probe`` and ``scan`` send. Raises as ``_request``."""
        return await self._request(device, block)

    async def write(self, device: ModbusDeviceT, point_id: str, value: Value) -> None:
        """Write one point: registers, a coil, or one bit of a register.

        A bit is written by reading its register and writing it back with the bit changed;
        the link's one task runs both, so no other request comes between them (the device
        itself may still change other bits of that register meanwhile: that is its affair).
        """
        point = point_of(device, point_id)
        if point is None:
            raise BadValue(f"device {device.id!r} has no point {point_id!r}")
        if point.table not in ("holding", "coil"):
            raise BadValue(f"point {point_id!r} is in the read-only {point.table} table")
        encoded = encode_value(point, value)
        if isinstance(encoded, bool) and point.table == "coil":
            await self._write_coil(device, point.address, encoded)
        elif isinstance(encoded, bool):
            assert point.bit is not None
            block = ReadBlock("holding", point.address, 1, (point,))
            (register,) = await self._request(device, block)
            changed = encode_bit(int(register), point.bit, encoded, byte_order=point.byte_order)
            await self._write_registers(device, point.address, [changed])
        else:
            await self._write_registers(device, point.address, encoded)

    async def read(self, device: ModbusDeviceT) -> ReadResult:
        plan = self._plans[device.id]
        plan.polls += 1
        reprobe = plan.polls % REPROBE_EVERY == 0
        results: list[Value | PointFailure | None] = [None] * len(plan.ids)
        learnt = False
        for block in plan.blocks:
            if len(block.points) == 1 and block.points[0].id in plan.unreadable and not reprobe:
                point = block.points[0]
                results[plan.index[point.id]] = PointFailure(plan.unreadable[point.id])
                continue
            learnt |= (await self._read_block(plan, block, results))[1]
        if learnt:
            plan.replan()
        return PointValues(plan.ids, results)

    async def _read_block(
        self, plan: DevicePlan, block: ReadBlock, results: list[Value | PointFailure | None]
    ) -> tuple[bool, bool]:
        """Read one block into ``results``, the device's column (:class:`PointValues`):
        (answered without a refusal, learnt something).

        A block refused as an illegal address is split in two and both halves read at once:
        if both are then answered, the unused addresses between them were the cause and
        become a barrier; a single refused point is isolated and reported as failed.
        """
        try:
            data = await self._request_data(plan.device, block)
        except ModbusRefusal as refusal:
            if refusal.code != ILLEGAL_ADDRESS:
                for point in block.points:
                    results[plan.index[point.id]] = PointFailure(str(refusal))
                return False, False
            if len(block.points) == 1:
                point = block.points[0]
                message = f"unreadable: {refusal}"
                results[plan.index[point.id]] = PointFailure(message)
                plan.isolated.add(point.id)
                first_time = point.id not in plan.unreadable
                plan.unreadable[point.id] = message
                return False, first_time
            left, right = split_block(block)
            left_answered, _ = await self._read_block(plan, left, results)
            right_answered, _ = await self._read_block(plan, right, results)
            if left_answered and right_answered:
                plan.barriers.add(barrier_between(left, right))
            return False, True
        if block.is_bits:
            bits = read_values(block.function_code, block.count, data)
            for point, value in decode_block(block, bits):
                results[plan.index[point.id]] = value
        else:
            plan.decoder(block).decode_into(data, results)
        if len(block.points) == 1 and block.points[0].id in plan.unreadable:
            # A point that came back (a device reconfigured) rejoins its neighbours' block.
            del plan.unreadable[block.points[0].id]
            plan.isolated.discard(block.points[0].id)
            return True, True
        return True, False


def point_of(device: ModbusDevice, point_id: str) -> ModbusPoint | None:
    """The Modbus point with this id, or None."""
    return next((p for p in device.points if p.id == point_id), None)
