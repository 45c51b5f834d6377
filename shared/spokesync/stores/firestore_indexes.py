"""Every index the Firestore hub store's queries need, as plain data.

`COMPOSITE_INDEXES` must be deployed (infra/terraform/firestore.tf mirrors it;
`collection` is a collection id and gets the deployment's collection prefix
when `prefixed` is true). `QUERIES` lists each query `stores/firestore.py`
makes and the index that serves it - a composite one from the list, or the
single-field index Firestore creates automatically. `FIELD_OVERRIDES` are
single-field index exemptions for large values no query filters on (cheaper,
faster writes); deploying them is optional.
"""

from __future__ import annotations

from typing import Any

COMPOSITE_INDEXES: list[dict[str, Any]] = [
    {
        "collection": "runs",
        "prefixed": True,
        "query_scope": "COLLECTION",
        "fields": [
            {"field_path": "spoke_id", "order": "ASCENDING"},
            {"field_path": "started_at", "order": "DESCENDING"},
        ],
    },
    {
        "collection": "runs",
        "prefixed": True,
        "query_scope": "COLLECTION",
        "fields": [
            {"field_path": "hub_id", "order": "ASCENDING"},
            {"field_path": "started_at", "order": "DESCENDING"},
        ],
    },
    # origin links in the hub item (`link_home` the spoke, `link` the link): by spoke item id ...
    {
        "collection": "items",
        "prefixed": False,
        "query_scope": "COLLECTION",
        "fields": [
            {"field_path": "link_home", "order": "ASCENDING"},
            {"field_path": "link.spoke_item_id", "order": "ASCENDING"},
        ],
    },
    # ... and counted without the detached ones
    {
        "collection": "items",
        "prefixed": False,
        "query_scope": "COLLECTION",
        "fields": [
            {"field_path": "link_home", "order": "ASCENDING"},
            {"field_path": "link.detached", "order": "ASCENDING"},
        ],
    },
]

# (collection id, filters/orders, index): "auto" = Firestore's automatic single-field index.
QUERIES: list[dict[str, Any]] = [
    {"method": "list_runs(spoke_id)", "collection": "runs", "where": ["spoke_id =="], "order": ["started_at desc"],
     "index": "composite:runs(spoke_id asc, started_at desc)"},
    {"method": "list_runs(hub_id)", "collection": "runs", "where": ["hub_id =="], "order": ["started_at desc"],
     "index": "composite:runs(hub_id asc, started_at desc)"},
    {"method": "list_runs()", "collection": "runs", "where": [], "order": ["started_at desc"], "index": "auto"},
    {"method": "delete_hub / delete_spoke (runs)", "collection": "runs", "where": ["hub_id ==", "spoke_id =="],
     "order": [], "index": "auto"},
    {"method": "list_spokes(hub_id)", "collection": "spokes", "where": ["hub_id =="], "order": [], "index": "auto"},
    {"method": "due_spokes", "collection": "spokes", "where": ["due_at <="], "order": [], "index": "auto"},
    {"method": "hub_items_since", "collection": "items", "where": ["seq >"], "order": ["seq asc"], "index": "auto"},
    {"method": "list_hub_items", "collection": "items", "where": ["deleted =="], "order": [], "index": "auto"},
    {"method": "links_by_spoke_items", "collection": "links", "where": ["spoke_item_id in"], "order": [],
     "index": "auto"},
    {"method": "count_links", "collection": "links", "where": ["detached =="], "order": [], "index": "auto"},
    {"method": "links_by_spoke_items (origin links)", "collection": "items",
     "where": ["link_home ==", "link.spoke_item_id in"], "order": [],
     "index": "composite:items(link_home asc, link.spoke_item_id asc)"},
    {"method": "count_links (origin links)", "collection": "items", "where": ["link_home ==", "link.detached =="],
     "order": [], "index": "composite:items(link_home asc, link.detached asc)"},
    # (the automatic index on link_home ends with the document name, which serves `__name__ in`)
    {"method": "links_by_hub_items (origin links)", "collection": "items", "where": ["link_home ==", "__name__ in"],
     "order": [], "index": "auto"},
    {"method": "list_links / delete_spoke (origin links)", "collection": "items", "where": ["link_home =="],
     "order": [], "index": "auto"},
    {"method": "list_channels(spoke_id)", "collection": "channels", "where": ["spoke_id =="], "order": [],
     "index": "auto"},
    {"method": "list_channels(expiring_before)", "collection": "channels", "where": ["expires_at <"],
     "order": ["expires_at asc"], "index": "auto"},
]

# Single-field index exemptions (terraform: google_firestore_field with an empty index_config).
FIELD_OVERRIDES: list[dict[str, Any]] = [
    {"collection": "items", "prefixed": False, "field": "event"},  # the event body: never filtered on
    {"collection": "cursor", "prefixed": False, "field": "data"},  # up to 900 KB of bytes
    {"collection": "spokes", "prefixed": True, "field": "cursor"},
    {"collection": "spokes", "prefixed": True, "field": "options"},
    {"collection": "spokes", "prefixed": True, "field": "address"},
    {"collection": "runs", "prefixed": True, "field": "plan"},
    {"collection": "runs", "prefixed": True, "field": "conflicts"},
]
