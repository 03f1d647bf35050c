"""The GPU sources: NVML (NVIDIA), amdsmi and sysfs (AMD), each a `GpuSource`."""
