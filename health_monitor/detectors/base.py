"""The one contract every streaming detector follows.

A detector watches one key (a workspace's hourly cost, a user's activity, a job's runs). It
sees that key's rows in event-time order, a micro-batch at a time, and for each row returns a
score in [0, 1] computed *before* learning the row (strictly causal), then learns it. Its whole
learned state round-trips through bytes so the streaming state store and the checkpoint can keep
it across restarts. Higher score = more anomalous, as in river's ``AnomalyDetector``.
"""

from __future__ import annotations

import pickle
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

#: Mean absolute deviation -> standard deviation for Gaussian noise (both detectors scale by it).
SIGMA_PER_MAD = 1.2533


@dataclass
class Scores:
    """What a detector returns for a batch of rows of one key.

    Attributes:
        score: anomaly score per row, in [0, 1].
        expected: the value the detector expected per row (NaN where it has no opinion yet).
        evidence: per row, the top contributing features/reasons as short strings.
    """

    score: np.ndarray
    expected: np.ndarray
    evidence: list[list[str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.evidence:
            self.evidence = [[] for _ in range(len(self.score))]


class StreamingDetector(ABC):
    """Base class of online detectors: ``__init__`` stores parameters only; learned state lives
    in attributes ending in ``_`` (scikit-learn's convention), so ``get_state`` can pickle it."""

    #: Stable name used in the anomaly_scores and alerts tables.
    name: str = "detector"
    #: Bumped when the algorithm changes so old scores stay attributable.
    version: str = "1"

    @abstractmethod
    def score_learn(self, frame: pd.DataFrame) -> Scores:
        """Score each row of ``frame`` (one key, event-time order), learning it after scoring it."""

    def get_state(self) -> bytes:
        """Everything learned so far, as bytes (parameters included)."""
        return pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)

    @staticmethod
    def from_state(state: bytes) -> StreamingDetector:
        """Rebuild a detector from :meth:`get_state` output."""
        obj = pickle.loads(state)  # noqa: S301 - our own state store, never user input
        if not isinstance(obj, StreamingDetector):
            raise TypeError("state does not hold a StreamingDetector")
        return obj
