#!/usr/bin/env python3
"""The conformance suite's Python reference adapter: a small, correct desktop-flow client.

Run from the repository root as ``python3 conformance/adapters/python/adapter.py``; the
runner (docs/conformance.md) starts it once per case with the mock's URLs and one identity in
the environment, writes one JSON line per step on stdin, and reads one outcome line per step
on stdout. Standard library only, so it runs wherever Python 3 does.

What makes it a *correct* client, each rule in one place:

* tokens are cached per resource while valid, and fetched again once (not retried blindly)
  when an API says the token it got is no longer good (``Client.token``, ``Client.call``);
* 429 and 503 are retried after their ``Retry-After``, at most 5 attempts in all; no other
  4xx is ever retried (``Client.call``);
* secrets travel in form bodies and JSON bodies only, never in a URL;
* an update PUTs to the connection it updates, never to a new id;
* a run is polled through the door it was started through, waiting each answer's
  ``Retry-After`` before the next poll (``Client.wait_for_run``).

Everything it logs goes to stderr, without tokens or secrets.
"""

import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

CAPABILITIES = ["token", "connections", "dataverse", "sharing", "runs", "retry"]
MAX_ATTEMPTS = 5  # the first try and four retries
DEFAULT_WAIT_SECS = 1.0  # when a 429/503/202 names no Retry-After
MAX_POLLS = 30
CONNECTOR = "shared_uiflow"
POWER_PLATFORM_SCOPE = "https://api.powerplatform.com/.default"
# Dataverse flowsession statuscode -> name; codes absent here (Waiting 3, Running 2, Paused 1,
# Suspended 6, NotSpecified 0) mean the run is not over yet.
TERMINAL_STATUSES = {
    4: "Succeeded",
    5: "Skipped",
    7: "Cancelled",
    8: "Failed",
    9: "Faulted",
    10: "TimedOut",
    11: "Aborted",
    12: "Ignored",
    13: "Deleted",
    14: "Terminated",
}
GROUP_TYPES = {545940001: "Standard", 545940002: "Default"}
ACCESS_MASKS = {
    "User": "ReadAccess",
    "Co-owner": "ReadAccess,WriteAccess,DeleteAccess,ShareAccess,AssignAccess",
}


def log(message):
    print(f"[python-adapter] {message}", file=sys.stderr, flush=True)


class Failure(Exception):
    """An outcome with ok: false: the HTTP status the client got and the envelope's code."""

    def __init__(self, status, code, message=None):
        super().__init__(message or code)
        self.status = status
        self.code = code
        self.message = message

    def outcome(self):
        out = {"ok": False, "status": self.status, "code": self.code}
        if self.message:
            out["message"] = self.message
        return out


class Answer:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body) if self.body.strip() else {}

    def retry_after(self):
        """The answer's Retry-After in seconds (the delta-seconds form the services send)."""
        value = self.headers.get("Retry-After")
        try:
            return max(0.0, float(value))
        except (TypeError, ValueError):
            return DEFAULT_WAIT_SECS

    def failure(self):
        """The error envelope as a Failure: Power Platform and Dataverse nest it under
        error.code, the identity platform puts the code in error and the text beside it."""
        try:
            body = self.json()
        except ValueError:
            body = {}
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            return Failure(self.status, error.get("code", ""), error.get("message"))
        if isinstance(error, str):
            return Failure(self.status, error, body.get("error_description"))
        return Failure(self.status, "", None)


class Surfaces:
    """The base URLs, in the path form (docs/conformance.md)."""

    def __init__(self, env):
        self.environment = env["MOCK_ENVIRONMENT_ID"]
        tenant = env["MOCK_TENANT_ID"]
        self.token_url = f"{env['MOCK_LOGIN_URL'].rstrip('/')}/{tenant}/oauth2/v2.0/token"
        # …/connectivity/environments/{environmentId}: connections live under it.
        self.power_platform = env["MOCK_PPAPI_PATH_URL"].rstrip("/")
        # …/dataverse/{org}: the Dataverse scope root; the Web API is under /api/data/v9.2.
        self.dataverse_root = env["MOCK_DATAVERSE_PATH_URL"].rstrip("/")
        self.dataverse = f"{self.dataverse_root}/api/data/v9.2"
        # …/apim/uiflow/{environmentId}: the connector runtime, then /{connectionId}/….
        self.runtime = env["MOCK_RUNTIME_URL"].rstrip("/")

    def scope(self, resource):
        if resource == "powerplatform":
            return POWER_PLATFORM_SCOPE
        if resource == "dataverse":
            return f"{self.dataverse_root}/.default"
        raise Failure(0, "AdapterError", f"unknown resource {resource!r}")

    def connection(self, connection_id, tail=""):
        return f"{self.power_platform}/connectors/{CONNECTOR}/connections/{quote(connection_id)}{tail}?api-version=1"


def quote(segment):
    return urllib.parse.quote(str(segment), safe="")


class Client:
    def __init__(self, env):
        self.env = env
        self.surfaces = Surfaces(env)
        ca = env.get("MOCK_CA")
        self.tls = ssl.create_default_context(cafile=ca) if ca else None
        self.tokens = {}  # resource -> (access token, renew at, expires at), monotonic seconds
        self.runs = {}  # runId -> how to poll it (the door it was started through)

    # --- HTTP ------------------------------------------------------------------------

    def send(self, method, url, headers, data):
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, context=self.tls, timeout=30) as r:
                answer = Answer(r.status, r.headers, r.read().decode("utf-8", "replace"))
        except urllib.error.HTTPError as e:
            answer = Answer(e.code, e.headers, e.read().decode("utf-8", "replace"))
        except (urllib.error.URLError, OSError) as e:
            raise Failure(0, "NetworkError", str(e)) from None
        # The path only, never the query or a header: a log line must not carry a secret.
        log(f"{method} {urllib.parse.urlsplit(url).path} -> {answer.status}")
        return answer

    def call(self, method, url, resource=None, body=None, form=None, expect_error=False):
        """One logical request: retried on 429/503 after Retry-After (at most MAX_ATTEMPTS
        sends), re-authenticated once on an expired token. Raises Failure on any other
        error answer unless ``expect_error`` (then the caller reads the answer itself)."""
        fresh_token_tried = False
        attempt = 0
        while True:
            attempt += 1
            headers = {"Accept": "application/json"}
            data = None
            if resource:
                headers["Authorization"] = f"Bearer {self.token(resource)}"
            if body is not None:
                headers["Content-Type"] = "application/json"
                data = json.dumps(body).encode()
            elif form is not None:
                headers["Content-Type"] = "application/x-www-form-urlencoded"
                data = urllib.parse.urlencode(form).encode()
            answer = self.send(method, url, headers, data)
            if answer.status in (429, 503) and attempt < MAX_ATTEMPTS:
                time.sleep(answer.retry_after())
                continue
            if answer.status == 401 and resource and not fresh_token_tried and token_rejected(answer):
                # The cached token died early (revoked, shortened lifetime): one new token,
                # one more try. Not a retry of the same request, so it does not count.
                fresh_token_tried = True
                attempt -= 1
                self.tokens.pop(resource, None)
                continue
            if answer.status >= 400 and not expect_error:
                raise answer.failure()
            return answer

    # --- identity --------------------------------------------------------------------

    def token(self, resource):
        cached = self.tokens.get(resource)
        if cached and time.monotonic() < cached[1]:
            return cached[0]
        env = self.env
        form = {"scope": self.surfaces.scope(resource)}
        if env.get("MOCK_CLIENT_ID") and env.get("MOCK_CLIENT_SECRET"):
            form.update(grant_type="client_credentials", client_id=env["MOCK_CLIENT_ID"],
                        client_secret=env["MOCK_CLIENT_SECRET"])
        elif env.get("MOCK_USERNAME"):
            form.update(grant_type="password", client_id=env.get("MOCK_PUBLIC_CLIENT_ID", ""),
                        username=env["MOCK_USERNAME"], password=env.get("MOCK_PASSWORD", ""))
        else:
            raise Failure(0, "AdapterError", "neither MOCK_CLIENT_ID/SECRET nor MOCK_USERNAME is set")
        granted = self.call("POST", self.surfaces.token_url, form=form).json()
        lifetime = float(granted.get("expires_in", 0))
        # Renew a little early so a token does not expire in flight: a tenth of its
        # lifetime, at most a minute (short-lived test tokens stay usable).
        now = time.monotonic()
        self.tokens[resource] = (granted["access_token"], now + lifetime - min(60.0, lifetime / 10), now + lifetime)
        return granted["access_token"]

    def acquire_token(self, args):
        resource = args.get("resource", "powerplatform")
        self.token(resource)
        expires_at = self.tokens[resource][2]
        return {"tokenType": "Bearer", "expiresIn": max(0, round(expires_at - time.monotonic()))}

    # --- connections (Power Platform API) ----------------------------------------------

    def connection_body(self, args):
        """The seed's body (connection-with-service-principal.md); the parameter set follows
        from what the caller gives (docs/rules.md, section 1)."""
        target = {"targetId": {"value": args["machineGroupId"]}}
        if args.get("signIn"):
            name, values = "passwordlessAttended", target
        else:
            values = {"username": {"value": args["username"]}, "password": {"value": args["password"]}, **target}
            name = "azureRelay"
            if args.get("runOwner"):
                owner = args["runOwner"]
                name = "azureRelayRunOwner"
                values["tokenRunOwnerCert:clientId"] = {"value": owner["clientId"]}
                values["tokenRunOwnerCert:clientCertificateSecret"] = {
                    "value": {"pfx": owner["pfx"], "password": owner.get("password", "")}
                }
        environment = self.surfaces.environment
        properties = {
            "environment": {"id": f"/providers/Microsoft.PowerApps/environments/{environment}", "name": environment},
            "connectionParametersSet": {"name": name, "values": values},
        }
        if args.get("displayName") is not None:
            properties["displayName"] = args["displayName"]
        if args.get("credentialId"):
            properties["credentialId"] = args["credentialId"]
        return {"properties": properties}

    def put_connection(self, args):
        # Create and update are the same PUT on the caller's id: the id is the client's to
        # choose, and re-using it is what makes an update an update.
        url = self.surfaces.connection(args["connectionId"])
        return connection_result(self.call("PUT", url, "powerplatform", body=self.connection_body(args)).json())

    def get_connection(self, args):
        answer = self.call("GET", self.surfaces.connection(args["connectionId"]), "powerplatform").json()
        result = connection_result(answer)
        result["displayName"] = answer.get("properties", {}).get("displayName")
        return result

    def list_connections(self, _args):
        url = f"{self.surfaces.power_platform}/connectors/{CONNECTOR}/connections?api-version=1"
        connections = []
        for item in self.pages(url, "powerplatform", "nextLink"):
            properties = item.get("properties", {})
            connections.append(
                {"id": item.get("name"), "displayName": properties.get("displayName"),
                 "status": first_status(properties).get("status")}
            )
        return {"connections": connections}

    def delete_connection(self, args):
        self.call("DELETE", self.surfaces.connection(args["connectionId"]), "powerplatform")
        return {}

    def share_connection(self, args):
        # Desktop-flow connections are shared with service principals only (docs/rules.md §6).
        body = {
            "put": [{"properties": {
                "roleName": args["role"], "capabilities": [], "NotifyShareTargetOption": "Notify",
                "principal": {"id": args["principalObjectId"], "type": "ServicePrincipal", "tenantId": None},
            }}],
            "delete": [],
        }
        url = self.surfaces.connection(args["connectionId"], "/modifyPermissions")
        self.call("POST", url, "powerplatform", body=body)
        return {}

    # --- machines (Dataverse) ---------------------------------------------------------

    def pages(self, url, resource, next_key):
        """Every item of a listing, following its next-page links."""
        while url:
            page = self.call("GET", url, resource).json()
            yield from page.get("value", [])
            url = page.get(next_key)

    def find_machine_group(self, args):
        name = args["machineName"].replace("'", "''")  # OData string literal escaping
        query = urllib.parse.urlencode(
            {"$filter": f"name eq '{name}'", "$select": "name,_flowmachinegroupid_value"}, quote_via=urllib.parse.quote
        )
        rows = list(self.pages(f"{self.surfaces.dataverse}/flowmachines?{query}", "dataverse", "@odata.nextLink"))
        if not rows:
            # Not an HTTP error: the query answered, with nothing in it.
            raise Failure(404, "MachineNotFound", f"no machine named {args['machineName']!r}")
        return {"machineGroupId": rows[0]["_flowmachinegroupid_value"]}

    def list_machine_groups(self, _args):
        url = f"{self.surfaces.dataverse}/flowmachinegroups?$select=name,flowgrouptype"
        groups = [
            {"id": g["flowmachinegroupid"], "name": g.get("name"),
             "type": GROUP_TYPES.get(g.get("flowgrouptype"), str(g.get("flowgrouptype")))}
            for g in self.pages(url, "dataverse", "@odata.nextLink")
        ]
        return {"groups": groups}

    def share_machine_group(self, args):
        body = {
            "Target": {"@odata.type": "Microsoft.Dynamics.CRM.flowmachinegroup",
                       "flowmachinegroupid": args["machineGroupId"]},
            "PrincipalAccess": {
                "Principal": {"@odata.type": "Microsoft.Dynamics.CRM.systemuser", "systemuserid": args["systemUserId"]},
                "AccessMask": ACCESS_MASKS[args["access"]],
            },
        }
        self.call("POST", f"{self.surfaces.dataverse}/GrantAccess", "dataverse", body=body)
        return {}

    # --- runs (both doors) -----------------------------------------------------------

    def start_run(self, args):
        if args["door"] == "connector":
            return self.start_run_on_connector(args)
        if args["door"] == "dataverse":
            return self.start_run_on_dataverse(args)
        raise Failure(0, "AdapterError", f"unknown door {args['door']!r}")

    def start_run_on_dataverse(self, args):
        body = {"runMode": args["runMode"]}
        if args.get("connectionReferenceName"):
            body.update(connectionName=args["connectionReferenceName"], connectionType=2)
        else:
            body["connectionName"] = args["connectionId"]
        if args.get("priority"):
            body["runPriority"] = args["priority"]
        if args.get("inputs") is not None:
            body["inputs"] = json.dumps(args["inputs"], separators=(",", ":"))  # a JSON string, compact
        url = f"{self.surfaces.dataverse}/workflows({args['flowId']})/Microsoft.Dynamics.CRM.RunDesktopFlow"
        run_id = self.call("POST", url, "dataverse", body=body).json()["flowsessionId"]
        self.runs[run_id] = {"door": "dataverse", "not_before": 0.0}
        return {"runId": run_id}

    def start_run_on_connector(self, args):
        query = {"runMode": args["runMode"]}
        if args.get("priority"):
            query["runPriority"] = args["priority"]
        url = (
            f"{self.surfaces.runtime}/{quote(args['connectionId'])}/uiFlowTypes/desktopV2/uiflows/"
            f"{quote(args['flowId'])}/runs?{urllib.parse.urlencode(query)}"
        )
        answer = self.call("POST", url, "powerplatform", body={"item": args.get("inputs") or {}})
        started = answer.json()
        location = answer.headers.get("Location")
        run_id = started.get("flowsessionId") or (location or "").rstrip("/").rsplit("/", 1)[-1]
        # The asynchronous pattern: poll the Location, not before its Retry-After.
        self.runs[run_id] = {
            "door": "connector",
            "location": location,
            "not_before": time.monotonic() + answer.retry_after(),
        }
        return {"runId": run_id}

    def wait_for_run(self, args):
        run_id = args["runId"]
        run = self.runs.setdefault(run_id, {"door": "dataverse", "not_before": 0.0})
        for _ in range(MAX_POLLS):
            time.sleep(max(0.0, run["not_before"] - time.monotonic()))
            if run["door"] == "connector" and run.get("location"):
                outcome, wait = self.poll_connector(run)
            else:
                outcome, wait = self.poll_dataverse(run_id)
            if outcome is not None:
                return outcome
            run["not_before"] = time.monotonic() + wait
        raise Failure(0, "RunNotFinished", f"run {run_id} still not finished after {MAX_POLLS} polls")

    def poll_dataverse(self, run_id):
        url = f"{self.surfaces.dataverse}/flowsessions({run_id})?$select=statuscode,errorcode,errormessage"
        answer = self.call("GET", url, "dataverse")
        session = answer.json()
        status = TERMINAL_STATUSES.get(session.get("statuscode"))
        if status is None:
            return None, answer.retry_after()
        outcome = {"status": status}
        if session.get("errorcode"):
            outcome["code"] = session["errorcode"]
        if session.get("errormessage"):
            outcome["message"] = session["errormessage"]
        return outcome, 0

    def poll_connector(self, run):
        answer = self.call("GET", run["location"], "powerplatform", expect_error=True)
        if answer.status == 202:
            return None, answer.retry_after()
        if answer.status < 300:
            body = answer.json()
            run["outputs"] = body.get("outputs", {})
            return {"status": body.get("status", "Succeeded")}, 0
        failure = answer.failure()
        if not is_run_outcome(answer, failure):
            raise failure
        # GetRunStatus reports a finished, unsuccessful run as an error answer whose code is
        # the run's (runs.md, The connector door).
        status = {"Cancelled": "Cancelled", "DesktopFlowsActionTimeout": "TimedOut"}.get(failure.code, "Failed")
        outcome = {"status": status, "code": failure.code}
        if failure.message:
            outcome["message"] = failure.message
        return outcome, 0

    def get_run_outputs(self, args):
        run_id = args["runId"]
        run = self.runs.get(run_id, {"door": "dataverse"})
        if run["door"] == "connector" and run.get("location"):
            if "outputs" not in run:
                answer = self.call("GET", run["location"], "powerplatform")
                if answer.status == 202:
                    raise Failure(202, "RunNotFinished", f"run {run_id} has not finished")
                run["outputs"] = answer.json().get("outputs", {})
            return {"outputs": run["outputs"]}
        url = f"{self.surfaces.dataverse}/flowsessions({run_id})/outputs/$value"
        return {"outputs": self.call("GET", url, "dataverse").json()}

    def cancel_run(self, args):
        # The connector has no cancel operation: both doors' runs are flow sessions, which
        # Dataverse cancels.
        url = f"{self.surfaces.dataverse}/flowsessions({args['runId']})/Microsoft.Dynamics.CRM.CancelDesktopFlowRun"
        self.call("POST", url, "dataverse", body={})
        return {}


def token_rejected(answer):
    """A 401 that blames the token (it says so in WWW-Authenticate), not one that reports a
    run's Windows sign-in failure (GetRunStatus answers 401 WindowsIdentityIncorrect)."""
    return "invalid_token" in answer.headers.get("WWW-Authenticate", "")


def is_run_outcome(answer, failure):
    """Whether an error answer of GetRunStatus is the run's end rather than a refusal to
    show it: refusals are 403, a rejected token, or a Dataverse-style code (no such run)."""
    return answer.status != 403 and not token_rejected(answer) and not failure.code.startswith("0x")


def first_status(properties):
    statuses = properties.get("statuses") or [{}]
    return statuses[0]


def connection_result(connection):
    properties = connection.get("properties", {})
    status = first_status(properties)
    result = {"id": connection.get("name"), "status": status.get("status")}
    code = (status.get("error") or {}).get("code")
    if code:
        result["statusCode"] = code
    return result


ACTIONS = {
    "acquireToken": Client.acquire_token,
    "createConnection": Client.put_connection,
    "getConnection": Client.get_connection,
    "listConnections": Client.list_connections,
    "updateConnection": Client.put_connection,
    "deleteConnection": Client.delete_connection,
    "shareConnection": Client.share_connection,
    "findMachineGroup": Client.find_machine_group,
    "listMachineGroups": Client.list_machine_groups,
    "shareMachineGroup": Client.share_machine_group,
    "startRun": Client.start_run,
    "waitForRun": Client.wait_for_run,
    "getRunOutputs": Client.get_run_outputs,
    "cancelRun": Client.cancel_run,
}


def perform(client, step):
    action = ACTIONS.get(step.get("action"))
    if action is None:
        return {"ok": False, "unsupported": True}
    try:
        return {"ok": True, "result": action(client, step.get("args") or {})}
    except Failure as failure:
        return failure.outcome()
    except (KeyError, TypeError, ValueError) as e:
        # Arguments the action needs were missing or of the wrong type, or an answer was
        # not the JSON it should be.
        return {"ok": False, "status": 0, "code": "AdapterError", "message": f"{type(e).__name__}: {e}"}


def write(line):
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()  # the runner waits for each line


def main():
    client = None
    for raw in sys.stdin:
        if not raw.strip():
            continue
        try:
            message = json.loads(raw)
        except ValueError:
            log("ignored a line that is not JSON")
            continue
        if message.get("type") == "hello":
            if message.get("protocol") != 1:
                log(f"protocol {message.get('protocol')!r} asked; this adapter speaks 1")
            write({"capabilities": CAPABILITIES})
            continue
        if message.get("type") != "step":
            continue
        if client is None:
            try:
                client = Client(os.environ)
            except KeyError as e:
                write({"id": message.get("id"), "ok": False, "status": 0, "code": "AdapterError",
                       "message": f"environment variable {e} is not set"})
                continue
        write({"id": message.get("id"), **perform(client, message)})


if __name__ == "__main__":
    main()
