"""The deployment files as the tools read them: compose.yaml, the Dockerfile's instructions, the
Kubernetes manifests, and the documented commands that make compose's secrets."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import yaml

from tests.ops.conftest import ROOT

COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
DEPLOYMENT_DOC = ROOT / "docs" / "deployment.md"
KUBERNETES = ROOT / "deploy" / "kubernetes" / "signoff"


def compose() -> dict:
    """compose.yaml, anchors and merge keys resolved as Compose resolves them."""
    return yaml.safe_load(COMPOSE.read_text())


def make_compose_secrets(folder: Path) -> None:
    """Run the commands docs/deployment.md gives for compose's secret files, in `folder`."""
    text = DEPLOYMENT_DOC.read_text()
    section = text[text.index("## Secrets for compose") :]
    script = re.search(r"```sh\n(.*?)```", section, flags=re.DOTALL)[1]
    subprocess.run(["bash", "-euc", script], cwd=folder, check=True, timeout=60)


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments left out."""
    lines = [
        line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")
    ]
    joined = "\n".join(lines).replace("\\\n", " ")
    return [
        (line.split(maxsplit=1)[0].upper(), line.split(maxsplit=1)[1])
        for line in joined.splitlines()
        if line.strip()
    ]


def image_environment() -> dict[str, str]:
    """What the image's ENV instructions set, in order."""
    pairs = [
        pair.split("=", 1)
        for instruction, arguments in dockerfile_instructions()
        if instruction == "ENV"
        for pair in shlex.split(arguments)
    ]
    return dict(pairs)


def kubernetes_manifests() -> dict[str, dict]:
    """Every manifest of the Kubernetes folder by file name (the kustomization included)."""
    return {path.name: yaml.safe_load(path.read_text()) for path in KUBERNETES.glob("*.yaml")}
