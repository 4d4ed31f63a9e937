"""supervisor: Kubernetes Pod semantics on one machine, or as a container's PID 1."""

__version__ = "0.1.0"
