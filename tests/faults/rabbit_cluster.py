"""Three private RabbitMQ nodes clustered (TESTING.md, "A three-node RabbitMQ cluster"): each a
`RabbitNode` on its own ports and folder, nodes 2 and 3 joined to node 1."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass

from tests.faults.rabbit_node import RabbitNode, port_open


@dataclass
class RabbitCluster:
    nodes: list[RabbitNode]

    @classmethod
    def start(cls, size: int = 3) -> RabbitCluster:
        cluster = cls([])
        try:
            for _ in range(size):
                cluster.nodes.append(RabbitNode.start())
            first = cluster.nodes[0]
            for node in cluster.nodes[1:]:
                node.ctl("stop_app")
                node.ctl("join_cluster", first.name)
                node.ctl("start_app")
                node.wait_port()
        except BaseException:
            cluster.destroy()
            raise
        return cluster

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def running(self) -> RabbitNode:
        return next(node for node in self.nodes if port_open(node.port))

    def leader_of(self, queue: str) -> RabbitNode:
        """The node holding the quorum queue's leader, asked of any running node."""
        for line in self.running().ctl("list_queues", "name", "leader").splitlines():
            fields = line.split()
            if len(fields) == 2 and fields[0] == queue:
                return next(node for node in self.nodes if node.name == fields[1])
        raise LookupError(f"queue {queue} has no leader")

    def online_members(self, queue: str) -> int:
        for line in self.running().ctl("list_queues", "name", "online").splitlines():
            fields = line.split(None, 1)
            if len(fields) == 2 and fields[0] == queue:
                return fields[1].count("@")
        return 0

    @staticmethod
    def kill(node: RabbitNode) -> None:
        """SIGKILL the node's Erlang VM: no goodbye to the cluster or its clients."""
        os.kill(node.beam_pid(), signal.SIGKILL)
        end = time.monotonic() + 30
        while port_open(node.port):
            if time.monotonic() > end:
                raise RuntimeError(f"node {node.name} still listening after SIGKILL")
            time.sleep(0.1)

    @staticmethod
    def restart(node: RabbitNode) -> None:
        """Start a killed node again (it rejoins the cluster by itself)."""
        subprocess.run(["rabbitmq-server", "-detached"], env=node._env(), check=True,
                       timeout=60, capture_output=True)  # fmt: skip
        node.wait_port(deadline=120)

    def destroy(self) -> None:
        for node in reversed(self.nodes):
            with contextlib.suppress(Exception):
                node.destroy()
