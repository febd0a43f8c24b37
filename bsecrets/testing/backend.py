"""The contract every SecretBackend keeps. Each adapter's tests inherit
``BackendContract`` and provide a ``backend`` fixture bound to an empty
environment; the tests below must pass unchanged for local, Vault and AWS."""

from __future__ import annotations

import pytest

from bsecrets.errors import SecretNotFound, VersionConflict, VersionNotFound
from bsecrets.models import VersionState
from bsecrets.ports import Capability, SecretBackend

ACTOR = "tester@host"


class BackendContract:
    @pytest.fixture
    def backend(self) -> SecretBackend:  # pragma: no cover - overridden
        raise NotImplementedError

    def test_round_trip_unicode(self, backend: SecretBackend) -> None:
        value = "pässwörd ✓ 秘密 🔑".encode()
        backend.put("app/unicode", value, actor=ACTOR)
        assert backend.get("app/unicode").value == value

    def test_empty_value(self, backend: SecretBackend) -> None:
        backend.put("empty", b"", actor=ACTOR)
        secret = backend.get("empty")
        assert secret.value == b""
        assert secret.version == 1

    def test_binary_value(self, backend: SecretBackend) -> None:
        if Capability.BINARY not in backend.capabilities:
            pytest.skip("backend stores text only")
        value = bytes(range(256)) * 4 + b"\xff\xfe\x00"
        backend.put("bin", value, actor=ACTOR)
        assert backend.get("bin").value == value

    def test_missing_is_not_found(self, backend: SecretBackend) -> None:
        with pytest.raises(SecretNotFound) as exc:
            backend.get("does-not-exist")
        assert exc.value.kind == "secret_not_found"
        with pytest.raises(SecretNotFound):
            backend.history("does-not-exist")
        with pytest.raises(SecretNotFound):
            backend.delete("does-not-exist")

    def test_versions(self, backend: SecretBackend) -> None:
        for i in range(1, 4):
            result = backend.put("versioned", f"value-{i}".encode(), actor=ACTOR)
            assert result.version == i
        assert backend.get("versioned").value == b"value-3"
        assert backend.get("versioned").version == 3
        assert backend.get("versioned", 1).value == b"value-1"
        assert backend.get("versioned", 2).value == b"value-2"
        with pytest.raises(VersionNotFound):
            backend.get("versioned", 4)

    def test_history(self, backend: SecretBackend) -> None:
        backend.put("hist", b"a", actor=ACTOR)
        backend.put("hist", b"b", actor=ACTOR)
        history = backend.history("hist")
        assert [v.version for v in history] == [1, 2]
        assert [v.state for v in history] == [VersionState.PREVIOUS, VersionState.CURRENT]
        assert all(v.created_by == ACTOR for v in history)
        assert history[0].created_at <= history[1].created_at

    def test_delete_and_restore(self, backend: SecretBackend) -> None:
        backend.put("gone", b"v1", actor=ACTOR)
        backend.delete("gone")
        with pytest.raises(SecretNotFound):
            backend.get("gone")
        assert "gone" not in [s.name for s in backend.list_secrets()]
        assert "gone" in [s.name for s in backend.list_secrets(include_deleted=True)]
        assert backend.history("gone")[-1].state == VersionState.DELETED
        backend.restore("gone")
        assert backend.get("gone").value == b"v1"

    def test_restore_needs_a_deleted_secret(self, backend: SecretBackend) -> None:
        backend.put("alive", b"x", actor=ACTOR)
        with pytest.raises(SecretNotFound):
            backend.restore("alive")

    def test_put_after_delete_revives(self, backend: SecretBackend) -> None:
        backend.put("phoenix", b"a", actor=ACTOR)
        backend.delete("phoenix")
        assert backend.put("phoenix", b"b", actor=ACTOR).version == 2
        assert backend.get("phoenix").value == b"b"

    def test_purge(self, backend: SecretBackend) -> None:
        backend.put("purged", b"a", actor=ACTOR)
        backend.put("purged", b"b", actor=ACTOR)
        backend.purge("purged")
        with pytest.raises(SecretNotFound):
            backend.get("purged")
        with pytest.raises(SecretNotFound):
            backend.history("purged")
        assert backend.put("purged", b"new", actor=ACTOR).version == 1

    def test_cas_conflict(self, backend: SecretBackend) -> None:
        backend.put("cas", b"a", actor=ACTOR, if_version=0)
        with pytest.raises(VersionConflict) as exc:
            backend.put("cas", b"b", actor=ACTOR, if_version=0)
        assert exc.value.kind == "version_conflict"
        with pytest.raises(VersionConflict):
            backend.put("cas", b"b", actor=ACTOR, if_version=2)
        assert backend.put("cas", b"b", actor=ACTOR, if_version=1).version == 2
        assert backend.get("cas").value == b"b"

    def test_list_prefix_and_tags(self, backend: SecretBackend) -> None:
        backend.put("app/db", b"1", actor=ACTOR, tags={"team": "core"})
        backend.put("app/api", b"2", actor=ACTOR)
        backend.put("other", b"3", actor=ACTOR)
        assert [s.name for s in backend.list_secrets("app/")] == ["app/api", "app/db"]
        summary = {s.name: s for s in backend.list_secrets()}
        assert summary["app/db"].tags == {"team": "core"}
        assert summary["app/db"].version == 1

    def test_tags_and_description_kept_unless_given(self, backend: SecretBackend) -> None:
        backend.put("meta", b"1", actor=ACTOR, tags={"a": "b"}, description="the db")
        backend.put("meta", b"2", actor=ACTOR)
        secret = backend.get("meta")
        assert secret.tags == {"a": "b"}
        assert secret.description == "the db"
        backend.put("meta", b"3", actor=ACTOR, tags={})
        assert backend.get("meta").tags == {}

    def test_health(self, backend: SecretBackend) -> None:
        assert backend.is_healthy()
        assert backend.get_module_status()["backend"] == backend.kind

    def test_pending_versions(self, backend: SecretBackend) -> None:
        """A rotation's create and finish steps (SecretBackend.stage, make_current)."""
        backend.put("rot", b"old", actor=ACTOR)
        staged = backend.stage("rot", b"new", actor=ACTOR)
        if Capability.PENDING not in backend.capabilities:
            assert staged is None  # the caller keeps the pending value
            assert backend.get("rot").value == b"old"
            return
        assert staged == 2 and backend.stage("rot", b"new", actor=ACTOR) == staged  # idempotent
        assert backend.get("rot").value == b"old" and backend.get("rot").version == 1
        assert backend.get("rot", staged).value == b"new"
        states = [v.state for v in backend.history("rot")]
        assert states == [VersionState.CURRENT, VersionState.PENDING]
        with pytest.raises(VersionConflict):
            backend.make_current("rot", staged, if_version=7)
        assert backend.get("rot").value == b"old"
        assert backend.make_current("rot", staged, if_version=1).version == staged
        assert backend.make_current("rot", staged, if_version=1).version == staged  # done is done
        assert backend.get("rot").value == b"new" and backend.get("rot").version == staged
        assert [v.state for v in backend.history("rot")] == [
            VersionState.PREVIOUS,
            VersionState.CURRENT,
        ]

    def test_unstaged_version_is_never_current(self, backend: SecretBackend) -> None:
        backend.put("cancel", b"old", actor=ACTOR)
        staged = backend.stage("cancel", b"new", actor=ACTOR)
        if Capability.PENDING not in backend.capabilities:
            assert staged is None
            backend.unstage("cancel", 2)  # nothing staged: nothing happens
            assert [v.version for v in backend.history("cancel")] == [1]
            return
        assert staged is not None
        backend.unstage("cancel", staged)
        backend.unstage("cancel", staged)  # twice is fine
        assert backend.history("cancel")[-1].state == VersionState.PREVIOUS
        assert backend.put("cancel", b"later", actor=ACTOR).version == staged + 1
        assert backend.get("cancel").value == b"later"

    def test_values_of_reads_the_current_values_of_the_names_given(
        self, backend: SecretBackend
    ) -> None:
        for i in range(23):  # more than one AWS batch
            backend.put(f"many/{i:02d}", f"v{i}".encode(), actor=ACTOR)
        backend.put("many/05", b"newer", actor=ACTOR)  # a later version is the current one
        names = [f"many/{i:02d}" for i in range(23)]
        found = backend.values_of([*names, "many/missing"])
        assert found == {n: b"newer" if n == "many/05" else f"v{int(n[5:])}".encode()
                         for n in names}  # fmt: skip

    def test_read_each_reads_as_get_does(self, backend: SecretBackend) -> None:
        for i in range(5):
            backend.put(f"each/{i}", f"v{i}".encode(), actor=ACTOR)
        backend.put("each/1", b"newer", actor=ACTOR)
        backend.delete("each/3")
        names = ["each/4", "each/1", "each/0"]
        with backend.snapshot():  # reads nest in it, as one state of the store
            assert backend.read_each(names) == {n: backend.get(n).value for n in names}
            assert list(backend.read_each(names)) == names
        assert backend.read_each([]) == {}
        for gone in ("each/3", "each/missing"):  # get's error, whatever comes after it
            with pytest.raises(SecretNotFound) as got:
                backend.get(gone)
            with pytest.raises(SecretNotFound) as each:
                backend.read_each(["each/0", gone, "each/missing"])
            assert each.value.message == got.value.message
        live = {f"each/{i}" for i in (0, 1, 2, 4)}
        every = backend.current_values()
        assert {n: v for n, v in every.items() if n.startswith("each/")} == {
            n: backend.get(n).value for n in sorted(live)
        }
