"""人脸寻车: "find my car" on the member card asks the cloud, online, where the member's car is parked.

Why an online query and not a replicated field: a parking bay changes every time the car moves, and
only matters in the minute the member asks. Replicating plates and bays of every member to every
device would put licence plates (personal data) on devices that never need them and flood the
member stream with parking changes. So the mirror asks `Fusion/FindCar` over the device's own mTLS
channel, with a short deadline; the cloud answers only for a member of the calling device's site and
only with cars parked at that site. With the network down the card says so ("离线，暂时无法查询车位")
instead of waiting. Plates are shown masked (沪A·***45): enough for the member to recognise their car.

gRPC errors become `CarResult` statuses here and nowhere else. Built with `identity_dir`, the channel
follows the device's certificate (`sync.channel.DeviceChannel`): a rotation by the sync daemon or
admin-serve does not leave the mirror presenting a revoked certificate.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import grpc

from api.v1 import fusion_pb2, fusion_pb2_grpc
from sync.channel import DeviceChannel

_LOG = logging.getLogger(__name__)

DEADLINE_S = 3.0
_OFFLINE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
# The cloud no longer accepts this device's certificate (revoked, or replaced and retired): for the shopper
# the mirror is as cut off as without a network, so the card says offline; the log says why.
_REFUSED = {grpc.StatusCode.UNAUTHENTICATED}


def mask_plate(plate: str) -> str:
    """沪A12345 → 沪A·***45: the province and letter, and the last two characters."""
    p = plate.strip()
    if len(p) <= 4:
        return "*" * len(p)
    return f"{p[:2]}·***{p[-2:]}"


@dataclass(frozen=True)
class CarResult:
    """What the member card shows: status found | none | offline | error, and the cars."""

    status: str
    cars: list[dict[str, str]] = field(default_factory=list)

    def view(self) -> dict[str, Any]:
        """The "find_car" part of the member view model."""
        text = {
            "found": ("您的爱车停在", "Your car is parked at"),
            "none": ("暂未查到您在本场停放的车辆", "No car of yours is parked here right now"),
            "offline": ("离线，暂时无法查询车位，请稍后再试", "Offline: cannot look up your car now, try again later"),
            "error": ("车位查询暂不可用，请咨询服务台", "Car finder unavailable, please ask the service desk"),
        }[self.status]
        return {"status": self.status, "cars": list(self.cars), "message": text[0], "message_en": text[1]}


class CarFinder:
    """A Fusion client on the device's channel. ``find`` never raises for a cloud problem."""

    def __init__(self, target: str, *, insecure: bool = False,
                 credentials: grpc.ChannelCredentials | None = None, deadline_s: float = DEADLINE_S,
                 options: list[tuple[str, Any]] | None = None, identity_dir: Any = None) -> None:
        """Plain text on loopback (`insecure`), mTLS following the identity in `identity_dir` (what the
        mirror uses; IdentityError when not enrolled), or fixed `credentials`."""
        if insecure:
            host = target.rsplit(":", 1)[0].strip("[]")
            if not (host in ("localhost", "::1") or host.startswith("127.")):
                raise ValueError(f"refusing plain-text gRPC to {target}: allowed on loopback only")
            self._channel = DeviceChannel.fixed(grpc.insecure_channel(target))
        elif identity_dir is not None:
            self._channel = DeviceChannel.follow(identity_dir, target, options=options or [])
        elif credentials is None:
            raise ValueError(f"no mTLS credentials for {target}: enroll the device first (joyedge enroll)")
        else:
            self._channel = DeviceChannel.fixed(grpc.secure_channel(target, credentials, options=options or []))
        self.deadline_s = deadline_s

    def find(self, member_id: str) -> CarResult:
        """Where the member's cars are parked at this site."""
        request = fusion_pb2.FindCarRequest(
            who=fusion_pb2.IdentityRef(id_type=fusion_pb2.ID_TYPE_MEMBER_ID, id_value=member_id))
        try:
            answer = self._channel.call(fusion_pb2_grpc.FusionStub,
                                        lambda stub: stub.FindCar(request, timeout=self.deadline_s))
        except grpc.RpcError as err:
            code = err.code() if hasattr(err, "code") else None
            if code in _OFFLINE:
                return CarResult("offline")
            if code in _REFUSED:
                _LOG.error("find car: the cloud refused this device's certificate (%s); re-enroll or ask the "
                           "operator: %s", code, err.details() if hasattr(err, "details") else err)
                return CarResult("offline")
            if code == grpc.StatusCode.NOT_FOUND:
                return CarResult("none")
            _LOG.warning("find car: the cloud refused (%s): %s", code, err.details() if hasattr(err, "details") else err)
            return CarResult("error")
        cars = [{"plate": mask_plate(c.plate), "bay": c.bay} for c in answer.cars]
        return CarResult("found" if cars else "none", cars)

    def close(self) -> None:
        """Close the channel (and any a certificate change retired)."""
        self._channel.close()


class LookupWorker:
    """Runs car lookups off the app's loop thread (a lookup may wait DEADLINE_S for the cloud).

    ``submit(key, member_id)``; results come back through ``deliver(key, CarResult)`` on the worker
    thread (the app puts them on its own queue). One lookup at a time; `stop` joins the thread.
    """

    def __init__(self, finder: CarFinder | None, deliver: Any) -> None:
        import queue
        import threading

        self.finder, self.deliver = finder, deliver
        self._q: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="mirror-find-car", daemon=False)
        self._thread.start()

    def submit(self, key: str, member_id: str) -> None:
        """Look up ``member_id``'s car; the answer is delivered with ``key``."""
        self._q.put((key, member_id))

    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            key, member_id = item
            result = self.finder.find(member_id) if self.finder is not None else CarResult("error")
            self.deliver(key, result)

    def stop(self) -> None:
        """Finish the lookup in progress and end the thread."""
        self._q.put(None)
        self._thread.join(timeout=DEADLINE_S + 2)
