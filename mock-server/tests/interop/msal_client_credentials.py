"""MSAL for Python against the mock, exactly as a user would point it there.

Nothing mock-specific but the authority URL, `instance_discovery=False`, and
REQUESTS_CA_BUNDLE (set by the caller) so requests trusts the mock's CA.
Prints one JSON object describing what MSAL returned; the Rust test asserts on it.
"""
import json
import os

import msal

authority = os.environ["MOCK_AUTHORITY"]
client_id = os.environ["MOCK_CLIENT_ID"]
secret = os.environ["MOCK_CLIENT_SECRET"]
scopes = [os.environ["MOCK_SCOPE"]]


def summary(result):
    keep = ("token_type", "expires_in", "token_source", "error", "error_codes")
    out = {k: result.get(k) for k in keep if k in result}
    out["has_access_token"] = "access_token" in result
    return out


app = msal.ConfidentialClientApplication(
    client_id, authority=authority, client_credential=secret, instance_discovery=False
)
first = app.acquire_token_for_client(scopes=scopes)
second = app.acquire_token_for_client(scopes=scopes)
same_token = first.get("access_token") is not None and first.get("access_token") == second.get("access_token")

wrong = msal.ConfidentialClientApplication(
    client_id, authority=authority, client_credential="not-the-secret", instance_discovery=False
).acquire_token_for_client(scopes=scopes)

print(json.dumps({
    "msal_version": msal.__version__,
    "first": summary(first),
    "second": summary(second),
    "same_token": same_token,
    "wrong_secret": summary(wrong),
}))
