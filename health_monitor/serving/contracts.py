"""Request and response contracts of the serving endpoints, derived from the MLflow signatures.

The catalog names each endpoint's model; the model's logged signature names and types its input
columns and its outputs. Everything a caller sees (validation messages, the OpenAPI document)
comes from those two, so a retrained model with a new feature changes the contract without a
code change here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd

from health_monitor.catalog import ModelSpec

#: Largest request body accepted (bytes) and most records in one call: a caller batching a day of
#: job runs fits; a runaway client cannot make one worker hold gigabytes.
MAX_BODY_BYTES = 1_000_000
MAX_RECORDS = 1_000

#: Keys that identify a run or a statement rather than the entity a caller asks about: the online
#: store answers "the latest features of this job", not of one past run.
_ROW_ONLY_KEYS = {"run_id"}

#: Risk levels from a probability-like output (0-1): shared by every risk endpoint so that
#: "HIGH" means the same on job-failure-risk and on exfiltration-risk.
RISK_LEVELS = ((0.85, "CRITICAL"), (0.6, "HIGH"), (0.3, "MEDIUM"), (0.0, "LOW"))


class RequestError(ValueError):
    """A caller's mistake: answered with a 4xx and this message, never a 500."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Field:
    """One input column: its name and JSON type (``number``, ``string`` or ``date-time``)."""

    name: str
    kind: str


@dataclass
class Contract:
    """What one endpoint accepts and returns."""

    endpoint: str
    spec: ModelSpec
    fields: list[Field]
    outputs: list[str]
    lookup_keys: list[str]
    risk_output: str | None
    example: dict[str, Any] = field(default_factory=dict)
    example_keys: dict[str, Any] = field(default_factory=dict)

    # --------------------------------------------------------------- validation
    def records_frame(self, records: list[Any]) -> pd.DataFrame:
        """Validate feature records and return them as the model's input frame (signature types).

        Every field is required (null is allowed: the models handle missing values); unknown
        fields are refused so a typo is not silently ignored.
        """
        names = [f.name for f in self.fields]
        known = set(names)
        cols: dict[str, list[Any]] = {n: [] for n in names}
        for i, rec in enumerate(records):
            if not isinstance(rec, dict):
                raise RequestError(f"records[{i}] must be an object of feature values")
            missing = [n for n in names if n not in rec]
            if missing:
                raise RequestError(f"records[{i}] lacks {len(missing)} feature(s): {', '.join(missing[:8])}"
                                   + (" ..." if len(missing) > 8 else ""))
            extra = [k for k in rec if k not in known]
            if extra:
                raise RequestError(f"records[{i}] has unknown field(s): {', '.join(map(str, extra[:8]))}")
            for f in self.fields:
                cols[f.name].append(_coerce(rec[f.name], f, i))
        # Numbers as one float block (one allocation, not one Series per column: most of a
        # single-record call's cost otherwise), then the few text and time columns.
        nums = [f.name for f in self.fields if f.kind == "number"]
        block = np.array([cols[n] for n in nums], dtype="float64").T.reshape(len(records), len(nums))
        frame = pd.DataFrame(block, columns=nums)
        for f in self.fields:
            if f.kind != "number":
                frame[f.name] = pd.Series(cols[f.name], dtype=_dtype(f))
        return frame[names]

    def risk_level(self, value: Any) -> str | None:
        """The risk level of a probability-like output (None where the endpoint has none)."""
        if self.risk_output is None or value is None:
            return None
        v = float(value)
        if self.spec.outputs and self.risk_output == self.spec.outputs[0] and v > 1.0:
            v = v / 100.0  # scores published on a 0-100 scale
        return next(level for bound, level in RISK_LEVELS if v >= bound)

    # --------------------------------------------------------------- OpenAPI
    def request_schema(self) -> dict[str, Any]:
        """JSON schema of the request body: ``records`` (features) or ``keys`` (entity keys)."""
        props = {f.name: _json_type(f) for f in self.fields}
        record = {"type": "object", "properties": props, "required": [f.name for f in self.fields],
                  "additionalProperties": False}
        key = {"type": "object", "properties": {k: {"type": ["string", "integer"]} for k in self.lookup_keys},
               "required": [k for k in self.lookup_keys if k != "workspace_id"] or self.lookup_keys,
               "additionalProperties": False}
        return {
            "type": "object",
            "description": (f"Either `records` (the model's features, one object per record) or `keys` "
                            f"({', '.join(self.lookup_keys)}: the latest features come from the online "
                            f"store). At most {MAX_RECORDS} records per call."),
            "properties": {"records": {"type": "array", "items": record, "minItems": 1, "maxItems": MAX_RECORDS},
                           "keys": {"type": "array", "items": key, "minItems": 1, "maxItems": MAX_RECORDS}},
            "oneOf": [{"required": ["records"]}, {"required": ["keys"]}],
            "additionalProperties": False,
        }

    def response_schema(self) -> dict[str, Any]:
        """JSON schema of a successful answer."""
        pred = {"type": "object", "properties": {o: {} for o in self.outputs}}
        item: dict[str, Any] = {"type": "object", "properties": {
            "prediction": pred, "key": {"type": "object"},
            "risk_level": {"type": "string", "enum": [lv for _, lv in RISK_LEVELS]},
            "top_reasons": {"type": "array", "items": {"type": "object"}},
        }, "required": ["prediction"]}
        return {"type": "object", "required": ["model", "version", "predictions"], "properties": {
            "model": {"type": "string"}, "version": {"type": "string"},
            "predictions": {"type": "array", "items": item}}}


def build_contract(endpoint: str, spec: ModelSpec, signature: Any) -> Contract:
    """The contract of ``endpoint`` from its catalog entry and the served version's signature."""
    fields = []
    for col in signature.inputs.inputs:
        t = str(getattr(col.type, "name", col.type)).lower()
        kind = "date-time" if "datetime" in t else "string" if t in {"string", "binary"} else "number"
        fields.append(Field(col.name, kind))
    outputs = [c.name for c in signature.outputs.inputs] if signature.outputs is not None else list(spec.outputs)
    keys = [k for k in spec.entity_keys if k not in _ROW_ONLY_KEYS]
    return Contract(endpoint, spec, fields, outputs, keys, _risk_output(spec))


def _risk_output(spec: ModelSpec) -> str | None:
    """The output a risk level is read from: risk models' probability or score."""
    if spec.problem_type not in {"classification", "anomaly_detection"}:
        return None
    return spec.outputs[0]


def _coerce(value: Any, f: Field, i: int) -> Any:
    """One JSON value to the field's Python type, or a :class:`RequestError` that says why."""
    if value is None:
        return None
    where = f"records[{i}].{f.name}"
    if f.kind == "number":
        if isinstance(value, bool):
            return float(value)
        if not isinstance(value, int | float):
            raise RequestError(f"{where} must be a number, got {type(value).__name__} {_short(value)}")
        v = float(value)
        if not math.isfinite(v):
            raise RequestError(f"{where} must be a finite number, got {value}")
        return v
    if f.kind == "date-time":
        if not isinstance(value, str):
            raise RequestError(f"{where} must be an ISO-8601 date or time string")
        try:
            ts = pd.Timestamp(value)
        except (ValueError, TypeError):
            raise RequestError(f"{where} is not an ISO-8601 date or time: {_short(value)}") from None
        # Naive timestamps are UTC (what the feature tables hold); aware ones are converted.
        return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts
    if isinstance(value, dict | list):
        raise RequestError(f"{where} must be a string, got {type(value).__name__}")
    return str(value)


def _dtype(f: Field) -> str:
    return {"number": "float64", "date-time": "datetime64[ns]"}.get(f.kind, "object")


def _json_type(f: Field) -> dict[str, Any]:
    if f.kind == "number":
        return {"type": ["number", "null"]}
    if f.kind == "date-time":
        return {"type": ["string", "null"], "format": "date-time"}
    return {"type": ["string", "null"]}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def jsonable(value: Any) -> Any:
    """A model output or feature value as plain JSON (NaN and NaT become null)."""
    if value is None:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, pd.Timestamp | datetime | date):
        return None if pd.isna(value) else value.isoformat()
    if isinstance(value, np.ndarray | list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value
