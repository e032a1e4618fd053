"""The reference's constants and URL helpers (names and values kept), plus vsep's model directory.

The module constants are the reference's values and never change. Mirrors and tests
redirect downloads with environment variables, read each time a URL is built:

============================== =====================================================
VSEP_UVR_PUBLIC_REPO_URL       replaces ``UVR_PUBLIC_REPO_URL`` (public UVR models, yamls)
VSEP_UVR_VIP_REPO_URL          replaces ``UVR_VIP_REPO_URL`` (VIP models)
VSEP_AUDIO_SEPARATOR_REPO_URL  replaces ``AUDIO_SEPARATOR_REPO_URL`` (the fallback repository)
VSEP_UVR_MODEL_DATA_URL_PREFIX replaces ``UVR_MODEL_DATA_URL_PREFIX`` (UVR hash tables)
VSEP_DEMUCS_REPO_URL           replaces ``DEMUCS_REPO_URL`` (Demucs ``.th`` weights)
VSEP_MODEL_DIR                 the model directory when ``--model_file_dir`` is not given
VSEP_OFFLINE                   ``1``: never touch the network (missing files are an error)
============================== =====================================================

Absolute URLs in the catalogue that start with one of the default bases are rewritten
to the overriding base as well (:func:`rewrite_url`).
"""

from __future__ import annotations

import os
from pathlib import Path

# Model repositories (the reference's values).
UVR_PUBLIC_REPO_URL = "https://github.com/TRvlvr/model_repo/releases/download/all_public_uvr_models"
UVR_VIP_REPO_URL = "https://github.com/Anjok0109/ai_magic/releases/download/v5"
AUDIO_SEPARATOR_REPO_URL = "https://github.com/nomadkaraoke/python-audio-separator/releases/download/model-configs"

# UVR's hash -> parameter tables.
UVR_MODEL_DATA_URL_PREFIX = "https://raw.githubusercontent.com/TRvlvr/application_data/main"
UVR_VR_MODEL_DATA_URL = f"{UVR_MODEL_DATA_URL_PREFIX}/vr_model_data/model_data_new.json"
UVR_MDX_MODEL_DATA_URL = f"{UVR_MODEL_DATA_URL_PREFIX}/mdx_model_data/model_data_new.json"

# Where MDXC yaml configs live inside the UVR repository.
MDXC_YAML_PATH_PREFIX = "mdx_model_data/mdx_c_configs"

# Download tuning.
MAX_DOWNLOAD_WORKERS = 4
DOWNLOAD_CHUNK_SIZE = 262144  # 256 KiB
DOWNLOAD_TIMEOUT = 300  # seconds
HTTP_POOL_CONNECTIONS = 10
HTTP_POOL_MAXSIZE = 10

# Hash tables as the reference caches them in the model directory.
VR_MODEL_DATA_FILENAME = "vr_model_data.json"
MDX_MODEL_DATA_FILENAME = "mdx_model_data.json"

# vsep additions.
DEMUCS_REPO_URL = "https://dl.fbaipublicfiles.com/demucs"
DEFAULT_MODEL_FILENAME = "model_bs_roformer_ep_317_sdr_12.9755.ckpt"
MODEL_DIR_ENV = "VSEP_MODEL_DIR"
LEGACY_MODEL_DIR_ENV = "AUDIO_SEPARATOR_MODEL_DIR"
OFFLINE_ENV = "VSEP_OFFLINE"

_BASES = {
    "VSEP_UVR_PUBLIC_REPO_URL": UVR_PUBLIC_REPO_URL,
    "VSEP_UVR_VIP_REPO_URL": UVR_VIP_REPO_URL,
    "VSEP_AUDIO_SEPARATOR_REPO_URL": AUDIO_SEPARATOR_REPO_URL,
    "VSEP_UVR_MODEL_DATA_URL_PREFIX": UVR_MODEL_DATA_URL_PREFIX,
    "VSEP_DEMUCS_REPO_URL": DEMUCS_REPO_URL,
}


def _base(env: str) -> str:
    value = os.environ.get(env, "").strip()
    return (value or _BASES[env]).rstrip("/")


def get_repo_url(is_vip: bool = False) -> str:
    """The model repository: VIP or public (environment overrides applied)."""
    return _base("VSEP_UVR_VIP_REPO_URL" if is_vip else "VSEP_UVR_PUBLIC_REPO_URL")


def get_mdx_yaml_url(filename: str) -> str:
    """URL of an MDXC yaml config under the public UVR repository (the reference's first try)."""
    return f"{_base('VSEP_UVR_PUBLIC_REPO_URL')}/{MDXC_YAML_PATH_PREFIX}/{filename}"


def get_fallback_url(filename: str) -> str:
    """URL of a file in the audio-separator repository, tried when the UVR repository fails."""
    return f"{_base('VSEP_AUDIO_SEPARATOR_REPO_URL')}/{filename}"


def get_uvr_model_data_url(kind: str) -> str:
    """URL of UVR's hash table for ``kind`` "vr" or "mdx" (environment overrides applied)."""
    if kind not in ("vr", "mdx"):
        raise ValueError(f"kind must be 'vr' or 'mdx', not {kind!r}")
    return f"{_base('VSEP_UVR_MODEL_DATA_URL_PREFIX')}/{kind}_model_data/model_data_new.json"


def rewrite_url(url: str) -> str:
    """Point an absolute catalogue URL at the mirror named by the environment, if any."""
    for env, default in _BASES.items():
        if url.startswith(default + "/"):
            return _base(env) + url[len(default):]
    return url


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
    import platformdirs

    return Path(platformdirs.user_cache_dir("vsep", appauthor=False)) / "models"


def offline_from_env() -> bool:
    """True when ``VSEP_OFFLINE`` asks vsep never to touch the network."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes", "on")
