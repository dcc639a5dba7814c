"""Telemetry samplers: NVIDIA (NVML), AMD (pyrsmi), host and client (psutil), Prometheus endpoints.

Never imports the UI. Every sampler degrades to a plain "not available: why" instead of raising.
"""
