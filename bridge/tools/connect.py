"""``device-bridge check --connect``: open every link once and poll each device once.

Uses the drivers' own links, exactly as the bridge would, so that a device that answers
here answers there. Nothing is published; every link is closed again.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.config import BridgeConfig
from drivers.base import DriverError, PointFailure


@dataclass(frozen=True)
class Answer:
    """What one device did when polled once."""

    device: str
    link: str
    answered: bool
    detail: str


async def connect_all(config: BridgeConfig) -> list[Answer]:
    """Open each link in turn, read each of its devices once, close it."""
    answers: list[Answer] = []
    for plan in config.links:
        link = plan.driver.open_link(plan.key, plan.devices)
        try:
            await link.open()
        except DriverError as exc:
            answers += [Answer(d.id, plan.key, False, str(exc)) for d in plan.devices]
            continue
        try:
            for device in plan.devices:
                try:
                    result = await link.read(device)
                except DriverError as exc:
                    answers.append(Answer(device.id, plan.key, False, str(exc)))
                    continue
                failed = {k: v.error for k, v in result.items() if isinstance(v, PointFailure)}
                detail = f"{len(result) - len(failed)} of {len(result)} point(s) read"
                if failed:
                    detail += "; " + "; ".join(f"{k}: {v}" for k, v in sorted(failed.items()))
                answers.append(Answer(device.id, plan.key, True, detail))
        finally:
            await link.close()
    return answers


def print_answers(answers: list[Answer]) -> int:
    """Print one line per device; the exit status: 0 when every device answered, else 1."""
    print("connect:")
    for answer in answers:
        verdict = "answers" if answer.answered else "NO ANSWER"
        print(f"  {answer.device} on {answer.link}: {verdict}: {answer.detail}")
    missing = [a.device for a in answers if not a.answered]
    if missing:
        print(f"{len(missing)} of {len(answers)} device(s) did not answer: {', '.join(missing)}")
        return 1
    print(f"all {len(answers)} device(s) answered")
    return 0
