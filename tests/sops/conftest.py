"""The session's SOPS lab (`tests.sops.lab`): real sops, fresh identities, made once."""

from __future__ import annotations

import pytest

from tests.sops.lab import SopsLab, make_lab


@pytest.fixture(scope="session")
def sops_lab(tmp_path_factory: pytest.TempPathFactory) -> SopsLab:
    return make_lab(tmp_path_factory.mktemp("sops-lab"))
