"""Summarising `terraform show -json` plans for the policy (governance.policy.terraform).

The fixtures in tests/fixtures/terraform/ follow HashiCorp's JSON output format documentation
(format_version 1.2, as Terraform 1.6 writes it).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from governance.policy.terraform import MAX_PLAN_BYTES, PlanError, is_sensitive, summarise

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "terraform"


def plan(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def counts(summary: dict) -> dict:
    keys = ("creates", "updates", "deletes", "replaces", "forgets", "no_ops", "reads")
    return {key: summary[key] for key in keys}


def nothing(**overrides) -> dict:
    return {
        "creates": 0,
        "updates": 0,
        "deletes": 0,
        "replaces": 0,
        "forgets": 0,
        "no_ops": 0,
        "reads": 0,
        **overrides,
    }


def one_change(actions: list, *, type_: str = "aws_instance", mode: str = "managed") -> bytes:
    change = {"actions": actions, "before": None, "after": {}}
    entry = {"address": f"{type_}.x", "mode": mode, "type": type_, "name": "x", "change": change}
    return json.dumps({"format_version": "1.2", "resource_changes": [entry]}).encode()


def test_a_harmless_plan_creates_and_updates_only():
    summary = summarise(plan("harmless.json"))

    assert summary == {
        "format_version": "1.2",
        "terraform_version": "1.6.6",
        **nothing(creates=2, updates=1, no_ops=1),
        "sensitive": [],
        "world_open": [],
    }


def test_a_pure_delete_counts_as_a_delete():
    summary = summarise(plan("pure_delete.json"))

    assert counts(summary) == nothing(deletes=1, updates=1)


@pytest.mark.parametrize(
    "fixture", ["replace_delete_then_create.json", "replace_create_then_delete.json"]
)
def test_both_replace_orders_count_as_replaces_not_deletes(fixture):
    summary = summarise(plan(fixture))

    assert counts(summary) == nothing(replaces=1)


def test_data_source_reads_are_not_changes():
    summary = summarise(plan("data_read.json"))

    assert counts(summary) == nothing(reads=2, creates=1)
    # An IAM policy document read by a data source changes no permission.
    assert summary["sensitive"] == []


def test_a_data_source_is_a_read_whatever_its_actions_say():
    summary = summarise(one_change(["create"], type_="aws_iam_role", mode="data"))

    assert counts(summary) == nothing(reads=1)
    assert summary["sensitive"] == []


@pytest.mark.parametrize(
    ("actions", "kind"),
    [(["forget"], "forgets"), (["create", "forget"], "replaces"), (["read"], "reads")],
)
def test_newer_actions_are_counted(actions, kind):
    assert counts(summarise(one_change(actions))) == nothing(**{kind: 1})


def test_drift_is_not_what_the_plan_applies():
    summary = summarise(plan("drift_only.json"))

    assert counts(summary) == nothing(no_ops=1)


def test_a_plan_that_changes_nothing_has_no_resource_changes_and_is_accepted():
    summary = summarise(plan("no_changes.json"))

    assert counts(summary) == nothing()
    assert (summary["sensitive"], summary["world_open"]) == ([], [])


@pytest.mark.parametrize(
    ("fixture", "addresses"),
    [
        ("world_open_security_group_ipv4.json", ["aws_security_group.web"]),
        ("world_open_security_group_ipv6.json", ["aws_security_group.web"]),
        ("world_open_security_group_rule.json", ["aws_security_group_rule.ssh"]),
        (
            "world_open_vpc_ingress_rule.json",
            [
                "aws_vpc_security_group_ingress_rule.https_ipv4",
                "aws_vpc_security_group_ingress_rule.https_ipv6",
            ],
        ),
    ],
)
def test_every_shape_of_ingress_from_the_world_is_found(fixture, addresses):
    summary = summarise(plan(fixture))

    assert summary["world_open"] == addresses
    # Security groups and their rules are network security: always sensitive.
    assert summary["sensitive"] == addresses


def test_egress_to_the_world_opens_nothing():
    summary = summarise(plan("egress_only.json"))

    assert summary["world_open"] == []
    assert counts(summary) == nothing(creates=5)
    assert len(summary["sensitive"]) == 5


def test_deleted_and_untouched_open_groups_open_nothing():
    summary = summarise(plan("world_open_deleted.json"))

    assert summary["world_open"] == []
    assert counts(summary) == nothing(deletes=2, no_ops=1)
    # Deleting a security group changes network security; the untouched one is not listed.
    assert summary["sensitive"] == [
        "aws_security_group.old",
        "aws_vpc_security_group_ingress_rule.old_https",
    ]


@pytest.mark.parametrize("cidr", ["0.0.0.0/0", "::/0", "0::/0", " 0.0.0.0/0 ", "10.1.2.3/0"])
def test_any_network_of_prefix_length_zero_is_the_world(cidr):
    rule = {"cidr_ipv4": cidr, "cidr_ipv6": None}
    entry = {
        "address": "aws_vpc_security_group_ingress_rule.r",
        "mode": "managed",
        "type": "aws_vpc_security_group_ingress_rule",
        "change": {"actions": ["create"], "before": None, "after": rule},
    }
    raw = json.dumps({"format_version": "1.1", "resource_changes": [entry]}).encode()

    assert summarise(raw)["world_open"] == ["aws_vpc_security_group_ingress_rule.r"]


@pytest.mark.parametrize("cidr", ["0.0.0.0/1", "10.0.0.0/8", "::/1", "not-a-cidr", None, 0])
def test_narrower_or_unreadable_networks_are_not_the_world(cidr):
    rule = {"type": "ingress", "cidr_blocks": [cidr], "ipv6_cidr_blocks": None}
    entry = {
        "address": "aws_security_group_rule.r",
        "type": "aws_security_group_rule",
        "change": {"actions": ["update"], "before": rule, "after": rule},
    }
    raw = json.dumps({"format_version": "1.2", "resource_changes": [entry]}).encode()

    assert summarise(raw)["world_open"] == []


def test_iam_kms_and_database_changes_are_sensitive():
    summary = summarise(plan("sensitive.json"))

    assert summary["sensitive"] == [
        "aws_iam_role.deployer",
        "aws_kms_key.payments",
        "aws_db_instance.payments",
    ]
    assert counts(summary) == nothing(creates=2, updates=1, replaces=1, no_ops=1, reads=1)


def test_azure_and_google_sensitive_types_are_recognised():
    summary = summarise(plan("sensitive_azure_google.json"))

    assert summary["sensitive"] == [
        "azurerm_mssql_database.orders",
        "azurerm_role_assignment.ci",
        "azurerm_key_vault_secret.db_password",
        "azurerm_network_security_rule.https",
        "google_sql_database_instance.main",
        "google_project_iam_member.ci",
        "google_kms_crypto_key.data",
        "google_compute_firewall.allow_https",
    ]
    # Only the AWS provider's shapes are read for world-open ingress.
    assert summary["world_open"] == []


@pytest.mark.parametrize(
    ("resource_type", "sensitive"),
    [
        ("aws_rds_cluster", True),
        ("aws_dynamodb_table", True),
        ("aws_iam_policy_attachment", True),
        ("aws_network_acl_rule", True),
        ("azurerm_postgresql_flexible_server", True),
        ("google_storage_bucket_iam_binding", True),
        ("google_service_account_key", True),
        ("aws_instance", False),
        ("aws_s3_bucket", False),
        ("aws_dbx_thing", False),
        ("google_compute_instance", False),
        (None, False),
    ],
)
def test_sensitive_types(resource_type, sensitive):
    assert is_sensitive(resource_type) is sensitive


# --- refused documents -----------------------------------------------------------------------


def refused(raw: bytes) -> str:
    with pytest.raises(PlanError) as caught:
        summarise(raw)
    return caught.value.message


def test_text_that_is_not_json_is_refused():
    assert refused(plan("malformed_truncated.json")).startswith("The plan is not JSON:")


def test_bytes_that_are_not_utf8_are_refused():
    assert "not UTF-8" in refused(b'{"format_version": "1.2", "x": "\xff"}')


def test_utf16_from_a_shell_redirect_is_refused():
    assert "not UTF-8" in refused(plan("harmless.json").decode().encode("utf-16"))


def test_a_json_array_is_refused():
    assert refused(plan("malformed_array.json")) == (
        "The plan must be a JSON object (the output of `terraform show -json`)."
    )


def test_the_state_instead_of_a_plan_is_refused():
    message = refused(plan("malformed_state_not_plan.json"))

    assert message.startswith("The plan has no resource_changes list")


@pytest.mark.parametrize("value", [None, {}, "aws_instance.web", 3])
def test_resource_changes_must_be_a_list(value):
    raw = json.dumps({"format_version": "1.2", "planned_values": {}, "resource_changes": value})

    assert refused(raw.encode()).startswith("The plan has no resource_changes list")


def test_a_change_without_actions_is_refused_naming_its_address():
    assert refused(plan("malformed_missing_actions.json")) == (
        "aws_iam_role.deployer: the change has no actions."
    )


def test_an_unknown_combination_of_actions_is_refused():
    assert refused(plan("malformed_unknown_action.json")) == (
        'aws_instance.web: unsupported actions ["delete", "update"].'
    )


@pytest.mark.parametrize(
    ("fixture", "shown"),
    [("malformed_format_version_2.json", '"2.0"'), ("malformed_format_version_0.json", '"0.2"')],
)
def test_other_format_versions_are_unsupported(fixture, shown):
    message = refused(plan(fixture))

    assert message.startswith(f"unsupported format_version ({shown})")


@pytest.mark.parametrize("version", [None, 1.2, "1", "1.x", "1.2.0", " 1.2", "1.2\n"])
def test_format_version_must_be_1_dot_a_number(version):
    document = {"resource_changes": []}
    if version is not None:
        document["format_version"] = version

    assert "unsupported format_version" in refused(json.dumps(document).encode())


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("not an object", "resource_changes[0] is not an object."),
        ({"change": {"actions": ["create"]}}, "resource_changes[0] has no address."),
        ({"address": "", "change": {"actions": ["create"]}}, "resource_changes[0] has no address."),
        ({"address": "a.b"}, "a.b: the change has no actions."),
        ({"address": "a.b", "change": {"actions": []}}, "a.b: the change has no actions."),
        ({"address": "a.b", "change": {"actions": "create"}}, "a.b: the change has no actions."),
        (
            {"address": "a.b", "change": {"actions": [{"create": 1}]}},
            'a.b: unsupported actions [{"create": 1}].',
        ),
        (
            {"address": "a.b", "mode": "list", "change": {"actions": ["create"]}},
            'a.b: unknown mode "list".',
        ),
    ],
)
def test_malformed_resource_changes_are_refused(entry, message):
    raw = json.dumps({"format_version": "1.2", "resource_changes": [entry]}).encode()

    assert refused(raw) == message


@pytest.mark.parametrize("address", ["aws_instance.a\u0000b", "aws_instance.\ud800"])
def test_addresses_that_cannot_be_stored_are_refused(address):
    entry = {"address": address, "change": {"actions": ["create"]}}
    raw = json.dumps({"format_version": "1.2", "resource_changes": [entry]}).encode()

    assert "cannot be stored" in refused(raw)


def test_a_terraform_version_that_is_not_short_text_is_refused():
    raw = json.dumps({"format_version": "1.2", "terraform_version": 1, "resource_changes": []})

    assert refused(raw.encode()).startswith("terraform_version must be text")


def test_deep_nesting_is_refused_not_crashed():
    raw = (
        b'{"format_version": "1.2", "resource_changes": [], "x": '
        + b"[" * 100_000
        + b"]" * 100_000
        + b"}"
    )

    assert refused(raw).startswith("The plan is not JSON")


def test_plans_over_20_mib_are_refused():
    raw = b" " * (MAX_PLAN_BYTES + 1)

    assert refused(raw) == "The plan is larger than 20 MiB."
