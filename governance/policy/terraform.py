"""What a Terraform plan would do, summarised for the policy: `summarise(raw) -> dict`.

The input is the JSON of `terraform show -json <planfile>` (HashiCorp's "JSON Output Format",
`format_version` 1.x). Only `resource_changes` is read: each entry names one resource instance
(`address`), its `type`, its `mode` ("managed" or "data") and `change.actions`, with the object
before and after the change. `resource_drift` (changes made outside Terraform, which the apply
does not make) and `deferred_changes` (left for a later plan) are not what this plan applies.

Counting, per resource instance:
  - ["create"] creates, ["update"] updates, ["delete"] deletes, ["no-op"] no_ops;
  - ["delete", "create"] and ["create", "delete"] (and Terraform 1.7's ["create", "forget"])
    replace: the object is destroyed or dropped and a new one made, whichever comes first;
  - ["forget"] (Terraform 1.7 `removed` blocks): the object stays but leaves Terraform's care;
  - data sources (`mode: data`) and ["read"] only read: never a change.
Anything else is refused: a summary that silently skips an action it does not know could hide
a deletion from the policy (fail closed).

`sensitive` lists the changed (not no-op, not read) resources whose type is in SENSITIVE_TYPES:
databases and data stores, identity and access (IAM), keys and secrets (KMS), and network
security rules (security groups, ACLs, firewalls), for AWS, Azure and Google Cloud.

`world_open` lists the resources this plan creates, updates or replaces whose planned state
(`change.after`) lets anyone on the internet in: ingress from a network of prefix length 0
(`0.0.0.0/0`, `::/0`, however written), in each shape the AWS provider has:
  - `ingress` blocks of `aws_security_group` / `aws_default_security_group`
    (`cidr_blocks`, `ipv6_cidr_blocks`);
  - `aws_security_group_rule` with `type = "ingress"` (`cidr_blocks`, `ipv6_cidr_blocks`);
  - `aws_vpc_security_group_ingress_rule` (`cidr_ipv4`, `cidr_ipv6`).
Egress never counts (`egress` blocks, rules of type "egress",
`aws_vpc_security_group_egress_rule`), and neither does a deleted resource (`after` is null)
nor a value Terraform only knows after apply (it is absent from `after`).

Pure Python on purpose: no Django, no database, so the policy engine's tests and a pipeline's
own tooling can run it on a plan file as it is.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import json
import re
from typing import Any

# The view refuses bigger bodies before reading them; checked here too so that no caller can
# hand the parser more (a 20 MiB plan already costs some 200 MB of Python objects).
MAX_PLAN_BYTES = 20 * 1024 * 1024

# Resource types whose change a person should look at twice, by what they hold or guard.
# Shell-style patterns over the resource `type` (`*` matches anything, the empty string too).
SENSITIVE_TYPES: dict[str, tuple[str, ...]] = {
    "database": (
        # AWS: RDS and Aurora, DynamoDB, DocumentDB, Neptune, Redshift, ElastiCache, MemoryDB.
        "aws_db_*",
        "aws_rds_*",
        "aws_dynamodb_table*",
        "aws_dynamodb_global_table",
        "aws_docdb_*",
        "aws_neptune_*",
        "aws_redshift_*",
        "aws_elasticache_*",
        "aws_memorydb_*",
        # Azure: SQL Database and Managed Instance, MySQL, PostgreSQL, Cosmos DB, Redis.
        "azurerm_*sql*",
        "azurerm_cosmosdb_*",
        "azurerm_redis_*",
        # Google: Cloud SQL, AlloyDB, Spanner, Bigtable, Firestore, Memorystore.
        "google_sql_*",
        "google_alloydb_*",
        "google_spanner_*",
        "google_bigtable_*",
        "google_firestore_*",
        "google_redis_*",
    ),
    "iam": (
        # AWS: IAM, IAM Identity Center (SSO), Organizations' service control policies.
        "aws_iam_*",
        "aws_ssoadmin_*",
        "aws_identitystore_*",
        "aws_organizations_policy*",
        # Azure: role assignments and definitions, PIM, and Entra ID (the azuread provider).
        "azurerm_role_*",
        "azurerm_pim_*",
        "azuread_*",
        # Google: every *_iam_member/_binding/_policy, custom roles, workload identity pools,
        # service accounts and their keys.
        "google_*_iam_*",
        "google_iam_*",
        "google_service_account*",
    ),
    "kms": (
        "aws_kms_*",
        "aws_secretsmanager_*",
        "azurerm_key_vault*",
        "azurerm_managed_hardware_security_module*",
        "google_kms_*",
        "google_secret_manager_*",
    ),
    "network_security": (
        "aws_security_group*",
        "aws_default_security_group",
        "aws_vpc_security_group_*",
        "aws_network_acl*",
        "aws_default_network_acl",
        "aws_networkfirewall_*",
        "azurerm_network_security_*",
        "azurerm_firewall*",
        "google_compute_firewall*",
        "google_compute_network_firewall_policy*",
        "google_compute_region_network_firewall_policy*",
        "google_compute_security_policy*",
    ),
}
_SENSITIVE = re.compile(
    "|".join(fnmatch.translate(pattern) for group in SENSITIVE_TYPES.values() for pattern in group)
)

# `change.actions` as Terraform writes them, and what each counts as.
ACTIONS: dict[tuple[str, ...], str] = {
    ("no-op",): "no_ops",
    ("create",): "creates",
    ("read",): "reads",
    ("update",): "updates",
    ("delete",): "deletes",
    ("delete", "create"): "replaces",
    ("create", "delete"): "replaces",
    ("create", "forget"): "replaces",
    ("forget",): "forgets",
}
COUNTS = ("creates", "updates", "deletes", "replaces", "forgets", "no_ops", "reads")
# What the plan applies to a resource; the others leave it as it is.
_CHANGES = {"creates", "updates", "deletes", "replaces", "forgets"}
_WRITES_AFTER = {"creates", "updates", "replaces"}

_FORMAT_VERSION = re.compile(r"1\.[0-9]+")
_SURROGATE = re.compile("[\ud800-\udfff]")
TERRAFORM_VERSION_MAX = 40


class PlanError(ValueError):
    """A document that is not a Terraform plan Signoff can read; `message` says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def summarise(raw: bytes) -> dict[str, Any]:
    """Counts of what the plan does, its sensitive and world-open resources, and its versions.

    Raises PlanError for anything that is not a readable 1.x plan (see the module docstring).
    """
    document = _load(raw)
    format_version = _format_version(document)
    terraform_version = _terraform_version(document)
    summary: dict[str, Any] = {name: 0 for name in COUNTS}
    summary.update(sensitive=[], world_open=[])
    for position, entry in enumerate(_resource_changes(document)):
        address, kind = _classify(entry, position)
        summary[kind] += 1
        resource_type, after = entry.get("type"), entry["change"].get("after")
        if kind in _CHANGES and is_sensitive(resource_type):
            summary["sensitive"].append(address)
        if kind in _WRITES_AFTER and opens_to_world(resource_type, after):
            summary["world_open"].append(address)
    return {"format_version": format_version, "terraform_version": terraform_version, **summary}


def _load(raw: bytes) -> Any:
    if len(raw) > MAX_PLAN_BYTES:
        raise PlanError(f"The plan is larger than {MAX_PLAN_BYTES // (1024 * 1024)} MiB.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PlanError(
            f"The plan is not UTF-8 text (byte {exc.start}); send the output of "
            "`terraform show -json` unchanged."
        ) from None
    try:
        return json.loads(text)
    except RecursionError:
        raise PlanError("The plan is not JSON: it nests too deeply.") from None
    except ValueError as exc:
        raise PlanError(f"The plan is not JSON: {exc}.") from None


def _format_version(document: Any) -> str:
    if not isinstance(document, dict):
        raise PlanError("The plan must be a JSON object (the output of `terraform show -json`).")
    version = document.get("format_version")
    if not isinstance(version, str) or not _FORMAT_VERSION.fullmatch(version):
        shown = json.dumps(version) if version is not None else "none given"
        raise PlanError(
            f"unsupported format_version ({shown}): Signoff reads Terraform's JSON plan format 1.x."
        )
    return version


def _terraform_version(document: dict) -> str:
    version = document.get("terraform_version", "")
    if not isinstance(version, str) or len(version) > TERRAFORM_VERSION_MAX:
        raise PlanError(
            f"terraform_version must be text of at most {TERRAFORM_VERSION_MAX} characters."
        )
    _check_text(version, "terraform_version")
    return version


def _resource_changes(document: dict) -> list:
    changes = document.get("resource_changes")
    # Terraform leaves the key out of a plan that changes nothing; `planned_values` is in
    # every plan it writes, so its presence tells such a plan from some other document.
    if changes is None and "resource_changes" not in document and "planned_values" in document:
        return []
    if not isinstance(changes, list):
        raise PlanError(
            "The plan has no resource_changes list; send the output of "
            "`terraform show -json <planfile>` (the plan, not the state)."
        )
    return changes


def _classify(entry: Any, position: int) -> tuple[str, str]:
    """(address, the count it goes to) of one resource change, or PlanError naming it."""
    if not isinstance(entry, dict):
        raise PlanError(f"resource_changes[{position}] is not an object.")
    address = entry.get("address")
    if not isinstance(address, str) or not address:
        raise PlanError(f"resource_changes[{position}] has no address.")
    _check_text(address, f"resource_changes[{position}].address")
    mode = entry.get("mode", "managed")
    if mode not in ("managed", "data"):
        raise PlanError(f"{address}: unknown mode {json.dumps(mode)}.")
    change = entry.get("change")
    actions = change.get("actions") if isinstance(change, dict) else None
    if not isinstance(actions, list) or not actions:
        raise PlanError(f"{address}: the change has no actions.")
    strings = all(isinstance(action, str) for action in actions)
    kind = ACTIONS.get(tuple(actions)) if strings else None
    if kind is None:
        raise PlanError(f"{address}: unsupported actions {json.dumps(actions)[:200]}.")
    # A data source is read, whatever its actions say: it changes nothing.
    return address, "reads" if mode == "data" else kind


def _check_text(value: str, where: str) -> None:
    # Summaries are stored as JSON in PostgreSQL, which refuses NUL and unpaired surrogates.
    if "\x00" in value or _SURROGATE.search(value):
        raise PlanError(f"{where} contains a character that cannot be stored (NUL or surrogate).")


def is_sensitive(resource_type: Any) -> bool:
    """Whether a change to a resource of this type is sensitive (see SENSITIVE_TYPES)."""
    return isinstance(resource_type, str) and bool(_SENSITIVE.match(resource_type))


def opens_to_world(resource_type: Any, after: Any) -> bool:
    """Whether a resource in planned state `after` opens ingress to the whole internet."""
    if not isinstance(after, dict):
        return False  # deleted, or not an object at all: opens nothing
    if resource_type in ("aws_security_group", "aws_default_security_group"):
        blocks = after.get("ingress")
        return isinstance(blocks, list) and any(_block_is_world(b) for b in blocks)
    if resource_type == "aws_security_group_rule":
        return after.get("type") == "ingress" and _block_is_world(after)
    if resource_type == "aws_vpc_security_group_ingress_rule":
        return any(_is_world(after.get(key)) for key in ("cidr_ipv4", "cidr_ipv6"))
    return False


def _block_is_world(block: Any) -> bool:
    if not isinstance(block, dict):
        return False
    for key in ("cidr_blocks", "ipv6_cidr_blocks"):
        cidrs = block.get(key)
        if isinstance(cidrs, list) and any(_is_world(cidr) for cidr in cidrs):
            return True
    return False


def _is_world(cidr: Any) -> bool:
    """A network of prefix length 0: every IPv4 or every IPv6 address (`0::/0` as `::/0`)."""
    if not isinstance(cidr, str):
        return False
    try:
        return ipaddress.ip_network(cidr.strip(), strict=False).prefixlen == 0
    except ValueError:
        return False
