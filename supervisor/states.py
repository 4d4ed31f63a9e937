"""Names of states and reasons, as Kubernetes spells them. A leaf: imports nothing."""

from __future__ import annotations

from enum import StrEnum


class Phase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_PHASES


TERMINAL_PHASES = frozenset({Phase.SUCCEEDED, Phase.FAILED})


class ContainerState(StrEnum):
    WAITING = "waiting"
    RUNNING = "running"
    TERMINATED = "terminated"


class RestartPolicy(StrEnum):
    ALWAYS = "Always"
    ON_FAILURE = "OnFailure"
    NEVER = "Never"


class Reason:
    """Waiting and terminated reasons kubelet reports."""

    CONTAINER_CREATING = "ContainerCreating"
    POD_INITIALIZING = "PodInitializing"
    CRASH_LOOP_BACK_OFF = "CrashLoopBackOff"
    RUN_CONTAINER_ERROR = "RunContainerError"
    ERR_IMAGE_NEVER_PULL = "ErrImageNeverPull"
    CREATE_CONTAINER_CONFIG_ERROR = "CreateContainerConfigError"
    OOM_KILLED = "OOMKilled"
    CONTAINER_STATUS_UNKNOWN = "ContainerStatusUnknown"  # lost while supd was away
    CREATE_CONTAINER_ERROR = "CreateContainerError"
    COMPLETED = "Completed"
    ERROR = "Error"
    START_ERROR = "StartError"


class ConditionType:
    POD_SCHEDULED = "PodScheduled"
    READY_TO_START = "PodReadyToStartContainers"
    INITIALIZED = "Initialized"
    CONTAINERS_READY = "ContainersReady"
    READY = "Ready"

    # The order kubelet lists them in a Pod's status.
    ORDER = (READY_TO_START, INITIALIZED, READY, CONTAINERS_READY, POD_SCHEDULED)


class EventType:
    NORMAL = "Normal"
    WARNING = "Warning"
