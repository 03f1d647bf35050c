"""smartqueue-sidecar: one GPU host's utilisation, VRAM and temperature over HTTP on :8090.

It runs on the GPU hosts, not in the service, and imports nothing from `smartqueue`.

Errors, in one place:

    SourceUnavailable   a source (NVML, amdsmi, sysfs) cannot serve this host: the program
                        names every source it tried and why, and exits with code 2
    ReadError           one GPU's numbers cannot be read right now: HTTP 503 with the reason
"""
