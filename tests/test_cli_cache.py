"""The CLI's persistent compilation cache: folder choice, disabling, and that compiled code lands there."""

import os
import subprocess
import sys
import textwrap

import jax
import pytest

from jaxotdm.cli import _common as C

KEYS = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs")


@pytest.fixture
def restore_config():
    saved = {k: getattr(jax.config, k) for k in KEYS}
    yield
    for k, v in saved.items():
        jax.config.update(k, v)


def test_explicit_folder_sets_config(tmp_path, restore_config):
    folder = C.configure_compilation_cache(tmp_path / "xla", min_compile_time_secs=0.25)
    assert folder == tmp_path / "xla" and folder.is_dir()
    assert jax.config.jax_compilation_cache_dir == str(tmp_path / "xla")
    assert jax.config.jax_persistent_cache_min_compile_time_secs == 0.25


def test_env_override_default_and_disable(tmp_path, monkeypatch, restore_config):
    monkeypatch.setenv(C.CACHE_ENV, str(tmp_path / "env"))
    assert C.configure_compilation_cache() == tmp_path / "env"
    assert jax.config.jax_compilation_cache_dir == str(tmp_path / "env")
    assert jax.config.jax_persistent_cache_min_compile_time_secs == C.DEFAULT_MIN_COMPILE_SECS

    monkeypatch.delenv(C.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert C.default_cache_dir() == tmp_path / "xdg" / "jaxotdm" / "xla"
    assert C.configure_compilation_cache() == tmp_path / "xdg" / "jaxotdm" / "xla"

    jax.config.update("jax_compilation_cache_dir", None)
    monkeypatch.setenv(C.CACHE_ENV, "")
    assert C.configure_compilation_cache() is None
    assert jax.config.jax_compilation_cache_dir is None  # disabled: config untouched


def test_unusable_folder_and_bad_input(tmp_path, restore_config):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert C.configure_compilation_cache(blocker / "xla") is None
    with pytest.raises(ValueError, match="`min_compile_time_secs`"):
        C.configure_compilation_cache(tmp_path, min_compile_time_secs=-1)


def test_library_import_leaves_cache_off_and_cli_cache_is_written(tmp_path):
    # a fresh process: importing jaxotdm does not turn the cache on; configuring it makes jit write entries
    script = textwrap.dedent(
        f"""
        import jax, jax.numpy as jnp
        import jaxotdm
        from jaxotdm.cli._common import configure_compilation_cache
        assert jax.config.jax_compilation_cache_dir is None, jax.config.jax_compilation_cache_dir
        configure_compilation_cache({str(tmp_path / "xla")!r}, min_compile_time_secs=0)
        jax.block_until_ready(jax.jit(lambda x: jnp.sin(x) @ x.T)(jnp.ones((4, 4))))
        """
    )
    env = {k: v for k, v in os.environ.items() if k != C.CACHE_ENV}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert any((tmp_path / "xla").iterdir()), "no compiled program was written to the cache folder"
