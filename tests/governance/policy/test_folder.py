"""A policy kept in git as a folder of YAML files: combined, checked like a compiler would,
imported through the four-eyes services and exported back to the same files."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from governance.models import LedgerEntry, Policy, PolicyProposal, PolicyVersion, Role
from governance.policy import engine
from governance.policy import folder as policy_folder
from governance.policy.folder import FolderError, PolicyFile
from governance.policy.services import publish_policy
from tests import factories

BASE = """\
# Base rules for every environment.
rules:
  - id: dev-self-service
    when: environment.risk == "low"
    require:
      stages: []
  - id: staging-one-approver
    when: environment.risk == "medium"
    require:
      stages:
        - key: service
          approvers: service_approvers
          count: 1
"""
# Rule items at the margin, a folded condition: the combined document indents them by two.
PRODUCTION = """\
rules:
- id: production-two
  description: Production needs two.
  when: >
    environment.risk == "high"
    && change.type != "emergency"
  require:
    stages:
      - key: service
        approvers: service_approvers
        count: 2
"""
EMERGENCY = """\
# How long emergency exceptions last.
emergency:
  exception_hours: 4
"""
FILES = {"10-base.yaml": BASE, "20-production.yaml": PRODUCTION, "90-emergency.yaml": EMERGENCY}


def write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


@pytest.fixture
def policy_dir(tmp_path) -> Path:
    return write(tmp_path / "policy", FILES)


def check(folder: Path) -> tuple[int, str, str]:
    """policy_check's exit status, standard output and standard error."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("policy_check", str(folder), stdout=out, stderr=err)
    except SystemExit as exc:
        return int(exc.code), out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


# --- combining ------------------------------------------------------------------------------


def test_rules_of_all_files_concatenate_in_file_order_under_markers(policy_dir):
    combined = policy_folder.combine(policy_folder.read_folder(policy_dir))

    rules = engine.parse(combined.source)
    assert [r.id for r in rules] == ["dev-self-service", "staging-one-approver", "production-two"]
    assert engine.emergency_settings(combined.source).exception_hours == 4
    lines = combined.source.splitlines()
    assert lines[:4] == [
        "# One policy from 3 files; `manage.py policy_export` writes them back.",
        "rules:",
        "# --- file: 10-base.yaml ---",
        "# Base rules for every environment.",
    ]
    assert "# --- file: 20-production.yaml ---" in lines
    assert "  - id: production-two" in lines  # moved to the combined document's indent
    assert lines[-4:] == [
        "# --- file: 90-emergency.yaml ---",
        "# How long emergency exceptions last.",
        "emergency:",
        "  exception_hours: 4",
    ]


def test_files_are_read_sorted_by_name_and_not_from_subfolders(policy_dir):
    write(policy_dir / "nested", {"00-ignored.yaml": "rules: [{id: x}]\n"})
    (policy_dir / "notes.txt").write_text("not a policy")

    names = [f.name for f in policy_folder.read_folder(policy_dir)]

    assert names == ["10-base.yaml", "20-production.yaml", "90-emergency.yaml"]


def test_a_section_defined_in_two_files_is_an_error_naming_both(policy_dir):
    write(policy_dir, {"50-more.yaml": "# again\nemergency:\n  exception_hours: 8\n"})

    with pytest.raises(FolderError) as error:
        policy_folder.combine(policy_folder.read_folder(policy_dir))

    assert [str(p) for p in error.value.problems] == [
        "90-emergency.yaml:2:1: 'emergency' is defined in 50-more.yaml and again in "
        "90-emergency.yaml; it may appear in one file only"
    ]


def test_one_file_is_used_exactly_as_written():
    combined = policy_folder.combine([PolicyFile("main.yaml", BASE)])
    assert combined.source == BASE


def test_an_empty_folder_is_refused(tmp_path):
    with pytest.raises(FolderError, match=r"holds no \*\.yaml file"):
        policy_folder.read_folder(tmp_path)


# --- errors at file:line:column -------------------------------------------------------------


def test_a_syntax_error_inside_a_folded_condition_points_at_the_files_own_column(policy_dir):
    # Line 6 of the file is `    && change.type #= "emergency"`: the `#` is column 20 there,
    # column 22 in the combined document, where the items moved two to the right.
    broken = PRODUCTION.replace('!= "emergency"', '#= "emergency"')
    write(policy_dir, {"20-production.yaml": broken})

    status, out, err = check(policy_dir)

    assert status == 1 and out == ""
    assert err.splitlines() == [
        f"{policy_dir}/20-production.yaml:6:20: Rule 'production-two' (20-production.yaml "
        "line 2): CEL syntax error in 'when' at 20-production.yaml line 6, column 20: "
        "Syntax error: token recognition error at: '#'"
    ]


def test_an_unknown_key_in_the_first_file_points_at_its_line(policy_dir):
    write(
        policy_dir,
        {
            "10-base.yaml": BASE.replace(
                '    when: environment.risk == "medium"',
                '    when: environment.risk == "medium"\n    approvers: everyone',
            )
        },
    )

    status, _, err = check(policy_dir)

    assert status == 1
    assert err.startswith(f"{policy_dir}/10-base.yaml:7:")
    assert "unknown key(s) approvers" in err


def test_invalid_yaml_is_reported_against_its_file(policy_dir):
    write(policy_dir, {"90-emergency.yaml": "emergency:\n  exception_hours: [4\n"})

    status, _, err = check(policy_dir)

    assert status == 1
    assert err.startswith(f"{policy_dir}/90-emergency.yaml:3:1: not valid YAML")


def test_a_key_given_twice_is_reported_against_its_file_and_lines(policy_dir):
    write(
        policy_dir,
        {"20-production.yaml": PRODUCTION.replace("count: 2\n", "count: 2\n        count: 1\n")},
    )

    status, _, err = check(policy_dir)

    assert status == 1
    assert err == (
        f"{policy_dir}/20-production.yaml:12:9: 'count' is given twice in one mapping "
        "(20-production.yaml line 11, then 20-production.yaml line 12): YAML would keep only the "
        "second and silently drop the first. Give it once.\n"
    )


def test_a_valid_folder_checks_ok_without_a_database(policy_dir):
    # No django_db mark: pytest-django fails any query, so this proves CI needs no database.
    assert check(policy_dir) == (0, "OK: 3 rules in 3 files\n", "")


# --- export, and the round trip -----------------------------------------------------------


def test_split_gives_back_the_files_with_rule_items_at_one_indent(policy_dir):
    combined = policy_folder.combine(policy_folder.read_folder(policy_dir))

    files = policy_folder.split(combined.source)

    assert [f.name for f in files] == list(FILES)
    assert files[0].text == BASE
    assert files[2].text == EMERGENCY
    assert files[1].text.splitlines()[:2] == ["rules:", "  - id: production-two"]
    assert policy_folder.combine(files).source == combined.source


def test_files_with_rules_and_sections_or_only_comments_split_back_in_name_order():
    files = [
        PolicyFile("a.yaml", "---\n# base\nrules:\n    - id: a\n      when: 'true'\n"),
        PolicyFile("b.yaml", "# notes only\n"),
        PolicyFile(
            "c.yaml", "rules:\n  - id: b\n    when: 'true'\nemergency:\n  exception_hours: 2\n"
        ),
    ]
    combined = policy_folder.combine(files)

    back = policy_folder.split(combined.source)

    assert [r.id for r in engine.parse(combined.source)] == ["a", "b"]
    assert back == [
        PolicyFile("a.yaml", "# base\nrules:\n  - id: a\n    when: 'true'\n"),  # no `---`
        files[1],
        files[2],
    ]
    assert policy_folder.combine(back).source == combined.source


def test_a_document_without_markers_exports_as_one_policy_yaml():
    assert policy_folder.split(BASE) == [PolicyFile("policy.yaml", BASE)]


@pytest.fixture
def platform_admin(policy):
    """Administers Signoff and approves nothing: publishes directly."""
    user = factories.UserFactory(username="grace")
    factories.grant(user, Role.ADMINISTRATOR)
    return user


def import_folder(folder: Path, username: str, *extra: str) -> str:
    out = io.StringIO()
    call_command("policy_import", str(folder), "--as", username, *extra, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_import_then_export_then_import_keeps_the_checksum(policy_dir, platform_admin, tmp_path):
    assert import_folder(policy_dir, "grace", "--comment", "from git").startswith(
        "published v2 (checksum "
    )
    first = PolicyVersion.objects.get(number=2)
    assert first.comment == "from git"

    out = io.StringIO()
    call_command("policy_export", str(tmp_path / "out"), stdout=out)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(FILES)
    assert (tmp_path / "out" / "10-base.yaml").read_text() == BASE
    assert out.getvalue().startswith(f"Wrote default v2 to {tmp_path / 'out'}: 10-base.yaml")

    combined = policy_folder.combine(policy_folder.read_folder(tmp_path / "out"))
    assert engine.checksum(combined.source) == first.checksum


@pytest.mark.django_db
def test_an_unchanged_folder_is_not_published_again(policy_dir, platform_admin):
    import_folder(policy_dir, "grace")
    versions, entries = PolicyVersion.objects.count(), LedgerEntry.objects.count()

    with pytest.raises(CommandError, match="nothing to propose"):
        import_folder(policy_dir, "grace")

    assert (PolicyVersion.objects.count(), LedgerEntry.objects.count()) == (versions, entries)


@pytest.mark.django_db
def test_export_of_a_policy_typed_as_one_document_round_trips(platform_admin, tmp_path):
    published = Policy.objects.get(slug="default")

    call_command("policy_export", str(tmp_path), "--version", "1", stdout=io.StringIO())

    assert (tmp_path / "policy.yaml").read_text() == published.source
    assert policy_folder.combine(policy_folder.read_folder(tmp_path)).source == published.source


@pytest.mark.django_db
def test_export_refuses_a_folder_holding_other_policy_files(platform_admin, tmp_path):
    (tmp_path / "stray.yaml").write_text("rules: []\n")

    with pytest.raises(CommandError, match=r"also holds stray\.yaml"):
        call_command("policy_export", str(tmp_path), stdout=io.StringIO())
    assert not (tmp_path / "policy.yaml").exists()

    call_command("policy_export", str(tmp_path), "--clean", stdout=io.StringIO())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["policy.yaml"]


@pytest.mark.django_db
def test_an_invalid_folder_is_refused_and_nothing_is_written(policy_dir, platform_admin):
    write(policy_dir, {"20-production.yaml": PRODUCTION.replace("count: 2", "count: 0")})
    counts = (PolicyVersion.objects.count(), PolicyProposal.objects.count())

    with pytest.raises(CommandError, match=r"20-production\.yaml:2:3: .* count must be a positive"):
        import_folder(policy_dir, "grace")

    assert (PolicyVersion.objects.count(), PolicyProposal.objects.count()) == counts


@pytest.mark.django_db
def test_a_governed_administrator_only_proposes(policy_dir, policy, service):
    ada = factories.UserFactory(username="ada")
    factories.grant(ada, Role.ADMINISTRATOR)
    factories.grant(ada, Role.APPROVER, service)

    out = import_folder(policy_dir, "ada")

    proposal = PolicyProposal.objects.get()
    assert out == f"proposal #{proposal.pk}: waits for a second administrator\n"
    assert Policy.objects.get(slug="default").version == 1


@pytest.mark.django_db
def test_a_loosening_import_goes_to_a_second_administrator_with_the_loosening(
    policy_dir, org, production_release, platform_admin
):
    # Published: this folder with three approvers for production; the folder asks for two.
    stricter = {**FILES, "20-production.yaml": PRODUCTION.replace("count: 2", "count: 3")}
    source = policy_folder.combine([PolicyFile(n, t) for n, t in stricter.items()]).source
    publish_policy(policy_obj=Policy.objects.get(slug="default"), source=source, actor=None)

    out = import_folder(policy_dir, "grace")

    proposal = PolicyProposal.objects.get()
    assert Policy.objects.get(slug="default").version == 2  # nothing published
    assert proposal.proposed_by == platform_admin
    # The release of the window, then the catalogue's other service there (no release lately).
    loosened = [
        "Production: stage 'Service': 3 → 2 approvals (1 release)",
        "Production, web-frontend (normal, standard changes): stage 'Service': 3 → 2 approvals",
    ]
    assert proposal.loosening == loosened
    assert out.splitlines() == [
        f"proposal #{proposal.pk}: waits for a second administrator",
        *(f"  loosens {line}" for line in loosened),
    ]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("username", "message"), [("alice", "Only administrators"), ("nobody", "No user 'nobody'")]
)
def test_only_an_administrator_imports(policy_dir, org, approver, username, message):
    counts = (PolicyVersion.objects.count(), PolicyProposal.objects.count())
    entries = LedgerEntry.objects.count()

    with pytest.raises(CommandError, match=message):
        import_folder(policy_dir, username)

    assert (PolicyVersion.objects.count(), PolicyProposal.objects.count()) == counts
    assert LedgerEntry.objects.count() == entries
