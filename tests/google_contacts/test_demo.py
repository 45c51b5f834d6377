"""Demo mode serves Google Contacts too: one Google sign-in (the Calendar sandbox's) reaches the
local People API, where a "Company contacts" group waits."""

from __future__ import annotations

import json

from spokesync import demo
from spokesync.config import Config
from spokesync.connectors.google.auth import forget_cached_credentials
from spokesync.connectors.registry import connector_for
from spokesync.model.hub import CredentialRef, Spoke
from spokesync.ports import SystemClock
from spokesync.secrets.local import LocalSecretStore


def test_demo_mode_serves_google_contacts(tmp_path) -> None:
    running = demo.start_demo_servers(Config(data_dir=str(tmp_path)))
    try:
        assert running.people is not None and running.config.google_people_api_root == running.people.url
        forget_cached_credentials()
        token = running.google.sandbox.issue_refresh_token(demo.DEMO_GOOGLE_USER, demo.DEMO_CLIENT_ID)
        secrets = LocalSecretStore.open(str(tmp_path / "s.enc"), key_file=str(tmp_path / "s.key"))
        name = secrets.put("google-credential-d", json.dumps({"refresh_token": token}))
        credential = CredentialRef(id="d", kind="google_oauth", label="Demo", secret_name=name)
        spoke = Spoke(id="s", hub_id="h", name="Company", kind="google_contacts", credential_id="d",
                      address={"group": "Company contacts"})
        listing = connector_for(spoke, credential, secrets, running.config, SystemClock()).changes(None)
        assert sorted(i.event.name for i in listing.items) == ["Ada Lovelace", "Reception"]
        assert "google_people_api_root" in demo._SHARED
    finally:
        running.close()
        demo._RUNNING.remove(running)
