"""Drive ``agent.py --pipe`` without a Paranet runtime: call its skills, watch its broadcasts.

In pipe mode the Paranet SDK (``paranet_agent.pipeio``) reads one JSON request a line on
stdin, ``{"id": N, "func": NAME, "args": [...], "kwargs": {...}}``, and writes packets on
stdout, each a line starting with ``~p~a~c~k~e~t~``: answers ``{"id": N, "result": ...}``
or ``{"id": N, "error": "..."}``, and events ``{"event": NAME, "body": {...}}``. The
functions are the actor's GraphQL names (``getActorMetadata`` lists them). An async skill
is called with a conversation id ``_cid``, answers at once, and later sends its completion
event ``{"cid": ...}``; its result is then fetched with its ``response`` function.
Broadcasts arrive as events named after the broadcast (``eventName`` in the metadata).

This is what :class:`PipeAgent` does. From a shell, with the bridge running::

    export SERVICE_URL=http://127.0.0.1:5000
    python pipe_client.py                        # lists the skills
    python pipe_client.py read_sensor device=boiler point=temperature
    python pipe_client.py latest_readings device=boiler
    BRIDGE_TOKEN=... python pipe_client.py write_setpoint device=boiler point=setpoint value:=70.5
    ALERTS='boiler/temperature>63~1' python pipe_client.py --watch

``name=text`` passes a string, ``name:=json`` a JSON value (a number, true, null).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import itertools
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

PACKET_HEADER = "~p~a~c~k~e~t~"  # paranet_agent.pipeio.PACKET_HEADER
AGENT = Path(__file__).with_name("agent.py")


class PipeError(Exception):
    """The agent answered an error, or stopped."""


class PipeAgent:
    """``agent.py --pipe`` in a subprocess, spoken to as a Paraflow runtime would."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.ids = itertools.count(1)
        self.answers: dict[int, asyncio.Future[Any]] = {}
        self.completions: dict[str, asyncio.Future[None]] = {}
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.stderr: collections.deque[str] = collections.deque(maxlen=200)
        self.actor: dict[str, Any] = {}
        self.broadcast_actions: dict[str, str] = {}
        self.readers = [
            asyncio.create_task(self._read_stdout()),
            asyncio.create_task(self._read_stderr()),
        ]

    @classmethod
    async def start(
        cls,
        env: dict[str, str] | None = None,
        agent: Path | str = AGENT,
        python: str = sys.executable,
    ) -> PipeAgent:
        """Start the agent and read its metadata; ``env`` replaces the environment."""
        process = await asyncio.create_subprocess_exec(
            python,
            str(agent),
            "--pipe",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            limit=16 * 1024 * 1024,
        )
        self = cls(process)
        try:
            actors = await self.call("getActorMetadata")
            if len(actors) != 1:
                raise PipeError(f"expected one actor, the agent has {len(actors)}")
            self.actor = actors[0]
            self.broadcast_actions = {b["eventName"]: b["action"] for b in self.actor["broadcast"]}
        except BaseException:
            await self.close()
            raise
        return self

    async def __aenter__(self) -> PipeAgent:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # the protocol ---------------------------------------------------------------------

    async def call(self, func: str, *args: Any, **kwargs: Any) -> Any:
        """Call one function of the pipe server; its result, or :class:`PipeError`."""
        request_id = next(self.ids)
        answer = asyncio.get_running_loop().create_future()
        self.answers[request_id] = answer
        line = json.dumps({"id": request_id, "func": func, "args": args, "kwargs": kwargs})
        stdin = self.process.stdin
        assert stdin is not None
        stdin.write(line.encode() + b"\n")
        await stdin.drain()
        return await answer

    def skill_info(self, action: str) -> dict[str, Any]:
        """The metadata of one skill, by action."""
        for skill in self.actor["skills"]:
            if skill["action"] == action:
                return dict(skill)
        known = ", ".join(s["action"] for s in self.actor["skills"])
        raise PipeError(f"no skill {action!r}; the agent has {known}")

    async def skill(self, action: str, **inputs: Any) -> dict[str, Any]:
        """Request a skill as the runtime does; its answer (a dict), or :class:`PipeError`."""
        info = self.skill_info(action)
        cid = uuid.uuid4().hex
        completed = asyncio.get_running_loop().create_future()
        self.completions[cid] = completed
        try:
            await self.call(info["mutation"], _cid=cid, **inputs)
            await completed
        finally:
            self.completions.pop(cid, None)
        if not info.get("response"):
            return {}
        answer = await self.call(info["response"], cid)
        return dict(answer) if answer is not None else {}

    async def init(self) -> None:
        """Call the actor's initializer, as the runtime does once on start."""
        if self.actor.get("init"):
            await self.call(self.actor["init"]["mutation"])

    async def broadcast(self) -> dict[str, Any]:
        """The next broadcast: ``{"action": ..., "body": {...}}``."""
        return await self.events.get()

    async def close(self) -> None:
        """Close stdin (the agent's signal to stop) and wait for it to exit."""
        if self.process.returncode is None:
            if self.process.stdin is not None:
                self.process.stdin.close()
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        for reader in self.readers:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    # reading ----------------------------------------------------------------------------

    async def _read_stdout(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        try:
            while line := (await stdout.readline()).decode():
                if line.startswith(PACKET_HEADER):
                    self._packet(json.loads(line[len(PACKET_HEADER) :]))
                elif line.strip():
                    self.stderr.append(line.rstrip("\n"))  # a print() of the agent
        finally:
            tail = "\n".join(list(self.stderr)[-20:])
            stopped = PipeError(f"the agent stopped; its last words:\n{tail}")
            for future in [*self.answers.values(), *self.completions.values()]:
                if not future.done():
                    future.set_exception(stopped)

    def _packet(self, packet: dict[str, Any]) -> None:
        if "id" in packet:
            answer = self.answers.pop(packet["id"], None)
            if answer is None or answer.done():
                return
            if "error" in packet:
                # "Exception: <the skill's message>\nTraceback ...": keep the message
                first = str(packet["error"]).split("\n", 1)[0]
                answer.set_exception(PipeError(first.removeprefix("Exception: ")))
            else:
                answer.set_result(packet.get("result"))
            return
        name = packet.get("event", "")
        body = packet.get("body") or {}
        completed = self.completions.get(str(body.get("cid")))
        if completed is not None and not completed.done():
            completed.set_result(None)
        elif name in self.broadcast_actions:
            self.events.put_nowait({"action": self.broadcast_actions[name], "body": body})
        else:
            self.events.put_nowait({"action": None, "event": name, "body": body})

    async def _read_stderr(self) -> None:
        stderr = self.process.stderr
        assert stderr is not None
        while line := (await stderr.readline()).decode(errors="replace"):
            self.stderr.append(line.rstrip("\n"))
            if os.environ.get("PIPE_VERBOSE"):
                print(line, end="", file=sys.stderr)


def parse_inputs(items: list[str]) -> dict[str, Any]:
    """``name=text`` and ``name:=json`` pairs."""
    inputs: dict[str, Any] = {}
    for item in items:
        if ":=" in item:
            name, text = item.split(":=", 1)
            inputs[name] = json.loads(text)
        elif "=" in item:
            name, text = item.split("=", 1)
            inputs[name] = text
        else:
            raise SystemExit(f"pipe_client.py: {item!r}: write name=text or name:=json")
    return inputs


async def run(args: argparse.Namespace) -> int:
    async with await PipeAgent.start(env=dict(os.environ)) as agent:
        if args.watch:
            await agent.init()
            print("watching; Ctrl-C stops", file=sys.stderr)
            while True:
                print(json.dumps(await agent.broadcast(), ensure_ascii=False), flush=True)
        if not args.skill:
            for skill in agent.actor["skills"]:
                names = ", ".join(i["name"] for i in skill["inputs"] if i["name"] != "_cid")
                print(f"{skill['subject']}/{skill['action']}({names})")
            return 0
        try:
            answer = await agent.skill(args.skill, **parse_inputs(args.inputs))
        except PipeError as error:
            print(f"{args.skill} failed: {error}", file=sys.stderr)
            return 1
        print(json.dumps(answer, indent=2, ensure_ascii=False))
        return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("skill", nargs="?", help="a skill's action; none lists the skills")
    parser.add_argument("inputs", nargs="*", help="name=text or name:=json")
    parser.add_argument("--watch", action="store_true", help="start the watcher, print broadcasts")
    args = parser.parse_args()
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
