"""Databricks Health Monitor: ML and streaming anomaly detection over the Gold layer.

Data flows one way: system tables (or the simulator, or ingested files) -> ``gold`` ->
``features`` -> ``detectors`` + ``rules`` -> ``streaming`` and ``batch`` -> ``serving``, CLI, report.
"""

__version__ = "0.1.0"
