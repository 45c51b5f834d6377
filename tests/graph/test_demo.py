"""Demo mode serves a local Microsoft 365 too: the wizard's Microsoft 365 path works with no account."""

from __future__ import annotations

from spokesync import demo
from spokesync.config import Config
from spokesync.connectors.graph import GraphSettings, list_calendars


def test_demo_mode_serves_microsoft_365(tmp_path) -> None:
    running = demo.start_demo_servers(Config(data_dir=str(tmp_path)))
    try:
        assert running.graph is not None and running.config.graph_api_root == running.graph.graph_url
        calendars = list_calendars(GraphSettings(demo.DEMO_GRAPH_TENANT, demo.DEMO_GRAPH_CLIENT_ID),
                                   demo.DEMO_GRAPH_SECRET, running.config, demo.DEMO_GRAPH_MAILBOX)
        assert [c.name for c in calendars] == ["Calendar"]
        assert demo.DEMO_GRAPH_MAILBOX in running.banner()
    finally:
        running.close()
        demo._RUNNING.remove(running)


def test_a_configured_graph_root_is_left_alone(tmp_path) -> None:
    running = demo.start_demo_servers(Config(data_dir=str(tmp_path), graph_api_root="https://graph.example.test/v1.0"))
    try:
        assert running.graph is None and running.config.graph_api_root == "https://graph.example.test/v1.0"
    finally:
        running.close()
        demo._RUNNING.remove(running)
