"""Which deployments a request tries, in which order.

By weight: the first is drawn with probability weight / total, the next from those
left, and so on (a weighted shuffle). Resting deployments are skipped — unless every
candidate rests, when trying them beats refusing the request.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TypeVar

from dynaseal.gateway.routing.deployment import Deployment

D = TypeVar("D", bound=Deployment)


def weighted_order(candidates: Sequence[D], rng: random.Random) -> list[D]:
    left = list(candidates)
    ordered: list[D] = []
    while left:
        point = rng.random() * sum(d.weight for d in left)
        for index, deployment in enumerate(left):
            point -= deployment.weight
            if point < 0 or index == len(left) - 1:
                ordered.append(left.pop(index))
                break
    return ordered


def attempt_order(candidates: Sequence[D], rng: random.Random, limit: int) -> list[D]:
    """At most ``limit`` deployments to try, in order."""
    awake = [d for d in candidates if not d.resting()]
    return weighted_order(awake or candidates, rng)[:limit]
