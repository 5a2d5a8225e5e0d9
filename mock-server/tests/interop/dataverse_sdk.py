"""Microsoft's Dataverse SDK (PowerPlatform-Dataverse-Client) with an azure-identity
credential, against the mock, as a user would point them there: a base URL, the mock's
authority, instance discovery off, and REQUESTS_CA_BUNDLE (set by the caller).

Finds "the group id of the machine" the way the seed page describes, then creates, renames
and deletes a machine group. Prints one JSON object; the Rust test asserts on it.
"""
import json
import os

from azure.identity import ClientSecretCredential
from PowerPlatform.Dataverse import DataverseClient

credential = ClientSecretCredential(
    os.environ["MOCK_TENANT"],
    os.environ["MOCK_CLIENT_ID"],
    os.environ["MOCK_CLIENT_SECRET"],
    authority=os.environ["MOCK_AUTHORITY_HOST"],
    disable_instance_discovery=True,
)

out = {}
with DataverseClient(os.environ["DV_URL"], credential) as client:
    machines = client.records.list(
        "flowmachine", filter="name eq 'BUILD-01'", select=["name", "_flowmachinegroupid_value"]
    )
    out["build01"] = [{"name": r["name"], "group": r["_flowmachinegroupid_value"]} for r in machines]
    out["machines_visible"] = sorted(r["name"] for r in client.records.list("flowmachine", select=["name"]))
    out["groups_visible"] = sorted(r["name"] for r in client.records.list("flowmachinegroup", page_size=1))
    new_id = client.records.create("flowmachinegroup", {"name": "Created by the SDK"})
    client.records.update("flowmachinegroup", new_id, {"name": "Renamed by the SDK"})
    out["renamed"] = client.records.retrieve("flowmachinegroup", new_id, select=["name"])["name"]
    client.records.delete("flowmachinegroup", new_id)
    out["after_delete"] = client.records.retrieve("flowmachinegroup", new_id)
print(json.dumps(out))
