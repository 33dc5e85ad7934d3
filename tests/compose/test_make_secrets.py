"""db/make-secrets.sh, as compose's one-shot `secrets` service runs it, here
on directories standing in for the volumes: each service gets only its own
secrets, readable only by its user, and the values never change once made,
also across an upgrade from the single volume of earlier versions, which is
left empty."""

import os
import subprocess

import pytest

from tests.servers import ROOT

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the one-shot runs as root: it chowns the files")

EXPECTED = {
    "db": ({"db_password"}, 999),
    "migrate": ({"db_password", "worker_db_password", "web_db_password", "auditor_db_password"}, 10001),
    "worker": ({"worker_db_password"}, 10001),
    "web": ({"web_db_password", "secret_key"}, 10001),
}


def make_secrets(root):
    subprocess.run(["/bin/sh", str(ROOT / "db" / "make-secrets.sh"), str(root)], check=True, timeout=30)
    return {d: {f.name: f.read_text() for f in (root / d).iterdir()} for d in EXPECTED}


@pytest.fixture
def volumes(tmp_path):
    for d in (*EXPECTED, "earlier"):
        (tmp_path / d).mkdir()
    return tmp_path


def test_each_service_gets_only_its_own_secrets_readable_by_its_user_alone(volumes):
    made = make_secrets(volumes)
    for d, (names, uid) in EXPECTED.items():
        assert set(made[d]) == names, d
        for name in names:
            st = (volumes / d / name).stat()
            assert (st.st_mode & 0o777, st.st_uid, st.st_gid) == (0o400, uid, uid), f"{d}/{name}"
    # One value per secret, wherever it is copied, and each a different one.
    values = {}
    for files in made.values():
        for name, value in files.items():
            assert values.setdefault(name, value) == value, name
    assert len(set(values.values())) == 5 and all(len(v) == 64 for v in values.values())


def test_later_starts_keep_the_values(volumes):
    first = make_secrets(volumes)
    assert make_secrets(volumes) == first


def test_an_upgrade_from_the_single_volume_keeps_the_passwords_and_empties_it(volumes):
    # The single volume of earlier versions: every secret, world-readable (as
    # its one-shot left them); the database volume was made with its password.
    names = ("db_password", "worker_db_password", "web_db_password", "auditor_db_password", "secret_key")
    for name in names:
        (volumes / "earlier" / name).write_text(f"old-{name}")
        (volumes / "earlier" / name).chmod(0o444)
    made = make_secrets(volumes)
    assert made["migrate"] == {name: f"old-{name}" for name in names if name != "secret_key"}
    assert made["db"] == {"db_password": "old-db_password"}
    assert made["web"] == {"web_db_password": "old-web_db_password", "secret_key": "old-secret_key"}
    assert made["worker"] == {"worker_db_password": "old-worker_db_password"}
    # Carried over, the old copies are gone.
    assert list((volumes / "earlier").iterdir()) == []
    # And the next start keeps the values, from their new homes.
    assert make_secrets(volumes) == made
