"""The standard gRPC services beside ``goq.v1.QueueManager`` on the application port: health and reflection.

Why: ``grpcurl``, ``grpc_health_probe`` and Kubernetes' gRPC probes speak ``grpc.health.v1.Health`` and
server reflection, not GoQ's API. The health status follows the sidecar's readiness, as ``/readyz`` does:
NOT_SERVING until the sidecar is ready, SERVING while it is, NOT_SERVING again from the start of its
shutdown; ``Watch`` streams each change. The status is the same for the whole server (service ``""``)
and for ``goq.v1.QueueManager``.
"""

from typing import Final

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from goq.api.v1 import queue_manager_pb2 as pb

QUEUE_MANAGER: Final = pb.DESCRIPTOR.services_by_name["QueueManager"].full_name
HEALTH: Final = health.SERVICE_NAME
REFLECTION: Final = reflection.SERVICE_NAME
CHECKED: Final = ("", QUEUE_MANAGER)
"""The names ``Health.Check`` and ``Watch`` know: the whole server and GoQ's service."""


class ServingStatus:
    """The health service's answers, kept equal to the sidecar's readiness."""

    def __init__(self) -> None:
        self.servicer = health.aio.HealthServicer()

    async def follow(self, ready: bool) -> None:
        """Say SERVING (``ready``) or NOT_SERVING for every checked name; watchers hear of a change."""
        status = health_pb2.HealthCheckResponse.SERVING if ready else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in CHECKED:
            await self.servicer.set(name, status)

    async def shutting_down(self) -> None:
        """NOT_SERVING for good: the process is stopping."""
        await self.servicer.enter_graceful_shutdown()


async def add_standard_services(server: grpc.aio.Server) -> ServingStatus:
    """Add health (NOT_SERVING until ``follow(True)``) and reflection over the services above to ``server``."""
    status = ServingStatus()
    await status.follow(False)  # grpcio's servicer starts with the server SERVING
    health_pb2_grpc.add_HealthServicer_to_server(status.servicer, server)
    reflection.enable_server_reflection((QUEUE_MANAGER, HEALTH, REFLECTION), server)
    return status
