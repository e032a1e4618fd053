"""vsep's settings from the environment (the one reader of every ``VSEP_*`` variable) and constants.

========================= ==========================================================
VSEP_MODEL_DIR            the model directory when ``--model_file_dir`` is not given
AUDIO_SEPARATOR_MODEL_DIR the same, the reference's name (read after VSEP_MODEL_DIR)
VSEP_OFFLINE              true (1, true, yes, on): never touch the network; false (0, false,
                          no, off, empty): online
VSEP_CACHE_DIR            the chain stem cache (default: the user cache dir, ``stems`` folder)
VSEP_CACHE_SIZE_GB        its size cap in GB (default 20); least recently used entries go first
VSEP_LOAD_PLUGINS         only these plugins (comma-separated entry-point or package names)
VSEP_DISABLE_PLUGINS      all plugins but these
VSEP_MALLOC_TUNING        0 leaves glibc malloc's thresholds alone (default: tuned, see :mod:`vsep_core.allocator`)
VSEP_*_URL                download mirrors: see :mod:`vsep_core.sources`
========================= ==========================================================
"""

from __future__ import annotations

import os
from pathlib import Path

from vsep_core.errors import UsageError
from vsep_core.sources import (  # noqa: F401  (the reference's names, kept importable from here)
    AUDIO_SEPARATOR_REPO_URL,
    UVR_MODEL_DATA_URL_PREFIX,
    UVR_PUBLIC_REPO_URL,
    UVR_VIP_REPO_URL,
    get_fallback_url,
    get_repo_url,
    get_uvr_model_data_url,
    rewrite_url,
)
from vsep_core.sources import get_uvr_config_url as get_mdx_yaml_url  # noqa: F401  (the reference's name)

# Download tuning (the reference's values).
MAX_DOWNLOAD_WORKERS = 4
DOWNLOAD_CHUNK_SIZE = 262144  # 256 KiB
DOWNLOAD_TIMEOUT = 300  # seconds
HTTP_POOL_CONNECTIONS = 10
HTTP_POOL_MAXSIZE = 10

DEFAULT_MODEL_FILENAME = "model_bs_roformer_ep_317_sdr_12.9755.ckpt"
"""The model used when none is named: the one place its file name is written in src/."""

MODEL_DIR_ENV = "VSEP_MODEL_DIR"
LEGACY_MODEL_DIR_ENV = "AUDIO_SEPARATOR_MODEL_DIR"
OFFLINE_ENV = "VSEP_OFFLINE"
CACHE_DIR_ENV = "VSEP_CACHE_DIR"
CACHE_SIZE_ENV = "VSEP_CACHE_SIZE_GB"
CALIBRATION_DIR_ENV = "VSEP_CALIBRATION_DIR"
MALLOC_TUNING_ENV = "VSEP_MALLOC_TUNING"
DEFAULT_CACHE_SIZE_GB = 20.0
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("", "0", "false", "no", "off")


def env_flag(name: str) -> bool:
    """A boolean environment variable, read the same way everywhere; a value that is neither is an error."""
    value = os.environ.get(name, "").strip().lower()
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    raise UsageError(f"{name}={os.environ[name]!r}: write 1/true/yes/on or 0/false/no/off")


def malloc_tuning_enabled() -> bool:
    """False when ``VSEP_MALLOC_TUNING`` is set to a false word; unset means on."""
    return MALLOC_TUNING_ENV not in os.environ or env_flag(MALLOC_TUNING_ENV)


def default_model_dir() -> Path:
    """The model directory when the caller gives none.

    ``VSEP_MODEL_DIR``, else ``AUDIO_SEPARATOR_MODEL_DIR``, else the user cache directory
    (``platformdirs``: ``~/.cache/vsep/models`` on Linux). Not /tmp: a reboot must not
    cost gigabytes of downloads.
    """
    for env in (MODEL_DIR_ENV, LEGACY_MODEL_DIR_ENV):
        value = os.environ.get(env, "").strip()
        if value:
            return Path(value).expanduser()
    return user_cache_dir() / "models"


def user_cache_dir() -> Path:
    """vsep's folder in the user cache directory (``platformdirs``: ``~/.cache/vsep`` on Linux)."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("vsep", appauthor=False))


def offline_from_env() -> bool:
    """True when ``VSEP_OFFLINE`` asks vsep never to touch the network."""
    return env_flag(OFFLINE_ENV)


def stem_cache_dir() -> Path:
    """Where chains keep their intermediate stems: ``VSEP_CACHE_DIR``, else ``<user cache dir>/stems``."""
    value = os.environ.get(CACHE_DIR_ENV, "").strip()
    if value:
        return Path(value).expanduser()
    return user_cache_dir() / "stems"


def calibration_dir() -> Path:
    """Where `vsep bench` keeps calibrations: ``VSEP_CALIBRATION_DIR``, else ``<user cache dir>/calibration``."""
    value = os.environ.get(CALIBRATION_DIR_ENV, "").strip()
    return Path(value) if value else user_cache_dir() / "calibration"


def stem_cache_bytes() -> int:
    """The stem cache's size cap in bytes (``VSEP_CACHE_SIZE_GB``, default 20 GB)."""
    value = os.environ.get(CACHE_SIZE_ENV, "").strip()
    try:
        gb = float(value) if value else DEFAULT_CACHE_SIZE_GB
    except ValueError:
        raise UsageError(f"{CACHE_SIZE_ENV}={value!r}: write a size in GB, e.g. 20") from None
    if not gb >= 0:
        raise UsageError(f"{CACHE_SIZE_ENV}={value!r}: the size must be 0 or more")
    return int(gb * 1e9)
