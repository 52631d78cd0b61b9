"""Connection slots under pressure: at --max-connections, the connections idle longest make room for new clients.

An attacker holds every slot with idle connections; good clients connecting afterwards are served, and the
attacker's connections are closed oldest first.  Connections with a call arriving (a partial frame) are never
closed to make room: with every slot busy the new client gets the clear refusal instead.
"""

from __future__ import annotations

import socket
import time

from _reliability import AioaccessProcess, add_figure, set_figure
from concrete.access.ttypes import FetchRequest
from concrete.util.access_wrapper import FetchCommunicationClientWrapper

CAP = 50


def _closed_by_server(s: socket.socket) -> bool:
    s.setblocking(False)
    try:
        return s.recv(1) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


def test_idle_attackers_at_the_cap_make_room_oldest_first(comm_dir: str) -> None:
    with AioaccessProcess("fetch-server", comm_dir, "--max-connections", str(CAP), "--idle-timeout", "300") as server:
        time.sleep(0.2)  # wait_port's probe connection has gone
        held = []
        for _ in range(CAP):
            held.append(socket.create_connection(("127.0.0.1", server.port)))
            time.sleep(0.02)  # distinct opening times, as far as the server's loop clock can tell
        time.sleep(1.2)  # idle longer than server.slots.MIN_IDLE
        good = [FetchCommunicationClientWrapper("127.0.0.1", server.port) for _ in range(5)]
        try:
            clients = [g.__enter__() for g in good]
            for k, client in enumerate(clients):
                comms = client.fetch(FetchRequest(communicationIds=[f"comm-{k}"])).communications
                assert [c.id for c in comms] == [f"comm-{k}"]
            time.sleep(0.3)
            closed = [i for i, s in enumerate(held) if _closed_by_server(s)]
        finally:
            for g in good:
                g.__exit__(None, None, None)
            for s in held:
                s.close()
    # The five idle longest, and only those (connections the server accepted in one loop iteration look
    # equally old to it, hence the slack).
    assert len(closed) == 5 and max(closed) < 8, closed
    add_figure("idle_connections_closed_at_the_cap", len(closed))
    set_figure("cap_with_idle_attackers", {"max_connections": CAP, "attackers": CAP, "good_clients_served": 5,
                                           "attacker_connections_closed": len(closed)})
