"""The sidecar's Kubernetes side (``goq.sidecar.adapters.kube``): its GoQueue and RetryPolicy in, heartbeats out.

The engine calls two small interfaces: ``QueueSettingsWatcher`` (the settings at start, then every
change, without a restart) and ``StatusReporter.report(pod, figures)`` (a heartbeat into the pod's own
Lease ``goq-<id>-<pod>``, which the operator sums into the GoQueue's status). Kubernetes API errors
become GoQ errors here.
"""

from goq.queue_status import PodFigures
from goq.sidecar.adapters.kube.connecting import connect
from goq.sidecar.adapters.kube.reporting import StatusReporter, heartbeat
from goq.sidecar.adapters.kube.watching import QueueSettings, QueueSettingsWatcher

__all__ = ["PodFigures", "QueueSettings", "QueueSettingsWatcher", "StatusReporter", "connect", "heartbeat"]
